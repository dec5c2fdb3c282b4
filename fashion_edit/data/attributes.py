"""Garment shape attributes measured from a LIP-20 parsing map alone (the prepared data has no keypoints).

Every measure is built from label counts and row/column projections, so it ignores the arms' and legs'
pose, is unchanged by a horizontal flip and divides out the figure's size:

Frame
    top = first foreground row, bottom = lowest shoe row (else the lowest foreground row),
    head unit ``u = (bottom - top + 1) / FIGURE_HEIGHT_U``; ankle row = first shoe row (socks are leg);
    hip row = ``top + HIP_FRACTION * (ankle - top)``.
sleeve_length (0 = bare arms, 1 = sleeves to the wrists)
    The bare arm area (arm pixels + ``GLOVE_AS_ARM`` x glove pixels; gloves with no bare arm showing
    meet the sleeves and count 0) minus the hands' expected area ``HANDS_U2 * u**2``, as a share of the
    two arms' expected area ``ARMS_U2 * u**2``; 1 minus that share, clipped to [0, 1]. Areas do not
    depend on how the arms are posed, and u**2 divides out the figure's size.
hem_length (0 = at the hips, 1 = at the ankles, up to 1.1)
    (lowest row of pants / skirt / dress / coat - hip row) / (ankle row - hip row).
width (a flared skirt is wider than trousers)
    The mean left-to-right extent of those garments over the lowest third of their rows below the hip
    row, divided by the figure's height in pixels.

:func:`attribute_region` is the hole an editor erases to change one attribute: the garments involved
plus where the new outline may reach, dilated by ``DILATE_U`` head units, never the face or hair.

The constants are calibrated on the procedural figures (:func:`calibrate`, which renders them and
returns the numbers; the values below come from its output).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from fashion_edit.data.labels import BACKGROUND, LABEL_ID
from fashion_edit.errors import FashionEditError

ATTRIBUTES: tuple[str, ...] = ("sleeve_length", "hem_length", "width")

# --- calibrated by calibrate(count=2000, seed=0) on 128x128 procedural figures (rounded) ---
FIGURE_HEIGHT_U = 7.74  # median (lowest shoe row - top row + 1) / head unit: the figure is ~7.7 head units tall
HIP_FRACTION = 0.509  # median (hip keypoint y - top row) / (first shoe row - top row)
ARMS_U2 = 1.747  # bare arm area (u**2) a sleeve hides from bare arms to the wrists (fit on sleeved figures)
HANDS_U2 = 0.064  # bare area (u**2) left under sleeves to the wrists: the hands, less what the sleeve ends cover
GLOVE_AS_ARM = 0.55  # share of a glove's area that would be bare arm or hand (it also covers sleeve ends)
HEM_MAX = 1.1  # hems may end below the ankle row (trousers over the shoes)
DILATE_U = 0.15  # an attribute region grows by this many head units (at least 1 px)
BAND_U = 0.6  # background beside the legs a longer or wider lower garment may grow into (head units)
# the values each measure can take (an edit's target is kept inside)
ATTRIBUTE_RANGE = {"sleeve_length": (0.0, 1.0), "hem_length": (0.0, HEM_MAX), "width": (0.0, 1.0)}

_ID = LABEL_ID
ARMS = (_ID["left-arm"], _ID["right-arm"])
GLOVE = _ID["glove"]
SHOES = (_ID["left-shoe"], _ID["right-shoe"])
LEGS = (_ID["left-leg"], _ID["right-leg"])
SOCKS = _ID["socks"]
LOWER = (_ID["pants"], _ID["skirt"], _ID["dress"], _ID["coat"])
UPPER = (_ID["upper-clothes"], _ID["coat"], _ID["dress"])
HEAD = (_ID["hat"], _ID["hair"], _ID["sunglasses"], _ID["face"])
GARMENTS = (_ID["upper-clothes"], _ID["dress"], _ID["coat"], _ID["pants"], _ID["skirt"])

# one lookup table maps each id to the bits of the groups it belongs to, so one cv2.LUT and one row
# projection give the figure's, the shoes' and the lower garments' rows at once
_FOREGROUND, _SHOE, _LOWER = 1, 2, 4
_GROUPS = np.full(256, _FOREGROUND, np.uint8)
_GROUPS[BACKGROUND] = 0
_GROUPS[list(SHOES)] |= _SHOE
_GROUPS[list(LOWER)] |= _LOWER


def _lookup(ids: tuple[int, ...]) -> np.ndarray:
    """A 0/1 uint8 table for cv2.LUT marking ``ids`` (much faster than np.isin on a whole map)."""
    table = np.zeros(256, np.uint8)
    table[list(ids)] = 1
    return table


_LOWER_LUT, _HEAD_LUT = _lookup(LOWER), _lookup(HEAD)
_LEGS_LUT = _lookup((*LEGS, SOCKS))
_SLEEVE_LUT = _lookup((*UPPER, *ARMS, GLOVE))
_WAIST_DOWN_LUT = _lookup((_ID["pants"], _ID["skirt"]))  # lower garments that start at the waist


class UnknownAttributeError(FashionEditError, ValueError):
    """An attribute name not in :data:`ATTRIBUTES`."""


def attribute_index(name: str) -> int:
    """Column of ``name`` in :func:`measure_attributes`' output."""
    try:
        return ATTRIBUTES.index(name)
    except ValueError:
        raise UnknownAttributeError(f"unknown garment attribute {name!r}; known: {list(ATTRIBUTES)}") from None


