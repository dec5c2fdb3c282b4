"""Training/evaluation items built from a prepared split (DESIGN.md 3.2 conditioning).

Random parts (hole, colour strokes, noise) come from ``np.random.default_rng([seed, epoch, i])``
so an item is reproducible given (seed, epoch, index) whatever the worker or process that
draws it. With ``fixed_masks=True`` (evaluation) the stored eval masks/strokes are used and the
noise comes from ``default_rng([seed, i])``: identical every epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fashion_edit.config import MaskParams
from fashion_edit.data.labels import BACKGROUND
from fashion_edit.data.masks import colour_stroke_mask, hole_mask
from fashion_edit.data.store import PreparedSplit


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    return pixels.transpose(2, 0, 1).astype(np.float32) * (2.0 / 255.0) - 1.0


class EditingDataset(Dataset):
    """``__getitem__`` -> dict of tensors: image, parsing, mask, sketch, colour, noise, known_fg, index."""

    def __init__(self, split: PreparedSplit, masks: MaskParams, seed: int, fixed_masks: bool) -> None:
        if fixed_masks and (split.eval_masks is None or split.eval_strokes is None):
            raise ValueError(
                f"{split.root}: fixed_masks=True needs eval_masks.npy/eval_strokes.npy, which only val/test splits have"
            )
        self.split = split
        self.masks = masks
        self.seed = seed
        self.fixed_masks = fixed_masks
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new training masks/noise for this epoch (no effect with fixed masks)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def _holes_and_rng(self, index: int, parsing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        if self.fixed_masks:
            rng = np.random.default_rng([self.seed, index])
            return np.asarray(self.split.eval_masks[index]), np.asarray(self.split.eval_strokes[index]), rng
        rng = np.random.default_rng([self.seed, self.epoch, index])
        height, width = parsing.shape
        mask = hole_mask(rng, parsing, self.masks)
        strokes = colour_stroke_mask(rng, height, width, self.masks, region=mask)
        return mask, strokes, rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items in {self.split.root}")
        parsing = np.asarray(self.split.parsing[index])
        mask_u8, strokes, rng = self._holes_and_rng(index, parsing)
        mask = mask_u8.astype(np.float32)[None]
        colour_where = (mask_u8 & strokes).astype(np.float32)[None]
        noise = rng.standard_normal(mask.shape, dtype=np.float32) * mask
        known_fg = (1.0 - mask) * (parsing != BACKGROUND)[None]
        return {
            "image": torch.from_numpy(to_unit_range(np.asarray(self.split.images[index]))),
            "parsing": torch.from_numpy(parsing.astype(np.int64)),
            "mask": torch.from_numpy(mask),
            "sketch": torch.from_numpy(self.split.sketch[index].astype(np.float32)[None] * mask),
            "colour": torch.from_numpy(to_unit_range(np.asarray(self.split.colour[index])) * colour_where),
            "noise": torch.from_numpy(noise),
            "known_fg": torch.from_numpy(known_fg.astype(np.float32)),
            "index": torch.tensor(index, dtype=torch.int64),
        }
