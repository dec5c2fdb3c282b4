"""One edit: a photo, a hole mask, optional sketch and colour strokes -> the edited photo.

The same code serves the CLI (``fashion-edit edit``), the MLflow ``editor`` pyfunc, the benchmark
and the evaluation's two-stage pass:

1. inputs (arrays or image files) are read and checked at their own size;
2. they are fitted to the resolution the networks were trained at, keeping the aspect ratio and
   centre-padding with the border colour, as ``preprocess`` fits the training data;
3. the segmenter parses the photo; the parser completes that parsing inside the hole from the
   sketch, colour strokes and noise; the inpainter renders the hole following the completed parsing;
4. the rendered region is scaled back to the input size and composited into the input: pixels
   outside the hole are the input's, bit for bit.
An attribute edit (``attributes``) or a category swap (``to_category``: ``trousers`` / ``skirt``) adds its own
region to the hole, found on the segmenter's parsing, and its own strokes (``fashion_edit.serving.attribute_edit``,
``fashion_edit.serving.category_edit``), so it needs no mask. :meth:`Editor.samples` gives several completions of
one edit (one seed each; a stochastic model draws from its priors, :meth:`Editor.edit` takes their mean).

Input conventions (arrays are RGB; files are read with OpenCV, any format it reads). Each input is a
numpy array, nested lists of the same values (what a JSON request decodes to), an image file path, or
base64 text of an image file (optionally a ``data:image/png;base64,`` URI; for REST requests):
- image: H x W x 3 uint8 (a grey H x W image is repeated to RGB, an alpha channel is dropped);
- mask, sketch: H x W (or H x W x C, channel maximum) uint8 or bool; a pixel is *on* (hole / line)
  when it is >= 128, or > 0 for arrays holding only 0 and 1. Sketch lines are light on dark;
- colour: H x W x 3 RGB, a stroke wherever a pixel is not black; or H x W x 4 RGBA, a stroke wherever
  alpha > 0 (the way to draw black strokes).
Sketch lines and colour strokes only count inside the hole (as in training).

A saved editor ("bundle") is a folder: ``editor.json`` (format, resolution) and ``segmenter.pt``,
``parser.pt``, ``inpainter.pt`` in the project's one weights format (``fashion_edit.weights``: each file
rebuilds its network). Bundles of the first format (bare state dicts, architectures in editor.json) load too.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch

from fashion_edit.config import InpainterNet, Params, ParserNet
from fashion_edit.data.dataset import to_unit_range
from fashion_edit.data.labels import BACKGROUND
from fashion_edit.data.letterbox import Letterbox, fit_binary, fit_photo
from fashion_edit.errors import FashionEditError
from fashion_edit.networks import (Batch, build_inpainter, build_parser, build_segmenter, parser_input, run_inpainter,
                                   segment)
from fashion_edit.serving.attribute_edit import (Strengths, attribute_hole, attribute_targets, check_strengths,
                                                 edit_conditions)
from fashion_edit.serving.category_edit import check_category, swap_conditions
from fashion_edit.visualize import image_to_uint8
from fashion_edit.weights import architecture_of, load_network, save_network

BUNDLE_FORMAT = "fashion-edit-editor/2"
# /1: bare state dicts, the architectures in editor.json (registered before the one weights format)
READABLE_BUNDLE_FORMATS = ("fashion-edit-editor/1", BUNDLE_FORMAT)
BUNDLE_MANIFEST = "editor.json"
WEIGHT_FILES = {"segmenter": "segmenter.pt", "parser": "parser.pt", "inpainter": "inpainter.pt"}
# network -> (its file under the pipeline's artifacts/, the stage that writes it)
TRAINED_WEIGHTS = {"parser": ("parser/generator.pt", "dvc repro train_parser"),
                   "inpainter": ("inpainter/generator.pt", "dvc repro train_inpainter"),
                   "segmenter": ("segmenter/segmenter.pt", "dvc repro train_segmenter")}
MIN_SIDE = 8
PictureSource = str | Path | np.ndarray | list
ACCEPTED_INPUTS = ("an image array (H x W or H x W x 3/4, values 0-255), nested lists of the same, "
                   "an image file path or base64-encoded PNG/JPEG text")
# base64 text: an optional data URI prefix, then the base64 alphabet (line breaks allowed)
_BASE64_IMAGE = re.compile(r"(?P<uri>data:image/[\w.+-]+;base64,)?(?P<body>[A-Za-z0-9+/\s]+={0,2})", re.IGNORECASE)
_MIN_BASE64_IMAGE = 64  # shorter text cannot hold an image file; treated as a path


class EditInputError(FashionEditError, ValueError):
    """An input of an edit is unusable (unreadable file, wrong size, empty mask, ...); says how to fix it."""


class EditorModelError(FashionEditError, RuntimeError):
    """The editor's weights are missing or do not fit; says where they were looked for."""


