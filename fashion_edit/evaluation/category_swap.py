"""The category-swap evaluation (issue 14, seed 002's Design-GAN): does ``--to trousers`` / ``--to skirt`` draw the
new garment where the truth has it, in the old garment's texture?

The truth is ``data/swap_pairs`` (``fashion_edit.data.swap_pairs``): synthetic test figures rendered before and
after their lower garment changed category, pixel aligned with the prepared test images. Each pair is edited on the
networks from ``artifacts/`` starting from the *true* before-parsing as the known parsing (the segmenter is skipped,
so the numbers measure the swap itself, not the segmenter's errors), by two methods:

- ``swap``: the swap as the editor does it (``fashion_edit.serving.category_edit.swap_conditions``): the hole is the
  old garment united with the target's place, label strokes ask for the target class, texture strokes carry the old
  garment's colour;
- ``plain``: the plain editor as a user would use it without the swap: the hole is the old garment dilated as the
  editor's garment regions are (``DILATE_U`` head units, never the head, upper garments, arms or shoes), no label
  strokes, the same texture strokes (those inside this hole).

Metrics per method (mean over pairs with its standard error, std / sqrt(n); ``n`` = the pairs it is defined on):

- ``target_iou``: IoU of the completed parsing's target-class region with the after-parsing's;
- ``st_lpips`` (shift-tolerant LPIPS, full images) and ``l1`` (mean absolute error over the full image, [0, 1]
  scale) of the edited image against the after-image;
- ``texture``: the Gram-matrix distance (EdgeConnect's style loss, ``models.losses.style_loss``) of the ST-LPIPS
  trunk's VGG16 features at :data:`TEXTURE_LAYERS` between the old garment (before-image inside the source region)
  and the new one (edited image inside the after-parsing's target region); each region's Gram matrix is normalised
  by the region's area at that layer, so garment shapes and sizes do not count, only texture. ``truth.texture`` is
  the same distance for the after-image: the floor a perfect edit reaches (the generator redraws the texture on the
  new shape);
- ``skin_error``: mean absolute RGB error (0-255) of the edited image against the after-image on newly exposed skin
  (skin or legs after, the old garment before); defined on the pairs that expose skin (trousers -> skirt).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fashion_edit.config import Params
from fashion_edit.data.attributes import DILATE_U, figure_frame
from fashion_edit.data.categories import PROTECTED, CategorySwapError
from fashion_edit.data.dataset import to_unit_range
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.swap_pairs import SwapPairs, load_swap_pairs
from fashion_edit.layout import ARTIFACTS, CATEGORY_SWAP_DETAIL, CATEGORY_SWAP_FIGURE, SWAP_PAIRS
from fashion_edit.networks import Batch
from fashion_edit.pretrained import load_stlpips
from fashion_edit.serving.category_edit import swap_conditions
from fashion_edit.serving.editor import EditorNetworks, known_foreground, two_stage
from fashion_edit.tracking.runs import stage_run
from fashion_edit.visualize import hole_overlay, image_to_uint8, make_grid, save_png
from models.losses import style_loss
from models.vgg import STLPIPS, VGGFeatures

STAGE = "category_swap"
SECTIONS = ("category_swap",)  # the networks' architectures come from their weights files
METHODS = ("swap", "plain")
METRICS = ("target_iou", "st_lpips", "l1", "texture", "skin_error")
# shallow taps: at 128 px a garment covers only a few cells of the deeper layers' maps
TEXTURE_LAYERS = ("relu1_2", "relu2_2", "relu3_3")
SKIN = tuple(LABEL_ID[name] for name in ("torso-skin", "left-arm", "right-arm", "left-leg", "right-leg"))


# ----------------------------------------------------------------------------- metric helpers
def target_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean regions; NaN when both are empty."""
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else math.nan


def skin_colour_error(edited: np.ndarray, after: np.ndarray, parsing_before: np.ndarray, parsing_after: np.ndarray,
                      source_label: int) -> float:
    """Mean absolute RGB error (0-255) of ``edited`` against ``after`` where skin shows after the swap and the old
    garment was before; NaN when the swap exposes no skin."""
    exposed = np.isin(parsing_after, SKIN) & (parsing_before == source_label)
    if not exposed.any():
        return math.nan
    return float(np.abs(edited[exposed].astype(np.float64) - after[exposed].astype(np.float64)).mean())


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_unit_range(np.ascontiguousarray(image)))[None]


