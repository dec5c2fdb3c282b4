"""Pictures of batches for people: colourised parsing maps and sample grids as uint8 RGB arrays.

Every function returns ``np.ndarray`` (H, W, 3) uint8 RGB so the result can be written with
cv2 (after RGB->BGR) or logged to MLflow as a PNG unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from fashion_edit.data.labels import PALETTE

_PALETTE = np.asarray(PALETTE, dtype=np.uint8)
HOLE_TINT = np.array([255, 0, 255], dtype=np.float32)  # magenta: clearly not a garment colour


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colourise_parsing(parsing: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) label ids -> (H, W, 3) RGB with the LIP-20 palette; unknown ids render white."""
    labels = _numpy(parsing).astype(np.int64)
    out = np.full((*labels.shape, 3), 255, dtype=np.uint8)
    known = (labels >= 0) & (labels < len(_PALETTE))
    out[known] = _PALETTE[labels[known]]
    return out


def image_to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    data = _numpy(image)
    return np.clip(np.round((data.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def mask_to_uint8(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """(1, H, W) or (H, W) in {0, 1} -> white-on-black (H, W, 3) uint8."""
    data = _numpy(mask)
    data = data[0] if data.ndim == 3 else data
    grey = np.clip(np.round(data * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def hole_overlay(background: np.ndarray, mask: torch.Tensor | np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Tint the hole of a (H, W, 3) uint8 picture so the erased region is visible."""
    m = _numpy(mask)
    m = (m[0] if m.ndim == 3 else m)[..., None].astype(np.float32)
    out = background.astype(np.float32) * (1 - alpha * m) + HOLE_TINT * (alpha * m)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def condition_picture(mask: torch.Tensor | np.ndarray, sketch: torch.Tensor | np.ndarray,
                      colour: torch.Tensor | np.ndarray) -> np.ndarray:
    """What the user drew: grey hole, colour strokes in their colour, sketch lines in black."""
    m = _numpy(mask)
    m = m[0] if m.ndim == 3 else m
    s = _numpy(sketch)
    s = s[0] if s.ndim == 3 else s
    c = _numpy(colour)  # (3, H, W) in [-1, 1], exactly 0 where no stroke
    stroked = np.any(c != 0, axis=0)
    out = np.full((*m.shape, 3), 255, dtype=np.uint8)
    out[m > 0.5] = 160
    strokes = image_to_uint8(c)
    out[stroked] = strokes[stroked]
    out[s > 0.5] = 0
    return out


def make_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 pictures: one list per row, same length each."""
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one row with one picture")
    height, width = rows[0][0].shape[:2]
    n_cols = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != n_cols:
            raise ValueError(f"make_grid: row {r} has {len(row)} pictures, row 0 has {n_cols}")
        for c, pic in enumerate(row):
            if pic.shape != (height, width, 3) or pic.dtype != np.uint8:
                raise ValueError(f"make_grid: picture ({r}, {c}) is {pic.shape} {pic.dtype}, "
                                 f"expected ({height}, {width}, 3) uint8")
    grid = np.full((len(rows) * (height + pad) + pad, n_cols * (width + pad) + pad, 3), pad_value, np.uint8)
    for r, row in enumerate(rows):
        for c, pic in enumerate(row):
            y, x = pad + r * (height + pad), pad + c * (width + pad)
            grid[y:y + height, x:x + width] = pic
    return grid


def save_png(picture: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) uint8 RGB picture as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