class _Frame:
    """Rows and scale of the figure, from one row projection of the group bits."""

    __slots__ = ("groups", "rows", "top", "bottom", "ankle", "hip", "height", "unit")

    def __init__(self, groups: np.ndarray, rows: np.ndarray, top: int, bottom: int, ankle: int) -> None:
        self.groups, self.rows = groups, rows
        self.top, self.bottom, self.ankle = top, bottom, ankle
        self.height = bottom - top + 1
        self.unit = self.height / FIGURE_HEIGHT_U
        self.hip = top + HIP_FRACTION * (ankle - top)


def _frame(parsing: np.ndarray) -> _Frame | None:
    groups = cv2.LUT(parsing, _GROUPS)
    rows = np.bitwise_or.reduce(groups, axis=1)
    figure = np.flatnonzero(rows)
    if not figure.size:
        return None
    shoes = np.flatnonzero(rows & _SHOE)
    top = int(figure[0])
    bottom = int(shoes[-1]) if shoes.size else int(figure[-1])
    ankle = int(shoes[0]) if shoes.size else bottom
    return _Frame(groups, rows, top, bottom, ankle)


def figure_frame(parsing: np.ndarray) -> tuple[float, float, float] | None:
    """(head unit in px, hip row, ankle row) of the figure, as the measures use them; None without a figure."""
    frame = _frame(_as_parsing(parsing))
    return None if frame is None else (frame.unit, frame.hip, float(frame.ankle))


def _as_parsing(parsing: np.ndarray) -> np.ndarray:
    """A contiguous (H, W) uint8 map (cv2.LUT needs uint8); refuse anything else with a clear message."""
    parsing = np.asarray(parsing)
    if parsing.ndim != 2 or not np.issubdtype(parsing.dtype, np.integer):
        raise FashionEditError(f"a parsing must be an (H, W) map of LIP-20 ids, got {parsing.dtype} {parsing.shape}")
    return np.ascontiguousarray(parsing, dtype=np.uint8)


def measure_attributes(parsing: np.ndarray) -> np.ndarray:
    """(H, W) uint8 LIP-20 parsing -> float32 [sleeve_length, hem_length, width]; NaN = not measurable."""
    parsing = _as_parsing(parsing)
    out = np.full(len(ATTRIBUTES), np.nan, np.float32)
    frame = _frame(parsing)
    if frame is None:
        return out
    counts = np.bincount(parsing.ravel(), minlength=256)
    arm, glove = int(counts[list(ARMS)].sum()), int(counts[GLOVE])
    if arm or glove or counts[list(UPPER)].any():  # with neither arms nor tops there is no sleeve to judge
        # no bare arm at all: the gloves meet the sleeves, so what they hide is sleeve, not arm
        bare = (arm + GLOVE_AS_ARM * glove if arm else 0.0) / frame.unit ** 2
        out[0] = 1.0 - np.clip((bare - HANDS_U2) / ARMS_U2, 0.0, 1.0)
    lower_rows = np.flatnonzero(frame.rows & _LOWER)
    if lower_rows.size:
        hem = int(lower_rows[-1])
        out[1] = np.clip((hem - frame.hip) / max(frame.ankle - frame.hip, 1.0), 0.0, HEM_MAX)
        out[2] = _hem_width(frame, lower_rows) / frame.height
    return out


