"""Hole masks and colour-stroke masks (1 = erased / stroked), drawn from a numpy Generator.

Free-form masks follow DeepFill v2's brush-stroke algorithm (Yu et al., "Free-Form Image
Inpainting with Gated Convolution", ICCV 2019, appendix): 1-3 strokes, each a polyline of
4-11 vertices whose turning angles alternate around 2*pi/5 +- U(0, 2*pi/15), segment length
~ N(r, r/2) clipped to [0, 2r] with r = sqrt(H^2 + W^2) / 8, brush width ~ U(12, 40), round
joints (a filled circle at every vertex), then random horizontal/vertical flips.
The published widths are for 256 px images; here they are scaled by min(H, W) / 256 so a
mask covers about the same fraction of a 128 px and a 512 px image.

Optional extras (params ``masks.*``):
- ``box_prob``: OR a random axis-aligned box with sides U(1/4, 1/2) of the image's sides.
- ``garment_prob``: instead of strokes, the region of one garment class present in the
  parsing, dilated by ``garment_dilation`` pixels ("replace this garment").

Measured hole ratios (fraction of pixels erased) with the default params, seeds 0..1999
(tests/test_masks.py checks seeds 0..199 against the bounds in brackets):

    free_form_mask, box_prob=0   128x128  mean 0.168  range 0.010-0.467   [mean 0.12-0.21, each 0.005-0.55]
                                 256x256  mean 0.163  range 0.010-0.447
                                 512x320  mean 0.132  range 0.008-0.364   (narrow side sets the width)
    free_form_mask, box_prob=1   128x128  mean 0.282  range 0.087-0.581   [mean 0.22-0.34, each 0.05-0.65]
                                 256x256  mean 0.278  range 0.084-0.566
                                 512x320  mean 0.253  range 0.086-0.521
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from fashion_edit.config import MaskParams
from fashion_edit.data.labels import LABEL_ID

# DeepFill v2 stroke constants (angles in radians)
MEAN_ANGLE = 2 * math.pi / 5
ANGLE_RANGE = 2 * math.pi / 15
REFERENCE_SIZE = 256  # brush widths in MaskParams are pixels at this image size

# classes a user would "replace": clothing and accessories (not skin, hair or face)
GARMENT_CLASSES: tuple[int, ...] = tuple(
    LABEL_ID[n] for n in ("hat", "upper-clothes", "dress", "coat", "pants", "scarf", "skirt")
)
MIN_GARMENT_FRACTION = 0.01  # ignore slivers smaller than 1 % of the image


def _size_scale(height: int, width: int) -> float:
    return min(height, width) / REFERENCE_SIZE


def _draw_polyline(mask: np.ndarray, vertices: np.ndarray, width: int) -> None:
    """Thick polyline with round joints and ends (a circle at every vertex)."""
    pts = np.round(vertices).astype(np.int32)
    cv2.polylines(mask, [pts.reshape(-1, 1, 2)], isClosed=False, color=1, thickness=width, lineType=cv2.LINE_8)
    radius = max(width // 2, 1)
    for x, y in pts:
        cv2.circle(mask, (int(x), int(y)), radius, 1, thickness=-1)


def _stroke_vertices(rng: np.random.Generator, height: int, width: int, num_vertices: int) -> np.ndarray:
    """One DeepFill v2 stroke: a start point plus ``num_vertices`` steps of alternating turns."""
    radius = math.sqrt(height * height + width * width) / 8
    angle_min = MEAN_ANGLE - rng.uniform(0, ANGLE_RANGE)
    angle_max = MEAN_ANGLE + rng.uniform(0, ANGLE_RANGE)
    angles = rng.uniform(angle_min, angle_max, size=num_vertices)
    angles[::2] = 2 * math.pi - angles[::2]  # alternate the turning direction
    steps = np.clip(rng.normal(radius, radius / 2, size=num_vertices), 0, 2 * radius)
    vertices = np.empty((num_vertices + 1, 2), dtype=np.float64)
    vertices[0] = rng.uniform(0, width), rng.uniform(0, height)
    for i in range(num_vertices):
        x = np.clip(vertices[i, 0] + steps[i] * math.cos(angles[i]), 0, width - 1)
        y = np.clip(vertices[i, 1] + steps[i] * math.sin(angles[i]), 0, height - 1)
        vertices[i + 1] = x, y
    return vertices


def brush_strokes(rng: np.random.Generator, height: int, width: int, p: MaskParams) -> np.ndarray:
    """DeepFill v2 free-form strokes (no box), uint8 {0, 1} of shape (height, width)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = _size_scale(height, width)
    for _ in range(int(rng.integers(p.min_strokes, p.max_strokes + 1))):
        num_vertices = int(rng.integers(p.min_vertices, p.max_vertices + 1))
        vertices = _stroke_vertices(rng, height, width, num_vertices)
        brush = max(int(round(rng.uniform(p.min_width, p.max_width) * scale)), 1)
        _draw_polyline(mask, vertices, brush)
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    return np.ascontiguousarray(mask)