# ----------------------------------------------------------------------------- reading inputs
def read_picture(source: PictureSource, name: str) -> np.ndarray:
    """An input as a uint8 array (H, W) or (H, W, C) RGB(A); EditInputError naming ``name`` if unusable."""
    if isinstance(source, np.ndarray):
        picture, where = source, f"{name} array"
    elif isinstance(source, (list, tuple)):
        where = f"{name} (nested lists)"
        picture = _from_lists(source, where)
    elif isinstance(source, (str, Path)):
        picture, where = _read_text(source, name)
    else:
        raise EditInputError(f"{name}: got {type(source).__name__}; accepted: {ACCEPTED_INPUTS}")
    if picture.dtype != np.uint8:
        picture = _as_uint8(picture, where)
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] not in (1, 3, 4)):
        raise EditInputError(f"{where}: shape {picture.shape}, expected H x W, H x W x 3 or H x W x 4")
    if min(picture.shape[:2]) < MIN_SIDE:
        raise EditInputError(f"{where}: {picture.shape[1]}x{picture.shape[0]} pixels is too small "
                             f"(at least {MIN_SIDE} on each side)")
    return picture


def _from_lists(rows: list | tuple, where: str) -> np.ndarray:
    """Nested lists (a JSON array of rows) as an array; the checks of the array path follow."""
    try:
        return np.asarray(rows)
    except ValueError:  # numpy refuses ragged nesting
        raise EditInputError(f"{where}: rows of unequal length; expected H rows of W pixels, each pixel "
                             "a 0-255 value or a list of 3 or 4 channel values") from None


def _read_text(source: str | Path, name: str) -> tuple[np.ndarray, str]:
    """A path to an image file or base64 text of one (an existing file wins); (picture, where)."""
    if _is_file(source):
        where = f"{name} {source}"
        failure = f"{where}: not an image file OpenCV can decode (use PNG or JPEG)"
        return _decoded(cv2.imread(str(source), cv2.IMREAD_UNCHANGED), failure), where
    where = f"{name} (base64 text)"
    encoded = _base64_bytes(source, where) if isinstance(source, str) else None
    if encoded is None:
        raise EditInputError(f"{name} {_shortened(str(source))}: file not found (nor base64 text of an image)")
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    return _decoded(decoded, f"{where}: not an image OpenCV can decode (send PNG or JPEG bytes)"), where


def _is_file(source: str | Path) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # base64 text longer than a file name may be, a NUL byte
        return False


def _base64_bytes(text: str, where: str) -> bytes | None:
    """The bytes base64 ``text`` encodes; None for text that is not meant as base64 (a path)."""
    match = _BASE64_IMAGE.fullmatch(text.strip())
    if match is None or (not match["uri"] and len(match["body"]) < _MIN_BASE64_IMAGE):
        return None
    try:
        return base64.b64decode(match["body"])
    except binascii.Error as exc:  # wrong padding or length
        raise EditInputError(f"{where}: not valid base64 ({exc})") from None


