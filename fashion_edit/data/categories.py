"""Garment-category swaps (issue 14, seed 002's Design-GAN): turn a skirt into trousers or trousers into a skirt.

A swap replaces the photo's lower garment (LIP ``pants`` or ``skirt``) by the other category, keeping its texture.
Everything here works on a LIP-20 parsing alone (the segmenter's for a photo, the truth in training), so the
editor, the evaluation and the parser's training data draw the same holes and strokes:

:func:`swap_source`
    the label the swap replaces: the photo's lower garment, unless it already is the target (errors name the fix).
:func:`swap_region`
    the hole: the old garment united with where the target garment will be, dilated a little, never the head,
    the upper garments, the arms or the shoes (but the tops that trousers fall over). The target's place comes
    from the figure's frame (``fashion_edit.data.attributes.figure_frame``: head unit, hip row, ankle row) and its
    *leg axes*: straight lines from the hip joints (``HIP_HALF_U`` head units beside the garment's centre) to the
    ankles (the centres of the lowest rows of the legs or trouser legs), which stay usable when a skirt hides the
    legs. Trousers: a tapered band around each axis from the hip row to just over the shoes' tops (the synthetic
    generator's trouser legs, a little wider for the knee's bend). Skirt: a panel from the old garment's waist
    that flares to a hem ``SKIRT_HEM_U`` below the knee, wider than the legs and than the old garment by
    ``SKIRT_FLARE_U`` (the generator's ``_hem_poly`` at its longest and widest).
:func:`target_label_strokes`
    what tells the parser the wanted class: a few short strokes (``fashion_edit.data.masks.colour_stroke_mask``)
    of the target id in the core of the target's place (along the leg axes for trousers, over the hips for a
    skirt) and, for a skirt, leg strokes below its longest hem (so the hole's lower part becomes legs).
:func:`category_training_hole`
    the parser's training sample for this edit: a swap-shaped hole on a figure's *own* lower garment, with label
    strokes drawn as the editor draws them and kept only where the truth agrees.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fashion_edit.config import MaskParams
from fashion_edit.data.attributes import DILATE_U, figure_frame
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.masks import colour_stroke_mask
from fashion_edit.errors import FashionEditError

PANTS, SKIRT = LABEL_ID["pants"], LABEL_ID["skirt"]
SWAP_CATEGORIES: dict[str, int] = {"trousers": PANTS, "skirt": SKIRT}
CATEGORY_OF_LABEL = {label: name for name, label in SWAP_CATEGORIES.items()}
NO_STROKE = -1  # label_strokes value off the strokes

LEFT_LEG, RIGHT_LEG = LABEL_ID["left-leg"], LABEL_ID["right-leg"]
LEFT_SHOE, RIGHT_SHOE = LABEL_ID["left-shoe"], LABEL_ID["right-shoe"]
LEGS = (LEFT_LEG, RIGHT_LEG, LABEL_ID["socks"])
# a swap never erases these: the head, what is worn above or over the lower garment, the arms in front, the shoes
# (trousers: but their tops)
PROTECTED = tuple(LABEL_ID[name] for name in (
    "hat", "hair", "sunglasses", "face", "upper-clothes", "dress", "coat", "scarf", "glove",
    "left-arm", "right-arm", "left-shoe", "right-shoe"))

# --- geometry in head units (u), read off fashion_edit/data/synthetic.py's body and garment shapes ---
MIN_GARMENT_FRACTION = 0.002  # a lower garment smaller than this share of the image is a segmentation sliver
KNEE_FRACTION = 0.52  # knee row = hip row + this share of (ankle row - hip row): thigh 1.85 u, shin 1.75 u
HIP_HALF_U = 0.4  # the hip joints sit this far beside the garment's centre
ANKLE_HALF_U = 0.45  # ankles beside the centre when no leg or trouser leg shows them
TROUSERS_HALF_U = (0.55, 0.4)  # half width of the trousers region around a leg axis at the hip, at the ankle
BELOW_ANKLE_U = 0.3  # trouser legs end over the shoes' tops: this far below the first shoe row
SKIRT_HEM_U = 0.65  # the longest skirt hem lies this far below the knee (generator: knee + 0.5 + 0.06 curve)
SKIRT_FLARE_U = 0.6  # a skirt's hem may be this much wider (each side) than the old garment at the hips
SKIRT_LEG_U = 0.55  # ... and reaches at least this far beyond a leg axis (leg half width + 0.12 + flare)
SKIRT_SHORTEST_U = 0.6  # the shortest skirt ends this far below the hip row: its strokes stay above
CORE_HALF_U = 0.12  # half width of the bands the label strokes are drawn in
LEG_CORE_HALF_U = (0.1, 0.06)  # ... of the leg strokes' bands at the hip row, at the ankle row (shins taper)
LEG_STROKES_END_U = 0.45  # leg strokes stop this far above the ankle row (where socks may start)
ANKLE_ROWS_U = 0.2  # the lowest rows of a leg (or trouser leg) whose centre is the ankle
TARGET_STROKES = 4  # label strokes of the target class per swap
LEG_STROKES = 1  # strokes per leg below a skirt's hem
_STROKES = MaskParams()  # stroke width and length as the training's colour strokes


class CategorySwapError(FashionEditError, ValueError):
    """A category swap this photo or request cannot take (unknown category, nothing to swap, already swapped)."""


def category_label(to_category: str) -> int:
    """The LIP-20 id of a swap category name ("trousers" -> pants); CategorySwapError listing the known names."""
    label = SWAP_CATEGORIES.get(str(to_category).strip().lower())
    if label is None:
        raise CategorySwapError(f"unknown garment category {to_category!r}; known: {', '.join(SWAP_CATEGORIES)}")
    return label


def _present(parsing: np.ndarray) -> dict[int, int]:
    """Pixel counts of the swappable lower garments that are more than a sliver."""
    parsing = np.asarray(parsing)
    counts = np.bincount(parsing.ravel(), minlength=256)
    least = MIN_GARMENT_FRACTION * parsing.size
    return {label: int(counts[label]) for label in SWAP_CATEGORIES.values() if counts[label] >= max(least, 1)}


def swap_source(parsing: np.ndarray, to_category: str) -> int:
    """The label a swap to ``to_category`` replaces: the photo's lower garment (pants or skirt; the larger when a
    segmenter shows both). CategorySwapError when the category is unknown, the photo has no such garment, or it
    already is of the category."""
    target = category_label(to_category)
    present = _present(parsing)
    if not present:
        dress = np.any(np.asarray(parsing) == LABEL_ID["dress"])
        what = "a dress, which a swap does not change" if dress else "no trousers, shorts or skirt"
        raise CategorySwapError(f"nothing to turn into {to_category}: the photo's parsing shows {what}; a swap "
                                f"replaces trousers/shorts by a skirt or a skirt by trousers")
    own = max(present, key=present.get)
    if own != target:
        return own
    if target == SKIRT:
        raise CategorySwapError("the lower garment is already a skirt: a swap to skirt needs trousers or shorts in "
                                "the photo (to change the skirt's length, use the hem_length attribute)")
    raise CategorySwapError("the lower garment is already trousers (LIP pants: trousers and shorts): a swap to "
                            "trousers needs a skirt in the photo (to lengthen shorts, use the hem_length attribute)")


@dataclass(frozen=True)
class _LegFrame:
    """Where the lower body is (rows and columns in pixels) and the two leg axes, image-left first."""

    unit: float
    top: int  # the old garment's first row (the waist)
    hip: float
    knee: float
    ankle: float
    centre: float  # the old garment's centre column at the hip row
    half_hip: float  # the old garment's half width at the hip row
    axes: tuple[tuple[float, float], tuple[float, float]]  # (x at the hip row, x at the ankle row) per leg
    leg_labels: tuple[int, int]  # the leg id of each axis

    def axis_x(self, axis: int, rows: np.ndarray) -> np.ndarray:
        """Column of leg axis ``axis`` at ``rows`` (straight from the hip joint to the ankle)."""
        x_hip, x_ankle = self.axes[axis]
        t = (rows - self.hip) / max(self.ankle - self.hip, 1.0)
        return x_hip + t * (x_ankle - x_hip)


def _leg_frame(parsing: np.ndarray, garment: np.ndarray) -> _LegFrame:
    frame = figure_frame(parsing)
    rows = np.flatnonzero(garment.any(axis=1))
    if frame is None or not rows.size:
        raise CategorySwapError("the parsing shows no figure with a lower garment, so there is nothing to swap")
    unit, hip, ankle = frame
    # the garment's extent at the row nearest the hips that it covers
    row = int(rows[np.argmin(np.abs(rows - hip))])
    cols = np.flatnonzero(garment[row])
    centre, half_hip = (cols[0] + cols[-1]) / 2, (cols[-1] - cols[0] + 1) / 2
    (x_left, label_left), (x_right, label_right) = _ankles(parsing, centre, unit)
    axes = ((centre - HIP_HALF_U * unit, x_left), (centre + HIP_HALF_U * unit, x_right))
    return _LegFrame(unit, int(rows[0]), hip, hip + KNEE_FRACTION * (ankle - hip), ankle, centre, half_hip,
                     axes, (label_left, label_right))


def _ankles(parsing: np.ndarray, centre: float, unit: float) -> tuple[tuple[float, int], tuple[float, int]]:
    """(x, leg id) of the image-left and image-right ankle.

    x: the centre of the lowest rows of the legs, socks and trouser legs on each side of the garment's centre (a
    leg and a trouser leg end in a round cap centred on the ankle; the shoes' tops are no guide: trousers cover
    them and the toes point outward), else ``ANKLE_HALF_U`` beside the centre. A leg takes the side of its shoe's
    label; without both shoes the person faces the camera (their left on the image's right)."""
    ys, xs = np.nonzero(np.isin(parsing, (*LEGS, PANTS)))
    found = []
    for side in (-1, 1):
        half = (xs - centre) * side > 0
        x = centre + side * ANKLE_HALF_U * unit
        if half.any():
            low = half & (ys >= ys[half].max() - max(1, round(ANKLE_ROWS_U * unit)))
            x = float(xs[low].mean())
        found.append(x)
    shoes = [(float(np.mean(np.nonzero(parsing == shoe)[1])), leg)
             for shoe, leg in ((LEFT_SHOE, LEFT_LEG), (RIGHT_SHOE, RIGHT_LEG)) if np.any(parsing == shoe)]
    left_label, right_label = (min(shoes)[1], max(shoes)[1]) if len(shoes) == 2 else (RIGHT_LEG, LEFT_LEG)
    return (found[0], left_label), (found[1], right_label)


def _band(shape: tuple[int, int], legs: _LegFrame, axis: int, first: float, last: float,
          half: tuple[float, float]) -> np.ndarray:
    """uint8 mask of a band around leg axis ``axis`` from row ``first`` to ``last``, its half width going from
    ``half[0]`` at the hip row to ``half[1]`` at the ankle row (head units)."""
    height, width = shape
    first, last = max(int(np.floor(first)), 0), min(int(np.ceil(last)), height - 1)
    band = np.zeros(shape, np.uint8)
    if last < first:
        return band
    rows = np.arange(first, last + 1, dtype=np.float64)
    t = np.clip((rows - legs.hip) / max(legs.ankle - legs.hip, 1.0), 0, 1)
    halves = (half[0] + t * (half[1] - half[0])) * legs.unit
    centres = legs.axis_x(axis, rows)
    left = np.column_stack([centres - halves, rows])
    right = np.column_stack([centres + halves, rows])[::-1]
    cv2.fillPoly(band, [np.rint(np.vstack([left, right])).astype(np.int32)], 1)
    return band


def _trousers_place(shape: tuple[int, int], legs: _LegFrame) -> np.ndarray:
    """uint8: both trouser legs, from the hip row to just below the ankles."""
    place = np.zeros(shape, np.uint8)
    for axis in (0, 1):
        place |= _band(shape, legs, axis, legs.hip, legs.ankle + BELOW_ANKLE_U * legs.unit, TROUSERS_HALF_U)
    # the seat between the hip joints, down to the crotch
    x0, x1 = legs.axes[0][0], legs.axes[1][0]
    y0, y1 = legs.hip, legs.hip + 0.5 * legs.unit
    cv2.fillPoly(place, [np.rint([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).astype(np.int32)], 1)
    return place


def _skirt_hem(legs: _LegFrame) -> float:
    return legs.knee + SKIRT_HEM_U * legs.unit


def _skirt_place(shape: tuple[int, int], legs: _LegFrame, garment: np.ndarray) -> np.ndarray:
    """uint8: a skirt panel from the old garment's waist, flaring to its widest by the shortest hem, down to the
    longest hem below the knee."""
    u, hem = legs.unit, _skirt_hem(legs)
    top_cols = np.flatnonzero(garment[legs.top])
    top_half = (top_cols[-1] - top_cols[0] + 1) / 2 + 0.1 * u
    widest = legs.hip + SKIRT_SHORTEST_U * u
    rows = np.array([widest, hem])
    left = min(legs.centre - legs.half_hip - SKIRT_FLARE_U * u, float(legs.axis_x(0, rows).min()) - SKIRT_LEG_U * u)
    right = max(legs.centre + legs.half_hip + SKIRT_FLARE_U * u, float(legs.axis_x(1, rows).max()) + SKIRT_LEG_U * u)
    panel = [[legs.centre - top_half, legs.top], [legs.centre + top_half, legs.top], [right, widest],
             [right, hem], [left, hem], [left, widest]]
    place = np.zeros(shape, np.uint8)
    cv2.fillPoly(place, [np.rint(panel).astype(np.int32)], 1)
    return place


def _protected(parsing: np.ndarray) -> np.ndarray:
    return np.isin(parsing, PROTECTED)


def swap_region(parsing: np.ndarray, source_label: int, to_category: str) -> np.ndarray:
    """bool (H, W): the hole a swap of ``source_label`` to ``to_category`` erases (module docstring)."""
    parsing = np.asarray(parsing)
    target = category_label(to_category)
    garment = parsing == source_label
    legs = _leg_frame(parsing, garment)
    place = _trousers_place(parsing.shape, legs) if target == PANTS else _skirt_place(parsing.shape, legs, garment)
    if target == PANTS:  # bare legs and socks the trousers will cover
        place |= (np.isin(parsing, LEGS) & (np.arange(parsing.shape[0])[:, None] >= legs.hip)).astype(np.uint8)
    region = place | garment.astype(np.uint8)
    r = max(1, round(DILATE_U * legs.unit))
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    protected = _protected(parsing)
    if target == PANTS:  # trousers fall over the shoes' tops
        cut = min(max(int(np.ceil(legs.ankle + BELOW_ANKLE_U * legs.unit)), 0), parsing.shape[0])
        protected[:cut] &= ~np.isin(parsing[:cut], (LEFT_SHOE, RIGHT_SHOE))
    return region.astype(bool) & ~protected


def _strokes(rng: np.random.Generator, core: np.ndarray, count: int) -> np.ndarray:
    """bool: ``count`` short strokes (the training's colour-stroke style) started and kept inside ``core``."""
    if not core.any():
        return np.zeros(core.shape, bool)
    height, width = core.shape
    drawn = colour_stroke_mask(rng, height, width, _STROKES.model_copy(update={"colour_strokes": count}),
                               region=core.astype(np.uint8))
    return drawn.astype(bool) & core


def _lower_garment_frame(parsing: np.ndarray) -> _LegFrame | None:
    """The leg frame of the photo's lower garment (the larger of pants and skirt; None without one)."""
    present = _present(parsing)
    return _leg_frame(parsing, parsing == max(present, key=present.get)) if present else None


def target_core(parsing: np.ndarray, to_category: str) -> np.ndarray:
    """bool (H, W): where the target garment surely lies: narrow bands along the leg axes from the hips to above
    the ankles (trousers), or the hips between and over the leg axes above the shortest hem (skirt). Empty
    without a lower garment to locate the legs."""
    parsing = np.asarray(parsing)
    target = category_label(to_category)
    core = np.zeros(parsing.shape, np.uint8)
    legs = _lower_garment_frame(parsing)
    if legs is None:
        return core.astype(bool)
    u = legs.unit
    if target == PANTS:
        for axis in (0, 1):
            core |= _band(parsing.shape, legs, axis, legs.hip, legs.ankle - LEG_STROKES_END_U * u,
                          (CORE_HALF_U,) * 2)
    else:
        x0, x1 = legs.axes[0][0] - 0.2 * u, legs.axes[1][0] + 0.2 * u
        y0, y1 = legs.hip, legs.hip + (SKIRT_SHORTEST_U - 0.1) * u
        cv2.fillPoly(core, [np.rint([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).astype(np.int32)], 1)
    return core.astype(bool) & ~_protected(parsing)


def target_label_strokes(rng: np.random.Generator, parsing: np.ndarray, region: np.ndarray,
                         to_category: str, leg_strokes: bool = True) -> np.ndarray:
    """int64 (H, W): the target id on a few strokes in :func:`target_core`, inside ``region`` (``NO_STROKE``
    elsewhere); for a skirt with ``leg_strokes``, leg ids on strokes along the leg axes below its longest hem.

    ``parsing`` is the one the region was made from (its lower garment locates the legs)."""
    parsing, region = np.asarray(parsing), np.asarray(region, bool)
    target = category_label(to_category)
    out = np.full(parsing.shape, NO_STROKE, np.int64)
    legs = _lower_garment_frame(parsing)
    if legs is None:
        return out
    out[_strokes(rng, target_core(parsing, to_category) & region, TARGET_STROKES)] = target
    if target == SKIRT and leg_strokes:
        u = legs.unit
        for axis, leg in enumerate(legs.leg_labels):
            band = _band(parsing.shape, legs, axis, _skirt_hem(legs) + 0.2 * u, legs.ankle - LEG_STROKES_END_U * u,
                         LEG_CORE_HALF_U).astype(bool) & region & ~_protected(parsing)
            out[_strokes(rng, band, LEG_STROKES)] = leg
    return out


def category_training_hole(rng: np.random.Generator, parsing: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(hole bool (H, W), label strokes int64 (H, W)) for the parser's training, or None without pants/skirt.

    The hole is the region a swap of the figure's own lower garment to a random category would erase (its own
    shape or the other's: both hole shapes the editor makes); the strokes are the editor's for the figure's own
    category, kept only where the true parsing agrees (a stroke never lies)."""
    parsing = np.asarray(parsing)
    present = _present(parsing)
    if not present:
        return None
    own = max(present, key=present.get)
    shape_of = list(SWAP_CATEGORIES)[int(rng.integers(len(SWAP_CATEGORIES)))]
    try:
        hole = swap_region(parsing, own, shape_of)
    except CategorySwapError:  # no figure frame (a lower garment alone, no figure rows)
        return None
    strokes = target_label_strokes(rng, parsing, hole, CATEGORY_OF_LABEL[own])
    strokes[strokes != parsing] = NO_STROKE
    return hole, strokes