def region_features(trunk: VGGFeatures, image: np.ndarray, region: np.ndarray,
                    layers: tuple[str, ...] = TEXTURE_LAYERS) -> dict[str, torch.Tensor] | None:
    """VGG activations of ``image`` (uint8 RGB) with everything outside ``region`` mid-grey, weighted by the region
    resized to each layer (area) and scaled by sqrt(cells / region cells), so that ``gram_matrix`` of them is the
    region's own Gram matrix; None for an empty region."""
    if not np.any(region):
        return None
    weight = torch.from_numpy(np.asarray(region, np.float32))[None, None]
    with torch.no_grad():
        taps = trunk(_image_tensor(image) * weight, layers)
    out = {}
    for name, features in taps.items():
        cells = F.interpolate(weight, size=features.shape[-2:], mode="area")
        area = float(cells.sum())
        if area <= 0:
            return None
        out[name] = features * cells * math.sqrt(cells[0, 0].numel() / area)
    return out


def texture_distance(trunk: VGGFeatures, image_a: np.ndarray, region_a: np.ndarray, image_b: np.ndarray,
                     region_b: np.ndarray, layers: tuple[str, ...] = TEXTURE_LAYERS) -> float:
    """Sum over ``layers`` of the L1 distance of the two regions' Gram matrices (``models.losses.style_loss``);
    NaN when either region is empty."""
    a, b = region_features(trunk, image_a, region_a, layers), region_features(trunk, image_b, region_b, layers)
    if a is None or b is None:
        return math.nan
    return float(style_loss(a, b, layers))