def _shortened(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else f"{text[:limit // 2]}... ({len(text)} characters)"


def _decoded(picture: np.ndarray | None, failure: str) -> np.ndarray:
    """What OpenCV decoded (BGR(A)) as RGB(A); EditInputError ``failure`` if it decoded nothing."""
    if picture is None:
        raise EditInputError(failure)
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_BGRA2RGBA if picture.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return picture


def _as_uint8(picture: np.ndarray, where: str) -> np.ndarray:
    """Bool or integer arrays holding 8-bit values (e.g. decoded from JSON) as uint8; anything else is refused."""
    integral = picture.dtype == np.bool_ or np.issubdtype(picture.dtype, np.integer)
    if integral and (picture.size == 0 or (picture.min() >= 0 and picture.max() <= 255)):
        return picture.astype(np.uint8)
    raise EditInputError(f"{where}: pixels are {picture.dtype}"
                         f"{' with values above 255' if integral else ''}, expected 8-bit values 0-255; "
                         "convert it, e.g. save it as an 8-bit PNG")


def _as_rgb(picture: np.ndarray) -> np.ndarray:
    if picture.ndim == 2:
        return np.repeat(picture[..., None], 3, axis=2)
    if picture.shape[2] == 1:
        return np.repeat(picture, 3, axis=2)
    return np.ascontiguousarray(picture[..., :3])


def _binary(picture: np.ndarray) -> np.ndarray:
    """On/off pixels of a mask-like picture (see the module docstring)."""
    grey = picture if picture.ndim == 2 else picture[..., :3].max(axis=2)
    return grey > 0 if grey.max() <= 1 else grey >= 128


@dataclass(frozen=True)
class EditInputs:
    """Checked inputs at the input's size: image uint8 RGB, hole bool, sketch bool, colour uint8 RGB, strokes bool."""

    image: np.ndarray
    hole: np.ndarray
    sketch: np.ndarray
    colour: np.ndarray
    strokes: np.ndarray

    @classmethod
    def read(cls, image: PictureSource, mask: PictureSource | None, sketch: PictureSource | None = None,
             colour: PictureSource | None = None, allow_empty_hole: bool = False) -> "EditInputs":
        """``allow_empty_hole``: an attribute edit makes its own hole, so the mask may be empty or None."""
        rgb = _as_rgb(read_picture(image, "image"))
        size = rgb.shape[:2]

        def same_size(picture: np.ndarray, name: str) -> np.ndarray:
            if picture.shape[:2] != size:
                raise EditInputError(f"{name} is {picture.shape[1]}x{picture.shape[0]} pixels but the image is "
                                     f"{size[1]}x{size[0]}: draw the {name} on a canvas of the image's size")
            return picture

        hole = (np.zeros(size, bool) if mask is None and allow_empty_hole
                else _binary(same_size(read_picture(mask, "mask"), "mask")))
        if not hole.any() and not allow_empty_hole:
            raise EditInputError("mask has no hole: paint the region to edit white (>= 128) on black")
        if hole.all():
            raise EditInputError("mask covers the whole image: leave some of the photo unmasked to edit from")
        lines = np.zeros(size, bool) if sketch is None else _binary(same_size(read_picture(sketch, "sketch"), "sketch"))
        if colour is None:
            paint, strokes = np.zeros((*size, 3), np.uint8), np.zeros(size, bool)
        else:
            drawn = same_size(read_picture(colour, "colour"), "colour")
            paint = _as_rgb(drawn)
            strokes = drawn[..., 3] > 0 if drawn.ndim == 3 and drawn.shape[2] == 4 else paint.any(axis=2)
        return cls(rgb, hole, lines & hole, paint, strokes & hole)


# ----------------------------------------------------------------------------- networks
@dataclass
class EditorNetworks:
    """The three networks of an edit, in eval mode, with the settings needed to rebuild them."""

    segmenter: torch.nn.Module
    parser: torch.nn.Module
    inpainter: torch.nn.Module
    segmenter_architecture: dict[str, int]
    parser_net: ParserNet
    inpainter_net: InpainterNet

    def __post_init__(self) -> None:
        for module in (self.segmenter, self.parser, self.inpainter):
            module.eval().requires_grad_(False)

    @classmethod
    def untrained(cls, params: Params) -> "EditorNetworks":
        """Freshly initialised networks of ``params``'s architectures (benchmarks, tests: timing and
        shapes do not depend on the weights)."""
        return cls(build_segmenter(params), build_parser(params), build_inpainter(params),
                   architecture_of(params, "segmenter"), params.parser, params.inpainter)

    @classmethod
    def from_artifacts(cls, params: Params, artifacts: Path) -> "EditorNetworks":
        """The networks the pipeline trained (``artifacts/{parser,inpainter,segmenter}``)."""
        (segmenter, seg_arch), (parser, parser_arch), (inpainter, inpainter_arch) = (
            load_trained(params, artifacts, name) for name in ("segmenter", "parser", "inpainter"))
        return cls(segmenter, parser, inpainter, seg_arch, ParserNet(**parser_arch), InpainterNet(**inpainter_arch))


def load_trained(params: Params, artifacts: Path, network: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A network the pipeline trained and its architecture (NetworkFileError naming the stage to run);
    a bare state dict from before the one weights format is built from ``params``."""
    relative, how = TRAINED_WEIGHTS[network]
    return load_network(artifacts / relative, network, how, legacy_architecture=architecture_of(params, network))


@dataclass(frozen=True)
class TwoStageOutput:
    predicted: torch.Tensor   # (B,H,W) the parser's argmax everywhere
    completed: torch.Tensor   # (B,H,W) known parsing outside the hole, the parser's inside
    image: torch.Tensor       # (B,3,H,W) in [-1,1], inpainter output composited into the input


@torch.no_grad()
def two_stage(networks: EditorNetworks, batch: Batch, attribute_target: torch.Tensor | None = None,
              sample_seed: int | None = None) -> TwoStageOutput:
    """Parser then inpainter on a batch in the dataset's format (``batch["parsing"]`` = the known parsing, and
    ``batch["label_strokes"]`` if any); ``attribute_target`` (B, k): the attributes the parser's completion should
    have (attribute edits); ``sample_seed``: one draw from a stochastic model's priors (None: their means, the
    deterministic completion; a deterministic network ignores it)."""
    options: dict[str, Any] = {} if attribute_target is None else {"attribute_target": attribute_target}
    if sample_seed is not None and networks.parser_net.latent_dim:
        options["sample_seed"] = sample_seed
    logits = networks.parser(parser_input(batch, networks.parser_net.label_strokes), **options)
    predicted = logits.argmax(dim=1)
    completed = torch.where(batch["mask"][:, 0] > 0, predicted, batch["parsing"])
    _, composited = run_inpainter(networks.inpainter, batch, completed,
                                  sample_seed if networks.inpainter_net.latent_dim else None)
    return TwoStageOutput(predicted, completed, composited.clamp(-1, 1))


def known_foreground(batch: Batch) -> torch.Tensor:
    """M' = (1 - M) * [parsing != background] (DESIGN 3.2) for a batch whose parsing was just predicted."""
    return (1 - batch["mask"]) * (batch["parsing"] != BACKGROUND)[:, None].float()


