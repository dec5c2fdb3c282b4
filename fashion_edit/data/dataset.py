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
from fashion_edit.data.attributes import (ATTRIBUTES, attribute_region, figure_frame, garment_strokes_region,
                                          kept_outline, measure_attributes)
from fashion_edit.data.categories import category_training_hole
from fashion_edit.data.labels import BACKGROUND
from fashion_edit.data.masks import colour_stroke_mask, hole_mask
from fashion_edit.data.store import PreparedSplit


CATEGORY_HOLE = -2  # _holes_and_rng's kind of a category swap's region (>= 0: an attribute's, -1: a random hole)


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    return pixels.transpose(2, 0, 1).astype(np.float32) * (2.0 / 255.0) - 1.0


def _unit_tensor(pixels: np.ndarray) -> torch.Tensor:
    """:func:`to_unit_range` in torch (about 3x faster on one item)."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float().mul_(2.0 / 255.0).sub_(1.0)


def _as_float(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) -> float32 (1, H, W)."""
    return torch.from_numpy(np.array(array))[None].float()


class EditingDataset(Dataset):
    """``__getitem__`` -> dict of tensors: image, parsing, mask, sketch, colour, noise, known_fg, index, and with
    ``with_attributes`` the garment attributes of the whole parsing (len(ATTRIBUTES), NaN = not measurable),
    ``attribute_hole`` (the attribute whose region the hole is, -1 for an ordinary hole), ``attribute_shift``
    (a random change of it in [-1, 1], 0 for ordinary holes) and ``figure_frame`` (head unit, hip row, ankle row).

    ``attribute_holes``: probability that a training hole is the region an attribute edit erases (a random
    one of ``ATTRIBUTES``), so an attribute-aware parser learns to complete what the editor will ask.

    ``label_strokes`` (a parser with label strokes, issue 14): the item gains ``label_strokes`` (H, W) int64, the
    true class on a few strokes inside the hole (-1 elsewhere) with this probability per training item, none at
    evaluation; ``category_holes``: probability that a training hole is the region a category swap of the
    figure's own lower garment erases (fashion_edit/data/categories.py), with label strokes from the truth."""

    def __init__(self, split: PreparedSplit, masks: MaskParams, seed: int, fixed_masks: bool,
                 attribute_holes: float = 0.0, with_attributes: bool = False, label_strokes: float | None = None,
                 category_holes: float = 0.0) -> None:
        if fixed_masks and (split.eval_masks is None or split.eval_strokes is None):
            raise ValueError(
                f"{split.root}: fixed_masks=True needs eval_masks.npy/eval_strokes.npy, which only val/test splits have"
            )
        self.split = split
        self.masks = masks
        self.seed = seed
        self.fixed_masks = fixed_masks
        self.attribute_holes, self.with_attributes = attribute_holes, with_attributes
        self.label_strokes, self.category_holes = label_strokes, category_holes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new training masks/noise for this epoch (no effect with fixed masks)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def _holes_and_rng(self, index: int, parsing: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.random.Generator, int, np.ndarray | None]:
        """(hole, colour strokes, the item's generator, which attribute's region the hole is (-1: none,
        CATEGORY_HOLE: a swap's), label strokes the hole comes with or None)."""
        if self.fixed_masks:
            rng = np.random.default_rng([self.seed, index])
            return np.asarray(self.split.eval_masks[index]), np.asarray(self.split.eval_strokes[index]), rng, -1, None
        rng = np.random.default_rng([self.seed, self.epoch, index])
        height, width = parsing.shape
        if self.category_holes > 0 and rng.random() < self.category_holes:
            swap = category_training_hole(rng, parsing)
            if swap is not None:
                mask, labels = swap
                region = garment_strokes_region(parsing, mask).astype(np.uint8)  # texture strokes, as a swap draws
                strokes = colour_stroke_mask(rng, height, width, self.masks, region=region) & region
                return mask.astype(np.uint8), strokes, rng, CATEGORY_HOLE, labels
        # drawn only when on, so the default stream of random holes is unchanged
        if self.attribute_holes > 0 and rng.random() < self.attribute_holes and (parsing != BACKGROUND).any():
            which = int(rng.integers(len(ATTRIBUTES)))  # the attribute whose region the hole is
            mask = attribute_region(parsing, ATTRIBUTES[which]).astype(np.uint8)
            # strokes as an attribute edit draws them: on the erased garments only
            region = garment_strokes_region(parsing, mask.astype(bool)).astype(np.uint8)
            return mask, colour_stroke_mask(rng, height, width, self.masks, region=region) & region, rng, which, None
        mask = hole_mask(rng, parsing, self.masks)
        strokes = colour_stroke_mask(rng, height, width, self.masks, region=mask)
        return mask, strokes, rng, -1, None

    def _sketch(self, index: int, parsing: np.ndarray, mask: np.ndarray, attribute_hole: int) -> np.ndarray:
        """The image's edges inside the hole; for an attribute's region, the lines its edit draws instead (the
        edges would show where the old sleeve ended)."""
        if attribute_hole == CATEGORY_HOLE:  # a swap draws no lines: the new garment's outline is the parser's
            return np.zeros_like(mask)
        if attribute_hole < 0:
            return self.split.sketch[index] & mask
        return kept_outline(parsing, mask.astype(bool), ATTRIBUTES[attribute_hole]).astype(np.uint8)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items in {self.split.root}")
        parsing = np.array(self.split.parsing[index])
        mask, strokes, rng, attribute_hole, labels = self._holes_and_rng(index, parsing)
        hole = mask.astype(bool)
        noise = np.zeros((1, *mask.shape), dtype=np.float32)
        noise[0, hole] = rng.standard_normal(int(hole.sum()), dtype=np.float32)  # N(0, 1) inside the hole only
        item = {
            "image": _unit_tensor(self.split.images[index]),
            "parsing": torch.from_numpy(parsing.astype(np.int64)),
            "mask": _as_float(mask),
            "sketch": _as_float(self._sketch(index, parsing, mask, attribute_hole)),
            "colour": _unit_tensor(self.split.colour[index]) * _as_float(mask & strokes),
            "noise": torch.from_numpy(noise),
            "known_fg": _as_float((parsing != BACKGROUND) & ~hole),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.with_attributes:
            item["attributes"] = torch.from_numpy(measure_attributes(parsing))
            item["attribute_hole"] = torch.tensor(max(attribute_hole, -1), dtype=torch.int64)  # a swap's: -1
            # a counterfactual change of that attribute, in units of parser.max_strength (training asks the
            # parser for it too); drawn last so the item's other random parts are as without it
            item["attribute_shift"] = torch.tensor(rng.uniform(-1, 1) if attribute_hole >= 0 else 0.0,
                                                   dtype=torch.float32)
            frame = figure_frame(parsing)  # (head unit, hip row, ankle row): the soft measures' scale
            item["figure_frame"] = torch.tensor(frame if frame is not None else (float("nan"),) * 3)
        if self.label_strokes is not None:
            item["label_strokes"] = torch.from_numpy(self._label_strokes(rng, parsing, mask, labels))
        return item

    def _label_strokes(self, rng: np.random.Generator, parsing: np.ndarray, mask: np.ndarray,
                       labels: np.ndarray | None) -> np.ndarray:
        """The true class on a few strokes inside the hole (-1 elsewhere), drawn last so the item's other random
        parts are as without them; none at evaluation (the headline's inputs stay FE-GAN's)."""
        if labels is not None:
            return labels.astype(np.int64)
        none = np.full(parsing.shape, -1, dtype=np.int64)
        if self.fixed_masks or rng.random() >= self.label_strokes:
            return none
        strokes = colour_stroke_mask(rng, *parsing.shape, self.masks, region=mask).astype(bool) & mask.astype(bool)
        return np.where(strokes, parsing.astype(np.int64), none)
