"""Category swaps (issue 14, seed 002's Design-GAN): what the editor, the CLI (``--to``), the registered model
(``to_category``), the browser page and the ``category_swap`` evaluation share.

A swap to ``trousers`` or ``skirt`` on a parsing (the segmenter's for a photo, the truth in the evaluation):
1. the source is the lower garment that is not the target (``fashion_edit.data.categories.swap_source``);
2. the hole is the old garment united with the target's place (``swap_region``), plus any hole the user drew;
3. label strokes of the target class (and, for a skirt, of the legs below its hem) tell the parser what to draw
   (``target_label_strokes``): the parser must have been trained with them (``parser.label_strokes``);
4. texture strokes carry the old garment's colour into the new one: short strokes on the old garment where the
   target surely lies (``fashion_edit.serving.attribute_edit.texture_strokes`` in ``target_core``) and on every
   target label stroke, painted with the old garment's mean colour as ``preprocess`` computes it (what the
   inpainter was trained to follow); leg strokes get the photo's skin colour (Design-GAN's skin term, as a
   hint). No garment colour goes where the old garment will give way to skin or background.
"""
from __future__ import annotations

import numpy as np
import torch

from fashion_edit.config import ColourParams, ParserNet
from fashion_edit.data.categories import (SWAP_CATEGORIES, CategorySwapError, category_label, swap_region,
                                          swap_source, target_core, target_label_strokes)
from fashion_edit.data.conditioning import segment_mean_colour
from fashion_edit.data.dataset import to_unit_range
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.serving.attribute_edit import texture_strokes

LEG_LABELS = (LABEL_ID["left-leg"], LABEL_ID["right-leg"])
# whose colour new legs get, in order of preference: legs look most like legs, then arms, then the rest
SKIN = (*LEG_LABELS, LABEL_ID["left-arm"], LABEL_ID["right-arm"], LABEL_ID["torso-skin"], LABEL_ID["face"])


def check_category(parser_net: ParserNet, to_category: str | None) -> str | None:
    """The swap's category name in canonical form (None: no swap), checked against what this parser can do."""
    if to_category is None:
        return None
    name = str(to_category).strip().lower()
    category_label(name)  # unknown names: the error lists the known ones
    if not parser_net.label_strokes:
        raise CategorySwapError(f"this editor's parser was not trained with label strokes, so it cannot swap a "
                                f"garment to {name}: set parser.label_strokes: true in params.yaml and retrain")
    return name


def known_categories(parser_net: ParserNet) -> list[str]:
    """The categories this editor swaps to (none when its parser has no label strokes)."""
    return list(SWAP_CATEGORIES) if parser_net.label_strokes else []


def swap_texture(rng: np.random.Generator, image: np.ndarray, parsing: np.ndarray, source: int, to_category: str,
                 label_strokes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour uint8 (H, W, 3), strokes bool (H, W)): the old garment's mean colour on texture strokes where the
    old garment meets the target's core and on every target label stroke; the photo's skin colour on leg strokes
    (when some skin shows). Segment mean colours as ``preprocess`` computes them."""
    means = segment_mean_colour(image, parsing, ColourParams())
    colour = np.zeros_like(means)
    target = label_strokes == category_label(to_category)
    _, strokes = texture_strokes(rng, image, parsing, target_core(parsing, to_category) & (parsing == source))
    strokes |= target
    garment = _mean_of(means, parsing, (source,))
    if garment is None:  # no old garment to take a colour from: no texture strokes
        strokes[:] = False
    else:
        colour[strokes] = garment
    skin = _mean_of(means, parsing, SKIN)
    legs = np.isin(label_strokes, LEG_LABELS)
    if skin is not None and legs.any():
        colour[legs] = skin
        strokes |= legs
    return colour, strokes


def _mean_of(means: np.ndarray, parsing: np.ndarray, labels: tuple[int, ...]) -> np.ndarray | None:
    """The segment mean colour of the first of ``labels`` the parsing shows (None: none shows)."""
    for label in labels:
        ys, xs = np.nonzero(parsing == label)
        if ys.size:
            return means[ys[0], xs[0]]
    return None


def swap_conditions(image: np.ndarray, parsing: np.ndarray, to_category: str, seed: int,
                    hole: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The batch entries a swap sets (batch of one, model resolution): ``mask`` (1, 1, H, W) = the swap region
    (| ``hole``), ``label_strokes`` (1, H, W) int64, ``colour`` (1, 3, H, W) texture strokes in [-1, 1] and 0
    elsewhere, ``noise`` N(0, 1) inside the hole, ``sketch`` zeros. CategorySwapError when the parsing cannot
    take the swap."""
    source = swap_source(parsing, to_category)
    region = swap_region(parsing, source, to_category)
    if hole is not None:
        region = region | hole
    rng = np.random.default_rng(seed)
    labels = target_label_strokes(rng, parsing, region, to_category)
    colour, strokes = swap_texture(rng, image, parsing, source, to_category, labels)
    strokes &= region
    mask = torch.from_numpy(region.astype(np.float32))[None, None]
    return {"mask": mask,
            "label_strokes": torch.from_numpy(labels)[None],
            "sketch": torch.zeros_like(mask),
            "colour": torch.from_numpy(to_unit_range(colour) * strokes[None])[None],
            "noise": torch.randn(mask.shape, generator=torch.Generator().manual_seed(seed)) * mask}
