"""Hole / stroke masks: DeepFill v2 statistics, determinism, garment masks."""
from __future__ import annotations

import numpy as np
import pytest

from fashion_edit.config import MaskParams
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.masks import (
    brush_strokes,
    colour_stroke_mask,
    free_form_mask,
    garment_mask,
    hole_mask,
)

SIZES = [(128, 128), (256, 256), (512, 320)]
SEEDS = range(200)


def _ratios(height: int, width: int, p: MaskParams) -> np.ndarray:
    return np.array([free_form_mask(np.random.default_rng(s), height, width, p).mean() for s in SEEDS])


@pytest.mark.parametrize("height,width", SIZES)
def test_stroke_hole_ratio_within_documented_bounds(height: int, width: int) -> None:
    ratios = _ratios(height, width, MaskParams(box_prob=0.0))
    assert 0.12 <= ratios.mean() <= 0.21
    assert ratios.min() >= 0.005 and ratios.max() <= 0.55


@pytest.mark.parametrize("height,width", SIZES)
def test_stroke_plus_box_hole_ratio_within_documented_bounds(height: int, width: int) -> None:
    ratios = _ratios(height, width, MaskParams(box_prob=1.0))
    assert 0.22 <= ratios.mean() <= 0.34
    assert ratios.min() >= 0.05 and ratios.max() <= 0.65


def test_masks_are_binary_uint8_of_the_requested_shape() -> None:
    mask = free_form_mask(np.random.default_rng(0), 96, 160, MaskParams())
    assert mask.shape == (96, 160) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1} and mask.any()


def test_same_seed_same_mask_and_different_seeds_differ() -> None:
    p = MaskParams()
    parsing = np.zeros((128, 128), np.uint8)
    first = hole_mask(np.random.default_rng(7), parsing, p)
    again = hole_mask(np.random.default_rng(7), parsing, p)
    other = hole_mask(np.random.default_rng(8), parsing, p)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_wider_brush_params_erase_more() -> None:
    thin = MaskParams(min_width=4, max_width=6, box_prob=0)
    thick = MaskParams(min_width=40, max_width=60, box_prob=0)
    ratio = lambda p: np.mean([brush_strokes(np.random.default_rng(s), 128, 128, p).mean() for s in range(50)])  # noqa: E731
    assert ratio(thick) > 3 * ratio(thin)


def _figure_parsing() -> np.ndarray:
    parsing = np.zeros((128, 128), np.uint8)
    parsing[20:40, 50:78] = LABEL_ID["face"]
    parsing[40:80, 40:88] = LABEL_ID["upper-clothes"]
    parsing[80:120, 45:83] = LABEL_ID["pants"]
    return parsing


def test_garment_mask_covers_one_garment_dilated() -> None:
    parsing = _figure_parsing()
    p = MaskParams(garment_dilation=3)
    masks = [garment_mask(np.random.default_rng(s), parsing, p) for s in range(20)]
    chosen = set()
    for mask in masks:
        for label in (LABEL_ID["upper-clothes"], LABEL_ID["pants"]):
            region = parsing == label
            if mask[region].all():
                chosen.add(label)
                assert mask.sum() > region.sum()  # dilated beyond the garment
                assert not mask[parsing == LABEL_ID["face"]].all()
    assert chosen == {LABEL_ID["upper-clothes"], LABEL_ID["pants"]}


def test_garment_mask_is_none_without_garments() -> None:
    parsing = np.zeros((64, 64), np.uint8)
    parsing[10:50, 20:40] = LABEL_ID["face"]
    assert garment_mask(np.random.default_rng(0), parsing, MaskParams()) is None


def test_hole_mask_falls_back_to_strokes_when_no_garment() -> None:
    p = MaskParams(garment_prob=1.0)
    mask = hole_mask(np.random.default_rng(0), np.zeros((64, 64), np.uint8), p)
    assert mask.any()


def test_hole_mask_uses_garment_when_asked() -> None:
    parsing = _figure_parsing()
    mask = hole_mask(np.random.default_rng(1), parsing, MaskParams(garment_prob=1.0, garment_dilation=0))
    assert any(np.array_equal(mask, (parsing == g).astype(np.uint8)) for g in (LABEL_ID["upper-clothes"], LABEL_ID["pants"]))


def test_colour_strokes_are_sparse_and_start_inside_the_region() -> None:
    p = MaskParams()
    region = np.zeros((128, 128), np.uint8)
    region[30:60, 70:110] = 1
    for seed in range(20):
        strokes = colour_stroke_mask(np.random.default_rng(seed), 128, 128, p, region=region)
        assert 0 < strokes.mean() < 0.15
        assert (strokes & region).any()


def test_no_colour_strokes_when_count_is_zero() -> None:
    strokes = colour_stroke_mask(np.random.default_rng(0), 64, 64, MaskParams(colour_strokes=0))
    assert not strokes.any()
