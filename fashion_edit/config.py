"""Typed loader for ``params.yaml``: the one place that parses configuration.

Every section is a pydantic model with ``extra="forbid"`` so an unknown or misspelt key
fails with its dotted path, and every number has a range so a bad value fails before any
work starts.  Stages load the file once with :func:`load_params` and pass typed sections on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator, model_validator

from fashion_edit.errors import FashionEditError

PARAMS_FILE = "params.yaml"


class ParamsError(FashionEditError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- data
Size = tuple[int, int]  # (height, width)


class DataParams(Section):
    source: Literal[
        "synthetic", "folder", "deepfashion_mm", "deepfashion_inshop", "viton_hd", "lip", "cihp", "atr"
    ] = "synthetic"
    root: str = Field("", description="Local dataset folder for real sources; unused for synthetic.")
    label_map: str = Field("", description="Label-map YAML for the generic folder source.")
    parsing_dir: str = Field("", description="LIP-20 parsing folder for DeepFashion In-shop.")

    @model_validator(mode="after")
    def _no_dataset_paths_for_synthetic(self) -> "DataParams":
        """The synthetic source reads none of these: a path set here means the source was forgotten."""
        given = {key: value for key, value in (("root", self.root), ("label_map", self.label_map),
                                               ("parsing_dir", self.parsing_dir)) if value}
        if self.source == "synthetic" and given:
            raise ValueError(f"data.source is synthetic, which reads no files, but {given} is set: set data.source to "
                             f"the dataset's format (folder, lip, cihp, atr, deepfashion_mm, deepfashion_inshop, "
                             f"viton_hd) or empty those keys")
        return self


class SynthesizeParams(Section):
    count: int = Field(2400, ge=1, le=1_000_000)
    height: int = Field(128, ge=32, le=2048)
    width: int = Field(128, ge=32, le=2048)
    seed: int = 0
    supersample: int = Field(2, ge=1, le=4, description="Render at this factor, then downsample (anti-aliasing).")
    contact_sheet: int = Field(64, ge=1, le=1024, description="Figures shown in the contact-sheet PNG.")


class SplitParams(Section):
    val: float = Field(0.05, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leave_training_data(self) -> "SplitParams":
        if self.val + self.test >= 1.0:
            raise ValueError("preprocess.split: val + test must be < 1 so some training data remains")
        return self


class ColourParams(Section):
    median: int = Field(3, ge=1, le=31)
    bilateral_d: int = Field(7, ge=1, le=31)
    bilateral_sigma_color: float = Field(20.0, gt=0)
    bilateral_sigma_space: float = Field(20.0, gt=0)


class PreprocessParams(Section):
    height: int = Field(128, ge=32, le=2048)
    width: int = Field(128, ge=32, le=2048)
    seed: int = 0
    split: SplitParams = SplitParams()
    canny_low: int = Field(100, ge=0, le=1000)
    canny_high: int = Field(200, ge=0, le=1000)
    colour: ColourParams = ColourParams()
    eval_mask_seed: int = 1234
    max_upscale: float = Field(4.0, ge=1.0, le=64.0, description=(
        "Skip (counted, reported) items that would have to be enlarged more than this to fit height x width: "
        "a tiny photo upscaled 16x trains the editor on blur."))
    max_aspect: float = Field(4.0, ge=1.0, le=64.0, description=(
        "Skip (counted, reported) items whose aspect ratio differs from height:width by more than this factor: "
        "letterboxed, a 512x16 strip would keep two rows of picture."))


class MaskParams(Section):
    """Free-form hole masks (DeepFill v2 brush strokes) plus optional box / garment masks."""

    min_strokes: int = Field(1, ge=1, le=20)
    max_strokes: int = Field(3, ge=1, le=20)
    min_vertices: int = Field(4, ge=1, le=50)
    max_vertices: int = Field(11, ge=1, le=50)
    min_width: float = Field(12.0, gt=0, description="Brush width in pixels at 256 px; scaled to the image size.")
    max_width: float = Field(40.0, gt=0)
    box_prob: float = Field(0.3, ge=0, le=1)
    garment_prob: float = Field(0.2, ge=0, le=1)
    garment_dilation: int = Field(5, ge=0, le=64)
    colour_strokes: int = Field(6, ge=0, le=100, description="Sparse colour strokes drawn per sample.")
    colour_stroke_width: float = Field(6.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "MaskParams":
        for lo, hi in (("min_strokes", "max_strokes"), ("min_vertices", "max_vertices"), ("min_width", "max_width")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"masks.{lo} must be <= masks.{hi}")
        return self


# ------------------------------------------------------------------------ networks
class ParserNet(Section):
    base_channels: int = Field(32, ge=4, le=1024)
    n_downsample: int = Field(3, ge=1, le=6)
    n_res_blocks: int = Field(4, ge=0, le=32)
    d_channels: int = Field(32, ge=4, le=1024)
    d_scales: int = Field(2, ge=1, le=4)
    d_layers: int = Field(3, ge=1, le=6)
    prefill: bool = Field(True, description="Predict a residual on the known parsing's push-pull fill "
                          "(models/prefill.py); false: predict the parsing from scratch (FE-GAN).")
    attributes: list[str] = Field(default_factory=list, description="Garment attributes (fashion_edit/data/"
                                  "attributes.py) the parser learns as orthogonal latent directions (S2FGAN, seed "
                                  "003), editable with a strength; empty: no attribute mapping.")
    max_strength: float = Field(0.6, gt=0, le=2, description="Largest |strength| an attribute edit accepts: the "
                                "range of attribute changes training shows the decoder.")
    # pydantic defaults of the next two: off, so weights files written before them still load as they were built
    label_strokes: bool = Field(False, description="Input channels that paint the wanted class into the hole "
                                "(a category swap asks for trousers this way; training samples them from the truth).")
    latent_dim: int = Field(0, ge=0, le=256, description="Stochastic completion (seed 001): a z of this size from a "
                            "compatibility prior; 0: deterministic.")

    @model_validator(mode="after")
    def _known_attributes(self) -> "ParserNet":
        from fashion_edit.data.attributes import ATTRIBUTES  # lazy: the data package imports this module

        unknown = [name for name in self.attributes if name not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"parser.attributes: unknown {unknown}; known: {list(ATTRIBUTES)}")
        if len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"parser.attributes lists a name twice: {self.attributes}")
        return self


class SegmenterNet(Section):
    """The human-parsing segmenter: the parser's encoder-residual-decoder on RGB (DESIGN.md section 7)."""

    base_channels: int = Field(32, ge=4, le=1024)
    n_downsample: int = Field(3, ge=1, le=6)
    n_res_blocks: int = Field(2, ge=0, le=32)