def random_box(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An axis-aligned box with sides U(1/4, 1/2) of the image's, uniformly placed."""
    mask = np.zeros((height, width), dtype=np.uint8)
    box_h = max(int(round(height * rng.uniform(0.25, 0.5))), 1)
    box_w = max(int(round(width * rng.uniform(0.25, 0.5))), 1)
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    mask[top : top + box_h, left : left + box_w] = 1
    return mask


def free_form_mask(rng: np.random.Generator, height: int, width: int, p: MaskParams) -> np.ndarray:
    """Brush strokes, OR a random box with probability ``p.box_prob``; uint8 {0, 1}."""
    mask = brush_strokes(rng, height, width, p)
    if rng.random() < p.box_prob:
        mask |= random_box(rng, height, width)
    return mask


def garment_mask(rng: np.random.Generator, parsing: np.ndarray, p: MaskParams) -> np.ndarray | None:
    """The dilated region of one garment class present in ``parsing`` (uniform choice), or
    None when no garment covers at least 1 % of the image."""
    counts = np.bincount(parsing.ravel(), minlength=256)
    min_pixels = MIN_GARMENT_FRACTION * parsing.size
    present = [c for c in GARMENT_CLASSES if counts[c] >= min_pixels]
    if not present:
        return None
    chosen = present[int(rng.integers(len(present)))]
    mask = (parsing == chosen).astype(np.uint8)
    if p.garment_dilation > 0:
        size = 2 * p.garment_dilation + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        mask = cv2.dilate(mask, kernel)
    return mask


def hole_mask(rng: np.random.Generator, parsing: np.ndarray, p: MaskParams) -> np.ndarray:
    """The training/evaluation hole: a garment mask with probability ``p.garment_prob`` (when a
    garment is present), else a free-form mask. Never empty."""
    height, width = parsing.shape
    if rng.random() < p.garment_prob:
        mask = garment_mask(rng, parsing, p)
        if mask is not None:
            return mask
    return free_form_mask(rng, height, width, p)


def colour_stroke_mask(
    rng: np.random.Generator, height: int, width: int, p: MaskParams, region: np.ndarray | None = None
) -> np.ndarray:
    """``p.colour_strokes`` short thin strokes (what a user scribbles to pick colours), uint8 {0, 1}.

    Each stroke is a 2-4 segment random walk with steps of ~1/10 of the image diagonal and width
    ``p.colour_stroke_width`` (pixels at 256 px, scaled). With ``region`` (e.g. the hole) the
    strokes start at random pixels inside it, so they mostly land where colour hints matter.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    if p.colour_strokes == 0:
        return mask
    brush = max(int(round(p.colour_stroke_width * _size_scale(height, width))), 1)
    step = math.sqrt(height * height + width * width) / 10
    starts = _stroke_starts(rng, height, width, p.colour_strokes, region)
    for start in starts:
        num_steps = int(rng.integers(2, 5))
        angles = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.uniform(-math.pi / 3, math.pi / 3, size=num_steps))
        lengths = rng.uniform(0.5, 1.0, size=num_steps) * step
        offsets = np.cumsum(np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None], axis=0)
        vertices = np.vstack([start, start + offsets])
        vertices[:, 0] = np.clip(vertices[:, 0], 0, width - 1)
        vertices[:, 1] = np.clip(vertices[:, 1], 0, height - 1)
        _draw_polyline(mask, vertices, brush)
    return mask


def _stroke_starts(
    rng: np.random.Generator, height: int, width: int, count: int, region: np.ndarray | None
) -> np.ndarray:
    """(count, 2) start points (x, y): uniform in the image, or uniform over ``region``'s pixels."""
    if region is not None and region.any():
        points = cv2.findNonZero(region.astype(np.uint8, copy=False)).reshape(-1, 2)  # (x, y), row-major like np.nonzero, but faster
        return points[rng.integers(0, len(points), size=count)].astype(np.float64)
    return np.stack([rng.uniform(0, width, size=count), rng.uniform(0, height, size=count)], axis=1)