def _hem_width(frame: _Frame, lower_rows: np.ndarray) -> float:
    """Mean left-to-right extent (px) of the lower garments over the lowest third of their rows below the hip."""
    hem = int(lower_rows[-1])
    first = max(int(lower_rows[0]), min(math.ceil(frame.hip), hem))
    band = (frame.groups[hem - (hem - first) // 3:hem + 1] & _LOWER) != 0
    present = band.any(axis=1)
    left = band.argmax(axis=1)
    right = band.shape[1] - band[:, ::-1].argmax(axis=1)
    return float((right - left)[present].mean())


def _lower_region(parsing: np.ndarray, frame: _Frame, down_to_ankles: bool) -> np.ndarray:
    """Lower garments below the hips (pants, skirts whole) + legs + socks + background beside them.

    The background box spans the hip row to the ankle row (a hem may grow down to the ankles) or to the
    garment's hem (a width change keeps the length), and ``BAND_U`` head units beyond the legs and garment.
    """
    hip = min(max(math.ceil(frame.hip), 0), parsing.shape[0])
    garment = cv2.LUT(parsing, _LOWER_LUT)
    if hip:  # above the hips a dress or coat is bodice, not hem
        garment[:hip] = cv2.LUT(parsing[:hip], _WAIST_DOWN_LUT)
    region = garment | cv2.LUT(parsing, _LEGS_LUT)
    garment_rows, cols = np.flatnonzero(garment.any(axis=1)), np.flatnonzero(region.any(axis=0))
    last = frame.ankle if down_to_ankles else int(garment_rows[-1]) if garment_rows.size else -1
    if cols.size and last >= hip:
        band = round(BAND_U * frame.unit)
        x0, x1 = max(int(cols[0]) - band, 0), int(cols[-1]) + band + 1
        box = region[hip:last + 1, x0:x1]  # a view: |= writes into region
        box |= (parsing[hip:last + 1, x0:x1] == BACKGROUND).view(np.uint8)
    return region


def attribute_region(parsing: np.ndarray, name: str) -> np.ndarray:
    """(H, W) bool: the hole an editor erases to change ``name`` (the garment + where it may grow, dilated)."""
    which = attribute_index(name)
    parsing = _as_parsing(parsing)
    frame = _frame(parsing)
    if frame is None:
        raise FashionEditError("attribute_region: the parsing shows no figure (every pixel is background), "
                               f"so there is no garment whose {name} could be edited")
    if which == 0:  # a sleeve grows over the arm and shrinks into the garment's body
        region = cv2.LUT(parsing, _SLEEVE_LUT)
    else:
        region = _lower_region(parsing, frame, down_to_ankles=ATTRIBUTES[which] == "hem_length")
    # a few pixels of margin (scaled to the figure) so the edited garment's new outline fits the hole
    r = max(1, round(DILATE_U * frame.unit))
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    region &= cv2.LUT(parsing, _HEAD_LUT) ^ 1  # never erase the face or hair
    return region.astype(bool)


def kept_outline(parsing: np.ndarray, hole: np.ndarray, name: str) -> np.ndarray:
    """(H, W) bool: the sketch lines an edit of ``name`` draws into its hole so the pose survives the erasing.

    A sleeve edit erases the arms whole; without their outline the parser could not know where the arms
    were. The outline is the figure's silhouette there (arm and garment together), which does not show
    where a sleeve ends, so it keeps the pose and leaves the length to the edit. A hem's legs are anchored
    by the shoes and hips outside its hole: no lines."""
    outline = np.zeros(parsing.shape, bool)
    if attribute_index(name) != ATTRIBUTES.index("sleeve_length"):
        return outline
    figure = (_as_parsing(parsing) != BACKGROUND).astype(np.uint8)
    outline = figure > cv2.erode(figure, np.ones((3, 3), np.uint8))
    return outline & hole


def garment_strokes_region(parsing: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W) bool: where an attribute edit's colour strokes go: the erased garments, never skin (a stroke of
    skin colour where a sleeve may grow would tell the parser the old sleeve's end)."""
    return hole & np.isin(parsing, GARMENTS)