class InpainterNet(Section):
    base_channels: int = Field(32, ge=4, le=1024)
    n_res_blocks: int = Field(8, ge=0, le=32)
    dilation: int = Field(2, ge=1, le=8)
    norm: Literal["anl", "spade", "instance"] = "anl"
    encoder: Literal["partial", "gated", "plain"] = "partial"
    use_parsing: bool = True
    spectral_norm: bool = True
    attention: bool = True
    use_sketch_colour: bool = True
    encode_background: bool = Field(True, description="Image encoder sees every known pixel (1 - M); false: only "
                                    "the known foreground M' (FE-GAN, for photos on plain backgrounds).")
    prefill: bool = Field(True, description="Start from the parsing-aware push-pull fill of the hole and learn a "
                          "residual (models/prefill.py); false: paint the hole from scratch (FE-GAN).")
    latent_dim: int = Field(0, ge=0, le=256, description="Stochastic texture (seed 001): a z of this size from a "
                            "compatibility prior; 0: deterministic.")
    d_channels: int = Field(32, ge=4, le=1024)


class ParserLoss(Section):
    gan_mode: Literal["hinge", "lsgan"] = "hinge"
    gan: float = Field(1.0, ge=0)
    feat_match: float = Field(10.0, ge=0)
    ce: float = Field(10.0, ge=0)
    attribute: float = Field(1.0, ge=0, description="S2FGAN's attribute regression ||E(I)Wᵀ - u||² (with "
                             "parser.attributes).")
    orthogonality: float = Field(1.0, ge=0, description="S2FGAN's ||WWᵀ - I|| (with parser.attributes).")
    counterfactual: float = Field(10.0, ge=0, description="Asked for another attribute value than the truth, the "
                                  "completion's soft measure must change by as much (fashion_edit/training/"
                                  "attribute_loss.py; with parser.attributes).")
    kl: float = Field(1.0, ge=0, description="λ_KL of D_KL(posterior || compatibility prior) (with parser.latent_dim).")