def mean_and_se(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    """Mean, its standard error (std with ddof 1 / sqrt(n)) and n over the finite values (None when undefined)."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    n = int(finite.size)
    mean = float(finite.mean()) if n else None
    se = float(finite.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"mean": mean, "se": se, "n": n}


# ----------------------------------------------------------------------------- the two methods
def plain_hole(parsing: np.ndarray, source_label: int) -> np.ndarray:
    """bool: the old garment dilated as the editor's garment regions are, never a protected label."""
    garment = (np.asarray(parsing) == source_label).astype(np.uint8)
    frame = figure_frame(parsing)
    r = max(1, round(DILATE_U * frame[0])) if frame is not None else 1
    hole = cv2.dilate(garment, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    return hole & ~np.isin(parsing, PROTECTED)


def _batch(image: np.ndarray, parsing: np.ndarray, conditions: dict[str, torch.Tensor]) -> Batch:
    """A batch of one in the dataset's format with the true before-parsing as the known parsing."""
    batch = {"image": _image_tensor(image), "parsing": torch.from_numpy(parsing.astype(np.int64))[None], **conditions}
    batch["known_fg"] = known_foreground(batch)
    return batch


def method_batches(image: np.ndarray, parsing: np.ndarray, source_label: int, to_category: str,
                   seed: int) -> dict[str, Batch]:
    """The ``swap`` and ``plain`` edits of one pair (module docstring)."""
    swap = swap_conditions(image, parsing, to_category, seed)
    hole = torch.from_numpy(plain_hole(parsing, source_label).astype(np.float32))[None, None]
    plain = {"mask": hole, "sketch": torch.zeros_like(hole), "colour": swap["colour"] * hole,
             "noise": torch.randn(hole.shape, generator=torch.Generator().manual_seed(seed)) * hole}
    return {"swap": _batch(image, parsing, swap), "plain": _batch(image, parsing, plain)}


@dataclass
class SwapScores:
    """Per-pair values of every metric of every method, the truth's texture floor and the figure's rows."""

    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {m: {k: [] for k in METRICS} for m in METHODS})
    truth_texture: list[float] = field(default_factory=list)
    rows: list[list[np.ndarray]] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> dict[str, Any]:
        return {"methods": {m: {k: mean_and_se(v) for k, v in metrics.items()} for m, metrics in self.values.items()},
                "truth": {"texture": mean_and_se(self.truth_texture)}}


def score_pairs(networks: EditorNetworks, stlpips: STLPIPS, pairs: SwapPairs, count: int, seed: int,
                figure_pairs: int) -> SwapScores:
    """Edit the first ``count`` pairs by both methods and score them."""
    scores = SwapScores()
    for i in range(count):
        before, after = np.asarray(pairs.image_before[i]), np.asarray(pairs.image_after[i])
        parsing_before, parsing_after = np.asarray(pairs.parsing_before[i]), np.asarray(pairs.parsing_after[i])
        source, target = int(pairs.source_label[i]), int(pairs.target_label[i])
        try:
            batches = method_batches(before, parsing_before, source, str(pairs.target_category[i]), seed + i)
        except CategorySwapError:  # the before-parsing cannot take the swap (no figure frame): counted
            scores.skipped += 1
            continue
        truth_region, old_region = parsing_after == target, parsing_before == source
        with torch.no_grad():
            real = stlpips.features(_image_tensor(after))
        edited = {}
        for method, batch in batches.items():
            out = two_stage(networks, batch)
            image = image_to_uint8(out.image[0])
            with torch.no_grad():
                lpips = float(stlpips.distance(stlpips.features(_image_tensor(image)), real)[0])
            row = {"target_iou": target_iou(out.completed[0].numpy() == target, truth_region),
                   "st_lpips": lpips,
                   "l1": float(np.abs(image.astype(np.float64) - after).mean() / 255.0),
                   "texture": texture_distance(stlpips.trunk, before, old_region, image, truth_region),
                   "skin_error": skin_colour_error(image, after, parsing_before, parsing_after, source)}
            for key, value in row.items():
                scores.values[method][key].append(value)
            edited[method] = image
        scores.truth_texture.append(texture_distance(stlpips.trunk, before, old_region, after, truth_region))
        if len(scores.rows) < figure_pairs:
            region = batches["swap"]["mask"][0, 0].numpy()
            scores.rows.append([before, hole_overlay(before, region), edited["swap"], edited["plain"], after])
    return scores


# ----------------------------------------------------------------------------- the stage
def _json_safe(value: Any) -> Any:
    """NaN as null (JSON has no NaN and DVC refuses it)."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _write(summary: dict[str, Any], figure: np.ndarray, metrics_path: Path, figure_path: Path) -> None:
    for path in (metrics_path, figure_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    save_png(figure, figure_path)


def run_category_swap(params: Params, root: Path) -> dict[str, Any]:
    """The ``category_swap`` stage: reports/category_swap.json, reports/figures/category_swap.png, one MLflow run
    (none when there are no pairs: the JSON says why)."""
    cfg = params.category_swap
    metrics_path, figure_path = root / CATEGORY_SWAP_DETAIL, root / CATEGORY_SWAP_FIGURE
    for path in (metrics_path, figure_path):
        path.unlink(missing_ok=True)
    pairs = load_swap_pairs(root / SWAP_PAIRS)
    count = min(len(pairs), cfg.max_pairs)
    if not count:  # a photo dataset has no paired truth: say so instead of failing the pipeline
        summary = {"pairs": 0, "available": 0, "skipped": 0, "methods": {}, "truth": {},
                   "note": f"no swap pairs in {SWAP_PAIRS} (only the synthetic source renders the same figure in "
                           "another category): nothing to evaluate"}
        _write(summary, np.full((8, 8, 3), 255, np.uint8), metrics_path, figure_path)
        return summary
    networks = EditorNetworks.from_artifacts(params, root / ARTIFACTS)
    with stage_run(params, STAGE, SECTIONS, root) as run:
        scores = score_pairs(networks, load_stlpips(), pairs, count, cfg.seed, cfg.figure_pairs)
        summary = {"pairs": count - scores.skipped, "available": len(pairs), "skipped": scores.skipped,
                   "label_strokes": bool(networks.parser_net.label_strokes), **scores.summary()}
        figure = make_grid(scores.rows) if scores.rows else np.full((8, 8, 3), 255, np.uint8)
        _write(summary, figure, metrics_path, figure_path)
        run.log_metrics({f"{method}_{key}": value["mean"] for method, metrics in summary["methods"].items()
                         for key, value in metrics.items() if value["mean"] is not None}, step=0)
        if summary["truth"]["texture"]["mean"] is not None:
            run.log_metrics({"truth_texture": summary["truth"]["texture"]["mean"]}, step=0)
        run.log_artifact(metrics_path, STAGE)
        run.log_artifact(figure_path, STAGE)
    return summary
