"""Parsing-aware coarse fill of a hole: the inpainter's starting point (no learned weights).

Each parsing class is filled from its own known pixels by push-pull interpolation (a mask-weighted
image pyramid: average the known samples down to 1x1, then fill every unknown pixel from the
coarsest level that has samples, blending in finer levels where they are dense). The hole pixel
takes the fill of the class the (completed) parsing gives it, so colours do not bleed across
garment boundaries the way a diffusion fill (OpenCV Telea) does. Colour strokes inside the hole
are samples of the class under them. A class with no sample anywhere falls back to the
class-agnostic fill of all known pixels. The generator learns only a residual on top of this,
which is what makes a short CPU budget enough (DeepFill's coarse-to-fine idea, with the coarse
stage computed instead of learned).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# a pooled window counts as fully trusted from this share of samples on (finer levels blend in smoothly)
_TRUST = 0.25


def push_pull(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill (N, C, H, W) ``values`` where ``weights`` (N, 1, H, W) is 0 from the weighted pyramid.

    Returns the filled values and whether each map had any sample at all (N,) bool."""
    levels = [(values * weights, weights)]
    while min(levels[-1][1].shape[-2:]) > 1:
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    v, w = levels[-1]
    filled = v / w.clamp_min(1e-8)
    for v, w in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        fine = v / w.clamp_min(1e-8)
        trust = (w / _TRUST).clamp(max=1.0)
        filled = trust * fine + (1 - trust) * coarse
    has_samples = levels[-1][1].flatten(1).amax(dim=1) > 0
    return filled, has_samples


def stroke_mask(colour: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) 1 where a colour stroke was drawn: the colour map is exactly 0 elsewhere, and no 8-bit
    colour maps to exactly 0 in [-1, 1] (it would be 127.5 of 255)."""
    return (colour != 0).any(dim=1, keepdim=True).to(colour.dtype)


def parsing_aware_fill(image: torch.Tensor, hole: torch.Tensor, parsing: torch.Tensor,
                       colour: torch.Tensor) -> torch.Tensor:
    """Coarse fill (B,3,H,W) of ``image`` inside ``hole`` (B,1,H,W, 1 = erased), known pixels unchanged.

    parsing: (B,K,H,W) one-hot (or soft) completed parsing; colour: (B,3,H,W) colour strokes
    (0 where none), used as samples inside the hole."""
    if not torch.compiler.is_exporting():  # a data-dependent shape: an exported graph fills every class
        # only the classes the hole holds are filled (with a one-hot parsing usually a few of the 20): known
        # pixels are kept as they are, so the others' fills would be multiplied by zero
        needed = (parsing * hole).flatten(2).amax(dim=2).amax(dim=0) > 0
        parsing = parsing[:, needed | ~needed.any()]  # no hole at all: keep every class, the fill is unused
    b, k, height, width = parsing.shape
    known = 1 - hole
    strokes = stroke_mask(colour) * hole
    samples = image * known + colour * strokes              # (B,3,H,W)
    sampled = known + strokes                               # (B,1,H,W)
    per_class_w = (parsing * sampled).reshape(b * k, 1, height, width)
    per_class_v = samples.unsqueeze(1).expand(b, k, 3, height, width).reshape(b * k, 3, height, width)
    class_fill, class_has = push_pull(per_class_v, per_class_w)
    any_fill, _ = push_pull(samples, sampled)
    class_fill = class_fill.reshape(b, k, 3, height, width)
    usable = class_has.reshape(b, k, 1, 1, 1).to(image.dtype)
    fill = class_fill * usable + any_fill.unsqueeze(1) * (1 - usable)
    coarse = (fill * parsing.unsqueeze(2)).sum(dim=1) / parsing.sum(dim=1, keepdim=True).clamp_min(1e-8)
    return image * known + coarse * hole
