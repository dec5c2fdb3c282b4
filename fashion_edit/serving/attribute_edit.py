"""Attribute edits with a strength (S2FGAN's slider, seed 003, for garment shape): what the editor, the
CLI, the registered model, the browser page and the evaluation sweep share.

An edit asks for ``{attribute: strength}``, e.g. ``{"sleeve_length": +0.4}``. On a parsing (the
segmenter's for a photo, the truth in the sweep):
1. the hole is the union of each edited attribute's region (the garment and where it may grow,
   ``fashion_edit.data.attributes.attribute_region``), plus any hole the user drew;
2. the parser's attribute targets are the attributes measured on the *unedited* parsing plus the
   strengths (S2FGAN's z + a·w on a code that first holds the photo's own attributes: the parser's
   encoder sees only the erased photo, S2FGAN's sees the whole one). Attributes not edited keep
   their measured value, so they stay put;
3. colour strokes sampled from the old garments inside the hole carry their colours into the new shape, and
   the figure's outline where a sleeve edit erased the arms keeps their pose (``kept_outline``).
A strength of 0 is no edit: attributes asked with strength 0 are dropped.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

from fashion_edit.config import ColourParams, MaskParams, ParserNet
from fashion_edit.data.attributes import (ATTRIBUTE_RANGE, ATTRIBUTES, attribute_index, attribute_region,
                                          garment_strokes_region, kept_outline, measure_attributes)
from fashion_edit.data.conditioning import segment_mean_colour
from fashion_edit.data.dataset import to_unit_range
from fashion_edit.data.masks import colour_stroke_mask
from fashion_edit.errors import FashionEditError

Strengths = Mapping[str, float]
_REQUEST = re.compile(r"^\s*(?P<name>[a-z_]+)\s*=\s*(?P<value>[+-]?(\d+(\.\d*)?|\.\d+))\s*$")
# texture strokes per edit: denser than training's 6 because the whole garment is erased
TEXTURE_STROKES = 10


class AttributeEditError(FashionEditError, ValueError):
    """An attribute edit the model cannot do (unknown name, strength out of range, nothing to edit)."""


def parse_attribute_requests(requests: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["sleeve_length=+0.4", "hem_length=-0.2"]`` (the CLI's ``--attribute``) -> strengths."""
    strengths: dict[str, float] = {}
    for text in requests:
        match = _REQUEST.match(text)
        if match is None:
            raise AttributeEditError(f"--attribute {text!r}: write NAME=STRENGTH, e.g. sleeve_length=+0.4 "
                                     f"(names: {', '.join(ATTRIBUTES)})")
        if match["name"] in strengths:
            raise AttributeEditError(f"--attribute {match['name']} is given twice")
        strengths[match["name"]] = float(match["value"])
    return strengths


def check_strengths(parser_net: ParserNet, strengths: Strengths) -> dict[str, float]:
    """The non-zero strengths, checked against what this parser was trained for."""
    trained = parser_net.attributes
    for name, value in strengths.items():
        if name not in ATTRIBUTES:
            raise AttributeEditError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
        if name not in trained:
            raise AttributeEditError(f"this editor's parser was not trained to edit {name!r} "
                                     f"(it edits: {', '.join(trained) or 'no attributes'}; set parser.attributes "
                                     "in params.yaml and retrain)")
        if not np.isfinite(value) or abs(value) > parser_net.max_strength:
            raise AttributeEditError(f"strength {value} for {name!r} is outside the trained range "
                                     f"[-{parser_net.max_strength}, +{parser_net.max_strength}]")
    return {name: float(value) for name, value in strengths.items() if value != 0}


def attribute_hole(parsing: np.ndarray, strengths: Strengths) -> np.ndarray:
    """bool (H, W): the union of the edited attributes' regions."""
    hole = np.zeros(parsing.shape, bool)
    for name in strengths:
        hole |= attribute_region(parsing, name)
    return hole


def attribute_targets(parser_net: ParserNet, parsing: np.ndarray, strengths: Strengths) -> np.ndarray:
    """float32 (k,) in the parser's attribute order: measured on ``parsing`` (the unedited one), plus the
    strengths, kept inside the attribute's range (sleeves end at the wrist); an attribute that cannot be
    measured is NaN (the parser keeps its own estimate)."""
    measured = measure_attributes(parsing)
    targets = np.array([measured[attribute_index(name)] for name in parser_net.attributes], np.float32)
    for name, value in strengths.items():
        if not np.isfinite(measured[attribute_index(name)]):
            raise AttributeEditError(f"cannot edit {name!r}: the garment it measures is not in this photo's parsing")
        column = parser_net.attributes.index(name)
        targets[column] = np.clip(targets[column] + value, *ATTRIBUTE_RANGE[name])
    return targets


def texture_strokes(rng: np.random.Generator, image: np.ndarray, parsing: np.ndarray,
                    hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour uint8 (H, W, 3), strokes bool (H, W)): short strokes on the erased garments, painted with each
    segment's mean colour as preprocess computes it (what the inpainter was trained to follow)."""
    height, width = parsing.shape
    garments = garment_strokes_region(parsing, hole)
    if not garments.any():
        return np.zeros((height, width, 3), np.uint8), np.zeros((height, width), bool)
    strokes = colour_stroke_mask(rng, height, width, MaskParams(colour_strokes=TEXTURE_STROKES),
                                 region=garments.astype(np.uint8)).astype(bool) & garments
    return segment_mean_colour(image, parsing, ColourParams()), strokes


def edit_conditions(image: np.ndarray, parsing: np.ndarray, hole: np.ndarray, strengths: Strengths,
                    seed: int) -> dict[str, torch.Tensor]:
    """The batch entries an attribute edit sets (batch of one, model resolution): ``mask`` (1, 1, H, W), ``sketch``
    (the outlines that keep the pose, ``kept_outline``), ``colour`` (1, 3, H, W) texture strokes in [-1, 1] and 0
    elsewhere, ``noise`` N(0, 1) inside the hole."""
    colour, strokes = texture_strokes(np.random.default_rng(seed), image, parsing, hole)
    lines = np.zeros(hole.shape, bool)
    for name in strengths:
        lines |= kept_outline(parsing, hole, name)
    mask = torch.from_numpy(hole.astype(np.float32))[None, None]
    return {"mask": mask,
            "sketch": torch.from_numpy(lines.astype(np.float32))[None, None],
            "colour": torch.from_numpy(to_unit_range(colour) * strokes[None])[None],
            "noise": torch.randn(mask.shape, generator=torch.Generator().manual_seed(seed)) * mask}