# ----------------------------------------------------------------------------- the editor
def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))[None]


@dataclass(frozen=True)
class EditResult:
    image: np.ndarray     # (H, W, 3) uint8 RGB at the input's size
    parsing: np.ndarray   # (h, w) uint8 completed LIP-20 parsing at the model's resolution
    hole: np.ndarray      # (H, W) bool: what was repainted (the drawn hole plus attribute regions)


class Editor:
    """Edits photos with trained networks at their training resolution ``size`` = (height, width)."""

    def __init__(self, networks: EditorNetworks, size: tuple[int, int]) -> None:
        self.networks, self.size = networks, (int(size[0]), int(size[1]))

    def edit(self, image: PictureSource, mask: PictureSource | None = None, sketch: PictureSource | None = None,
             colour: PictureSource | None = None, seed: int = 0, attributes: Strengths | None = None,
             to_category: str | None = None) -> np.ndarray:
        """The edited image (H, W, 3) uint8 RGB; ``seed`` fixes the noise inside the hole; ``attributes``:
        strengths of attribute edits (``fashion_edit.serving.attribute_edit``); ``to_category``: swap the lower
        garment to ``trousers`` or ``skirt`` (``fashion_edit.serving.category_edit``). Both need no mask."""
        inputs, strengths, category = self.checked(image, mask, sketch, colour, attributes, to_category)
        return self.run(inputs, seed, strengths, category).image

    def samples(self, image: PictureSource, mask: PictureSource | None = None, sketch: PictureSource | None = None,
                colour: PictureSource | None = None, seed: int = 0, attributes: Strengths | None = None,
                to_category: str | None = None, count: int = 1) -> list[EditResult]:
        """``count`` completions of one edit (:meth:`run_samples`); :meth:`edit` gives the priors' mean instead."""
        inputs, strengths, category = self.checked(image, mask, sketch, colour, attributes, to_category)
        return self.run_samples(inputs, count, seed, strengths, category)

    def run_samples(self, inputs: EditInputs, count: int, seed: int = 0, attributes: Strengths | None = None,
                    to_category: str | None = None) -> list[EditResult]:
        """``count`` completions of checked inputs: seeds ``seed`` .. ``seed + count - 1``, each the noise seed
        and the seed of one draw from a stochastic model's priors (a deterministic model differs by the noise)."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise EditInputError(f"samples: {count!r} is not a positive whole number of completions")
        return [self.run(inputs, seed + k, attributes, to_category, sample_seed=seed + k) for k in range(int(count))]

    def checked(self, image: PictureSource, mask: PictureSource | None = None, sketch: PictureSource | None = None,
                colour: PictureSource | None = None, attributes: Strengths | None = None,
                to_category: str | None = None) -> tuple[EditInputs, dict[str, float], str | None]:
        """(inputs, non-zero strengths, canonical category or None) checked against this editor; an attribute
        edit or a swap erases its own region, so the mask may then be empty or None."""
        strengths = check_strengths(self.networks.parser_net, attributes or {})
        category = check_category(self.networks.parser_net, to_category)
        own_hole = bool(attributes) or category is not None
        return EditInputs.read(image, mask, sketch, colour, allow_empty_hole=own_hole), strengths, category

    def run(self, inputs: EditInputs, seed: int = 0, attributes: Strengths | None = None,
            to_category: str | None = None, sample_seed: int | None = None) -> EditResult:
        """The edit of checked inputs; ``attributes``: non-zero strengths already checked by :func:`check_strengths`;
        ``to_category``: checked by ``check_category``; ``sample_seed``: a draw from a stochastic model's priors
        (None: their mean)."""
        batch, box = self.model_batch(inputs, seed)
        hole = inputs.hole
        with torch.inference_mode():
            batch["parsing"] = segment(self.networks.segmenter, batch["image"])
            if to_category is not None:
                self._add_category_swap(batch, to_category, seed)
            target = self._add_attribute_edit(batch, attributes, seed) if attributes else None
            if not batch["mask"].any():
                return EditResult(inputs.image.copy(), batch["parsing"][0].numpy().astype(np.uint8), hole)
            batch["known_fg"] = known_foreground(batch)
            out = two_stage(self.networks, batch, target, sample_seed=sample_seed)
        if attributes or to_category is not None:  # the regions the edits erased, back at the input's size
            hole = hole | (box.unfit(batch["mask"][0, 0].numpy()) > 0.5)
        rendered = image_to_uint8(out.image[0])
        edited = np.where(hole[..., None], box.unfit(rendered), inputs.image)
        return EditResult(edited, out.completed[0].numpy().astype(np.uint8), hole)

    def _add_category_swap(self, batch: Batch, to_category: str, seed: int) -> None:
        """Widen the batch's hole by the swap region and add its label and texture strokes (the user's own colour
        strokes win where they are)."""
        parsing = batch["parsing"][0].numpy().astype(np.uint8)
        conditions = swap_conditions(image_to_uint8(batch["image"][0]), parsing, to_category, seed,
                                     hole=batch["mask"][0, 0].numpy() > 0.5)
        drawn = batch["colour"].abs().sum(1, keepdim=True) > 0
        batch["colour"] = torch.where(drawn, batch["colour"], conditions["colour"])
        batch["mask"], batch["noise"] = conditions["mask"], conditions["noise"]
        batch["label_strokes"] = conditions["label_strokes"]

    def _add_attribute_edit(self, batch: Batch, strengths: Strengths, seed: int) -> torch.Tensor:
        """Widen the batch's hole by the attribute regions, add texture strokes from the erased garments,
        and return the parser's attribute targets (1, k)."""
        parsing = batch["parsing"][0].numpy().astype(np.uint8)
        targets = attribute_targets(self.networks.parser_net, parsing, strengths)
        hole = attribute_hole(parsing, strengths) | (batch["mask"][0, 0].numpy() > 0.5)
        conditions = edit_conditions(image_to_uint8(batch["image"][0]), parsing, hole, strengths, seed)
        drawn = batch["colour"].abs().sum(1, keepdim=True) > 0  # the user's own strokes win where they are
        batch["colour"] = torch.where(drawn, batch["colour"], conditions["colour"])
        batch["sketch"] = torch.maximum(batch["sketch"], conditions["sketch"])
        batch["mask"], batch["noise"] = conditions["mask"], conditions["noise"]
        return torch.from_numpy(targets)[None]

    def model_batch(self, inputs: EditInputs, seed: int = 0) -> tuple[Batch, Letterbox]:
        """The dataset's item format (DESIGN 3.2) at model resolution, batch of one, without the parsing
        (the segmenter's job), and the geometry that maps back to the input."""
        box = Letterbox(inputs.image.shape[:2], self.size)
        image = fit_photo(box, inputs.image)
        hole = fit_binary(box, inputs.hole)
        sketch = fit_binary(box, inputs.sketch) & hole
        strokes = box.fit(inputs.strokes.astype(np.uint8), cv2.INTER_NEAREST) > 0
        colour = box.fit(inputs.colour, cv2.INTER_NEAREST)
        mask = hole.astype(np.float32)[None]
        noise = torch.randn((1, 1, *self.size), generator=torch.Generator().manual_seed(seed)) * _tensor(mask)
        return {
            "image": _tensor(to_unit_range(image)),
            "mask": _tensor(mask),
            "sketch": _tensor(sketch.astype(np.float32)[None]),
            "colour": _tensor(to_unit_range(colour) * (strokes & hole)[None]),
            "noise": noise,
        }, box

    # ------------------------------------------------------------------ bundle
    def save(self, folder: Path) -> Path:
        """Write the bundle (editor.json + three state dicts) to ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        architectures = {"segmenter": self.networks.segmenter_architecture,
                         "parser": self.networks.parser_net.model_dump(mode="json"),
                         "inpainter": self.networks.inpainter_net.model_dump(mode="json")}
        for name, file in WEIGHT_FILES.items():
            save_network(folder / file, name, architectures[name], getattr(self.networks, name))
        manifest = {"format": BUNDLE_FORMAT, "height": self.size[0], "width": self.size[1]}
        (folder / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Editor":
        """The editor saved in ``folder``; EditorModelError saying what is missing or wrong."""
        folder = Path(folder)
        manifest_path = folder / BUNDLE_MANIFEST
        if not manifest_path.is_file():
            raise EditorModelError(f"no editor model in {folder} ({BUNDLE_MANIFEST} not found): pass a folder written "
                                   "by the register stage (artifacts/editor) or Editor.save")
        manifest = _read_manifest(manifest_path)
        try:
            size = (int(manifest["height"]), int(manifest["width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EditorModelError(f"{manifest_path}: invalid editor description ({exc})") from None
        loaded = {name: load_network(folder / file, name, "dvc repro register", legacy_architecture=manifest.get(name))
                  for name, file in WEIGHT_FILES.items()}
        (segmenter, seg_arch), (parser, parser_arch), (inpainter, inpainter_arch) = (
            loaded[name] for name in ("segmenter", "parser", "inpainter"))
        return cls(EditorNetworks(segmenter, parser, inpainter, seg_arch, ParserNet(**parser_arch),
                                  InpainterNet(**inpainter_arch)), size)


def _read_manifest(path: Path) -> Mapping[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EditorModelError(f"{path}: unreadable editor description ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_BUNDLE_FORMATS:
        raise EditorModelError(f"{path}: not an editor bundle of this project (expected format {BUNDLE_FORMAT!r})")
    return manifest