class InpainterLoss(Section):
    """FE-GAN's lambda_1..lambda_7 defaults (DESIGN.md section 4)."""

    gan_mode: Literal["hinge", "lsgan"] = "hinge"
    hole: float = Field(5.0, ge=0)
    foreground: float = Field(1.0, ge=0)
    face: float = Field(50.0, ge=0)
    face_tv: float = Field(0.1, ge=0)
    perceptual: float = Field(0.05, ge=0)
    style: float = Field(200.0, ge=0)
    gan: float = Field(0.001, ge=0)
    kl: float = Field(1.0, ge=0, description="λ_KL of D_KL(posterior || compatibility prior) (with inpainter.latent_dim).")


def _bool_or_auto(value: Any, handler: Any) -> Any:
    """One clear error for ``bool | "auto"`` instead of one per union member."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"expected true, false or auto; got {value!r}") from None


# a speed setting decided per machine by fashion_edit/hardware.py when "auto"
BoolOrAuto = Annotated[bool | Literal["auto"], WrapValidator(_bool_or_auto)]


class VggParams(Section):
    weights: Literal["stlpips_vgg16", "torchvision_vgg19"] = "stlpips_vgg16"
    path: str = Field("", description="Path to torchvision-format VGG19 weights (only for torchvision_vgg19).")
    bf16: BoolOrAuto = Field("auto", description="Run the loss VGG under bfloat16 autocast (faster on AMX/AVX-512 "
                             "BF16 CPUs, >10x slower where emulated); auto: only where native (fashion_edit/hardware.py).")
    blocks: int = Field(5, ge=1, le=5, description="Perceptual and style terms use the taps of the first this many "
                        "VGG blocks; the trunk runs only that deep (3: about half the cost of 5).")


# ------------------------------------------------------------------------ training
class TrainParams(Section):
    """Keys every training stage has (``train_parser``, ``train_inpainter``, ``train_segmenter``)."""

    steps: int = Field(300, ge=1)
    batch_size: int = Field(8, ge=1, le=4096)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.9, ge=0, lt=1)
    seed: int = 0
    checkpoint_every: int = Field(50, ge=1)
    sample_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    num_workers: int = Field(0, ge=0, le=64)
    distributed: bool = False
    nproc_per_node: int = Field(0, ge=0, le=64, description="Processes the stage starts under torchrun when "
                                "distributed; 0 = one per visible GPU (one on CPU).")
    channels_last: BoolOrAuto = Field("auto", description="channels_last memory format; auto: decided per machine "
                                      "by fashion_edit/hardware.py.")
    warmup_steps: int = Field(0, ge=0, description="Learning rates rise linearly from 0 over these first steps.")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="Decay of the trained network's weight average used for "
                             "evaluation and export (0 = export the last step's weights).")

    @property
    def network_lr(self) -> float:
        """Learning rate of the network the stage exports (the generator of a GAN)."""
        raise NotImplementedError


class GanTrainParams(TrainParams):
    """``train_parser`` / ``train_inpainter``: a generator and its discriminator (two-time-scale rates)."""

    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(4e-4, gt=0)

    @property
    def network_lr(self) -> float:
        return self.lr_g


class ParserTrainParams(GanTrainParams):
    """``train_parser``: with ``parser.attributes``, a share of the training holes are attribute regions."""

    attribute_hole_prob: float = Field(0.3, ge=0, le=1, description="Probability that a training hole is the "
                                       "region an attribute edit erases (used only with parser.attributes).")
    label_stroke_prob: float = Field(0.5, ge=0, le=1, description="Probability that a training hole carries label "
                                     "strokes sampled from the true parsing (used only with parser.label_strokes).")
    category_hole_prob: float = Field(0.2, ge=0, le=1, description="Probability that a training hole is the region "
                                      "a category swap erases, with label strokes (only with parser.label_strokes).")


class SegmenterTrainParams(TrainParams):
    """``train_segmenter``: cross-entropy only, no discriminator (Adam's usual betas)."""

    lr: float = Field(1e-3, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    pretrained: str = Field("", description="A segmenter.pt written by train_segmenter elsewhere (or your own "
                            "human parser in that format), adopted instead of training; empty: train.")

    @property
    def network_lr(self) -> float:
        return self.lr


class AttributeSweepParams(Section):
    """``attribute_sweep``: each trained attribute edited at several strengths on test figures (seed 003's sliders)."""

    figures: int = Field(32, ge=2, le=10_000, description="Test figures per attribute (the first ones).")
    strengths: int = Field(5, ge=3, le=21, description="Strengths from -parser.max_strength to +max_strength.")
    strip_figures: int = Field(3, ge=1, le=16, description="Figures shown per attribute in the strip PNG.")
    seed: int = Field(0, description="Noise and texture strokes of the sweep's edits.")


class CategorySwapParams(Section):
    """``category_swap``: the garment-category swap scored against the synthetic before/after pairs (issue 14)."""

    figure_pairs: int = Field(4, ge=1, le=32, description="Pairs shown in reports/figures/category_swap.png.")
    max_pairs: int = Field(200, ge=1, le=100_000, description="Pairs evaluated at most (the first ones).")
    seed: int = Field(0, description="Noise, label and texture strokes of the edits (pair i uses seed + i).")


class EvaluateParams(Section):
    batch_size: int = Field(16, ge=1)
    grid_items: int = Field(8, ge=1, le=64)
    fid_batch_size: int = Field(32, ge=1)
    seed: int = Field(0, description="Noise of the fixed evaluation edits.")
    bootstrap_resamples: int = Field(200, ge=10, le=100_000, description="Resamples of the test images behind "
                                     "each headline metric's standard error (<metric>_se).")
    samples: int = Field(0, ge=0, le=16, description="Completions per test input for the diversity scores "
                         "(fashion_edit/evaluation/diversity.py); 0 or 1: none.")


class RegisterParams(Section):
    noise_z: float = Field(2.0, ge=0, description="A headline metric differs from the champion's when the gap "
                           "exceeds this many sigmas, sigma = sqrt(SE_candidate² + SE_champion²) "
                           "(fashion_edit.tracking.registry).")
    promote: bool = Field(True, description="False: a dry run. The register stage registers the candidates and "
                          "decides, but moves no champion alias; reports/register.json says what it would have done.")


class MlflowParams(Section):
    experiment: str = "fashion-edit"
    tracking_uri: str = Field("", description="Empty: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the repo.")


# The shape of `ablations`, shown when it is written otherwise (DVC reads ``ablations.<name>`` too and
# only says "Could not find 'key'").
_EXAMPLE_VARIANT = "no_prefill: {inpainter: {prefill: false}}"
ABLATIONS_EXAMPLE = f"ablations: {{full: {{}}, {_EXAMPLE_VARIANT}}}"


def _found(value: Any) -> str:
    """What a params value is, for messages: ``a list``, ``a str 'x'``."""
    kind = {list: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(type(value))
    return kind or f"a {type(value).__name__} {value!r}"


def _mapping_of_variants(value: Any, handler: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of variant name -> overrides mapping, found {_found(value)}; write "
                         f"each variant as `name: {{section: {{key: value}}}}` without `- `, e.g. `{ABLATIONS_EXAMPLE}`")
    return handler(value)


def _overrides_mapping(value: Any, handler: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of overrides, found {_found(value)} "
                         f"(e.g. `{_EXAMPLE_VARIANT}`; `{{}}` for none)")
    return handler(value)


# variant name -> overrides applied to params (validated on use by Params.variant)
Ablations = Annotated[dict[str, Annotated[dict[str, Any], WrapValidator(_overrides_mapping)]],
                      WrapValidator(_mapping_of_variants)]


class AblationParams(Section):
    steps: int = Field(150, ge=1, description="Inpainter training steps per ablation variant.")
    seeds: int = Field(1, ge=1, le=10)
    variants: list[str] = Field(default_factory=lambda: ["full"], min_length=1,
                                description="Which `ablations` entries the pipeline runs (one DVC stage each).")
    curve_points: int = Field(1, ge=1, le=20, description="Evaluations per training run, evenly spaced, the last at "
                              "the end: > 1 draws each variant's learning curve (and trains `full` too).")
    verdict_z: float = Field(2.0, ge=0, description="A claim holds (or is contradicted) when the variants' gap "
                             "exceeds this many standard errors (fashion_edit/evaluation/claims.py).")


class Params(Section):
    data: DataParams = DataParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    preprocess: PreprocessParams = PreprocessParams()
    masks: MaskParams = MaskParams()
    parser: ParserNet = ParserNet()
    inpainter: InpainterNet = InpainterNet()
    parser_loss: ParserLoss = ParserLoss()
    inpainter_loss: InpainterLoss = InpainterLoss()
    vgg: VggParams = VggParams()
    segmenter: SegmenterNet = SegmenterNet()
    train_parser: ParserTrainParams = ParserTrainParams()
    train_inpainter: GanTrainParams = GanTrainParams()
    train_segmenter: SegmenterTrainParams = SegmenterTrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    attribute_sweep: AttributeSweepParams = AttributeSweepParams()
    category_swap: CategorySwapParams = CategorySwapParams()
    registry: RegisterParams = RegisterParams()
    mlflow: MlflowParams = MlflowParams()
    ablation: AblationParams = AblationParams()
    ablations: Ablations = Field(default_factory=lambda: {"full": {}})

    @model_validator(mode="after")
    def _known_variants(self) -> "Params":
        unknown = [name for name in self.ablation.variants if name not in self.ablations]
        if unknown:
            raise ValueError(f"ablation.variants names {unknown}, which are not keys of `ablations` "
                             f"(defined: {sorted(self.ablations)})")
        if len(set(self.ablation.variants)) != len(self.ablation.variants):
            raise ValueError("ablation.variants lists a variant twice")
        return self

    def variant(self, name: str) -> "Params":
        """These params with the named ablation's overrides applied (validated)."""
        if name not in self.ablations:
            raise ParamsError(f"ablations.{name}: unknown variant; known: {sorted(self.ablations)}")
        merged = _deep_merge(self.model_dump(mode="python"), self.ablations[name])
        return _validate(merged, f"ablations.{name}")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "<root>"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against params.yaml's documented sections)"
    elif error["type"] == "literal_error":
        message = f"invalid value {error.get('input')!r}; {error['msg']}"
    elif error["type"] == "value_error":  # our own validators' messages, without pydantic's "Value error, "
        message = str(error["ctx"]["error"])
    return f"{key}: {message}"


def _validate(raw: Any, origin: str) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{origin}: invalid params\n  {lines}") from None


def missing_keys(raw: Any, model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """Dotted keys of ``model`` (sections recursively) that ``raw`` lacks. The models' defaults serve
    code that builds params in memory; a params file must spell every value out, so that what runs
    is what the file says (a deleted section would otherwise train with the code's numbers)."""
    missing = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if not isinstance(raw, dict) or name not in raw:
            missing.append(key)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            missing += missing_keys(raw[name], field.annotation, f"{key}.")
    return missing


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``; raise :class:`ParamsError` naming the bad or missing key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    params = _validate(raw or {}, str(path))  # wrong shapes and unknown keys first: their messages are precise
    absent = missing_keys(raw)
    if absent:
        raise ParamsError(f"{path}: missing {', '.join(absent)}; every value must be in the file (the code's "
                          "defaults may differ): copy them from the repository's params.yaml (`git show "
                          "HEAD:params.yaml`)")
    return params
