"""Procedural dressed figures with exact LIP-20 parsing and 14 keypoints (the embedded dataset).

Why procedural: no photo dataset ships with Python packages, yet the pipeline needs images whose
parsing is *exactly* right.  Each figure is built in "head units" (u = head height), scaled into
the frame, drawn as a label map at ``supersample``x resolution (painter's order, hard edges), then
coloured label by label (one texture per label).  The image is downsampled with INTER_AREA
(anti-aliasing) and the parsing with a per-block majority vote, so every final label is the label
covering most of that pixel's area and every pixel mostly shows its label's texture.

Conventions:
- Figures face the viewer, so the person's LEFT side (LIP "left-arm" 14, "left-leg" 16,
  "left-shoe" 18) appears on the image's RIGHT, and "right-*" (15, 17, 19) on the image's left.
- Keypoints (``KEYPOINT_NAMES``, format "synthetic-14"): pixel coordinates of the final image
  (pixel centres at integers), visible flag 1.0 for every point (figures are never cropped).
- Neck and exposed torso skin use LIP id 10 (torso-skin); hands belong to the arm labels.
- Figure ``index`` is drawn from ``np.random.default_rng([seed, index])`` alone, so any figure can
  be regenerated on its own, and the same params give byte-identical files. Sleeve lengths come from a
  second generator, ``default_rng([seed, index, 1])``, so adding them changed no other choice (outfit,
  pose, placement, colours); only noise textures, whose random grid is sized by a label's bounding box,
  differ where a sleeve changed that box. :func:`render_swapped` draws the same figure with its lower garment
  in another shape; what only the swap needs (the new garment's hem and flare, its noise) comes from a third
  generator, ``default_rng([seed, index, 2])``, so the original figures stay byte-identical.
- ``description["attributes"]`` holds the true garment attributes the figure was drawn with (the
  quantities :mod:`fashion_edit.data.attributes` measures from the parsing; see :func:`_true_attributes`).
"""
from __future__ import annotations

import colorsys
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from fashion_edit.config import SynthesizeParams
from fashion_edit.data.labels import LABEL_ID, NUM_CLASSES, PALETTE
from fashion_edit.errors import FashionEditError

KEYPOINT_FORMAT = "synthetic-14"
KEYPOINT_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
)
GARMENT_SHAPES: tuple[str, ...] = ("t-shirt", "long-sleeve", "coat", "dress", "skirt", "trousers", "shorts")
LOWER_SHAPES: tuple[str, ...] = ("skirt", "trousers", "shorts")  # the garments render_swapped exchanges
GARMENT_LABEL = {
    "t-shirt": LABEL_ID["upper-clothes"], "long-sleeve": LABEL_ID["upper-clothes"], "coat": LABEL_ID["coat"],
    "dress": LABEL_ID["dress"], "skirt": LABEL_ID["skirt"], "trousers": LABEL_ID["pants"],
    "shorts": LABEL_ID["pants"],
}
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checks", "dots", "gradient", "noise")
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "noise", "floor")
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bob", "bun")
SKIN_LABELS = tuple(LABEL_ID[n] for n in ("torso-skin", "face", "left-arm", "right-arm", "left-leg", "right-leg"))
# (label on the person's left = image right, label on the person's right = image left)
SIDE_LABELS = {
    "arm": (LABEL_ID["left-arm"], LABEL_ID["right-arm"]),
    "leg": (LABEL_ID["left-leg"], LABEL_ID["right-leg"]),
    "shoe": (LABEL_ID["left-shoe"], LABEL_ID["right-shoe"]),
}
SIDES = ((+1, "left"), (-1, "right"))  # (image x direction, person's side)
STEM_PATTERN = re.compile(r"fig\d{6}\.(png|json)")
LABEL_MAP_SOURCE = "synthetic (LIP-20 ids, identity)"

_SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing
_RAMP = np.arange(256, dtype=np.float32) / 255
_SKIN_TONES = np.array([(255, 224, 196), (241, 194, 155), (224, 172, 130), (198, 134, 94),
                        (161, 102, 70), (120, 75, 50), (88, 56, 38)], np.float32)
_HAIR_COLOURS = np.array([(28, 22, 20), (62, 42, 30), (112, 76, 46), (196, 160, 98), (150, 62, 32),
                          (172, 170, 164)], np.float32)


class SynthesizeError(FashionEditError, RuntimeError):
    """The output folder cannot be (re)written safely."""


@dataclass
class Figure:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    parsing: np.ndarray  # (H, W) uint8 LIP-20 ids
    keypoints: np.ndarray  # (14, 3) float32: x, y, visible
    description: dict[str, Any] = field(default_factory=dict)  # JSON-able


def stem(index: int) -> str:
    return f"fig{index:06d}"


# --------------------------------------------------------------------------- random choices
def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.15, 0.9),
            val: tuple[float, float] = (0.2, 0.95)) -> list[int]:
    """A random RGB colour from HSV ranges (saturation and value in [0, 1])."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return [int(round(c * 255)) for c in rgb]


def _contrast_colour(rng: np.random.Generator, base: list[int]) -> list[int]:
    """A second pattern colour clearly different from ``base`` (light, dark or another hue)."""
    for _ in range(8):
        choice = rng.integers(3)
        other = (_colour(rng, (0.0, 0.1), (0.85, 1.0)) if choice == 0 else
                 _colour(rng, (0.0, 0.3), (0.05, 0.25)) if choice == 1 else _colour(rng))
        if np.abs(np.subtract(other, base)).sum() > 150:
            return other
    return [255 - c for c in base]


def _texture_spec(rng: np.random.Generator, kind: str | None = None) -> dict[str, Any]:
    """Texture kind + two colours + pattern geometry (period in head units, angle in degrees)."""
    if kind is None:
        kind = str(rng.choice(TEXTURES, p=[0.3, 0.14, 0.14, 0.14, 0.14, 0.14]))
    base = _colour(rng)
    return {
        "kind": kind,
        "colours": [base, _contrast_colour(rng, base)],
        "period": round(float(rng.uniform(0.22, 0.55)), 3),  # in head units
        "angle": round(float(rng.choice([0.0, 90.0, 45.0, -45.0, rng.uniform(0, 180)])), 2),
        "phase": [round(float(v), 3) for v in rng.random(2)],
        "duty": round(float(rng.uniform(0.3, 0.6)), 3),
    }


def _sample_outfit(rng: np.random.Generator) -> dict[str, Any]:
    """Which garments and accessories the figure wears, each with its texture."""
    garments: list[dict[str, Any]] = []
    if rng.random() < 0.25:
        garments.append({"shape": "dress", "sleeves": str(rng.choice(["none", "short"]))})
        bottom = "dress"
    else:
        garments.append({"shape": str(rng.choice(["t-shirt", "long-sleeve"]))})
        bottom = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.4, 0.25, 0.35]))
        garments.append({"shape": bottom})
    has_coat = bool(rng.random() < 0.25)
    if has_coat:
        garments.append({"shape": "coat"})
    for g in garments:
        g["label"] = GARMENT_LABEL[g["shape"]]
        g["texture"] = _texture_spec(rng)
    legs_bare = bottom != "trousers"
    accessories = {
        "hat": _texture_spec(rng, str(rng.choice(["solid", "stripes", "checks"]))) if rng.random() < 0.2 else None,
        "sunglasses": bool(rng.random() < 0.2),
        "scarf": _texture_spec(rng) if rng.random() < (0.4 if has_coat else 0.1) else None,
        "gloves": _colour(rng) if rng.random() < (0.35 if has_coat else 0.06) else None,
        "socks": (_texture_spec(rng, str(rng.choice(["solid", "stripes"])))
                  if legs_bare and rng.random() < 0.35 else None),
    }
    hat_style = str(rng.choice(["beanie", "brim"])) if accessories["hat"] else None
    hair_style = str(rng.choice(["long", "bob"] if accessories["hat"] else HAIR_STYLES))
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(tone)
    skin = _SKIN_TONES[lo] + (tone - lo) * (_SKIN_TONES[min(lo + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[lo])
    skin = np.clip(skin + rng.normal(0, 6, 3), 0, 255)
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15), 0, 255)
    return {
        "garments": garments,
        "hat": accessories["hat"], "hat_style": hat_style,
        "sunglasses": accessories["sunglasses"], "scarf": accessories["scarf"],
        "gloves": accessories["gloves"], "socks": accessories["socks"],
        "hair": {"style": hair_style, "colour": [int(c) for c in hair]},
        "skin": [int(c) for c in skin],
        "shoes": _colour(rng, (0.0, 0.7), (0.08, 0.8)),
    }


# --------------------------------------------------------------------------- body geometry (head units)
def _direction(side: int, degrees: float) -> np.ndarray:
    """Unit vector pointing down, rotated ``degrees`` outward (towards ``side`` in image x)."""
    a = math.radians(degrees)
    return np.array([side * math.sin(a), math.cos(a)])


def _sample_body(rng: np.random.Generator) -> dict[str, Any]:
    """Proportions, joint positions and limb widths in head units, origin at the head top centre."""
    width = rng.uniform(0.85, 1.15)
    legs = rng.uniform(0.93, 1.08)
    hips = rng.uniform(0.9, 1.12)
    b: dict[str, Any] = {
        "width": width, "legs": legs, "face_width": rng.uniform(0.9, 1.1),
        "shoulder_y": 1.35, "waist_y": 3.0, "hip_y": 3.6,
        "shoulder_w": 0.9 * width, "waist_w": 0.6 * width * rng.uniform(0.9, 1.05),
        "hip_w": 0.78 * width * hips,
        "arm_w": (0.4 * width ** 0.5, 0.33 * width ** 0.5, 0.27 * width ** 0.5),  # shoulder, elbow, wrist
        "leg_w": (0.7 * width ** 0.5 * hips, 0.48 * width ** 0.5, 0.33 * width ** 0.5),  # hip, knee, ankle
        "pose": {},
    }
    for side, name in SIDES:
        upper = rng.uniform(6, 62)
        fore = float(np.clip(upper + rng.uniform(-50, 70), -35, 120))
        thigh = rng.uniform(1, 14)
        shin = max(0.0, thigh + rng.uniform(-6, 4))
        shoulder = np.array([side * b["shoulder_w"], b["shoulder_y"] + 0.14])
        elbow = shoulder + 1.35 * _direction(side, upper)
        wrist = elbow + 1.2 * _direction(side, fore)
        hip = np.array([side * 0.4 * width * hips, b["hip_y"]])
        knee = hip + 1.85 * legs * _direction(side, thigh)
        ankle = knee + 1.75 * legs * _direction(side, shin)
        b[name] = {"shoulder": shoulder, "elbow": elbow, "wrist": wrist, "hand": wrist + 0.2 * _direction(side, fore),
                   "fore_angle": fore, "hip": hip, "knee": knee, "ankle": ankle}
        b["pose"][f"{name}_arm"] = [round(upper, 1), round(fore, 1)]
        b["pose"][f"{name}_leg"] = [round(thigh, 1), round(shin, 1)]
    return b


def _leg_outer_x(b: dict[str, Any], side_name: str, side: int, y: float) -> float:
    """Outer edge x (image direction ``side``) of a leg at height ``y``, for sizing hems."""
    leg, (w_hip, w_knee, w_ankle) = b[side_name], b["leg_w"]
    if y <= leg["knee"][1]:
        (p0, w0), (p1, w1) = (leg["hip"], w_hip), (leg["knee"], w_knee)
    else:
        (p0, w0), (p1, w1) = (leg["knee"], w_knee), (leg["ankle"], w_ankle)
    t = float(np.clip((y - p0[1]) / max(p1[1] - p0[1], 1e-6), 0, 1))
    return side * float(p0[0] + t * (p1[0] - p0[0])) + 0.5 * (w0 + t * (w1 - w0))


def _hem_half_widths(b: dict[str, Any], y: float, flare: float) -> dict[int, float]:
    """Half widths (per image side) a skirt/dress/coat hem needs at ``y`` to cover the legs."""
    t = np.clip((y - b["waist_y"]) / (b["hip_y"] - b["waist_y"]), 0, 1)
    base = b["waist_w"] + t * (b["hip_w"] - b["waist_w"]) + flare
    return {side: max(base, _leg_outer_x(b, name, side, y) + 0.12) for side, name in SIDES}


# --------------------------------------------------------------------------- drawing
class _Canvas:
    """A label map at supersampled resolution; shapes are given in head units.

    Points go head units -> final pixels (``ox + unit * x``) -> supersampled pixel centres
    (``s * x + (s - 1) / 2``) -> cv2 fixed point (``_SHIFT`` fractional bits); plain-float math
    because the shapes are tiny and numpy call overhead would dominate.
    """

    def __init__(self, height: int, width: int, s: int, unit: float, origin: tuple[float, float]) -> None:
        self.s, self.unit, self.origin = s, unit, origin
        self.labels = np.zeros((height * s, width * s), np.uint8)
        one = 1 << _SHIFT
        self._scale = unit * s * one
        self._bx = (origin[0] * s + (s - 1) / 2) * one
        self._by = (origin[1] * s + (s - 1) / 2) * one

    def final(self, pts: Any) -> np.ndarray:
        """Head units -> final-image pixel coordinates (pixel centres at integers)."""
        return np.asarray(pts, np.float64) * self.unit + self.origin

    def fixed_point(self, pt: Any) -> tuple[int, int]:
        return int(round(pt[0] * self._scale + self._bx)), int(round(pt[1] * self._scale + self._by))

    def _length(self, r: float) -> int:
        return max(1, int(round(r * self._scale)))

    def poly(self, pts: Any, label: int) -> None:
        arr = np.asarray(pts, np.float64) * self._scale + (self._bx, self._by)
        cv2.fillPoly(self.labels, [np.rint(arr).astype(np.int32)], label, cv2.LINE_8, _SHIFT)

    def circle(self, centre: Any, r: float, label: int) -> None:
        cv2.circle(self.labels, self.fixed_point(centre), self._length(r), label, -1, cv2.LINE_8, _SHIFT)

    def ellipse(self, centre: Any, axes: tuple[float, float], label: int, angle: float = 0.0,
                start: float = 0.0, end: float = 360.0) -> None:
        cv2.ellipse(self.labels, self.fixed_point(centre), (self._length(axes[0]), self._length(axes[1])),
                    angle, start, end, label, -1, cv2.LINE_8, _SHIFT)

    def limb(self, a: Any, b: Any, wa: float, wb: float, label: int) -> None:
        """A tapered segment with round ends (widths are full widths)."""
        (ax, ay), (bx, by) = (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))
        length = max(math.hypot(bx - ax, by - ay), 1e-9)
        nx, ny = (ay - by) / length, (bx - ax) / length
        quad = [(ax + nx * wa / 2, ay + ny * wa / 2), (bx + nx * wb / 2, by + ny * wb / 2),
                (bx - nx * wb / 2, by - ny * wb / 2), (ax - nx * wa / 2, ay - ny * wa / 2)]
        cv2.fillConvexPoly(self.labels, np.array([self.fixed_point(q) for q in quad], np.int32), label,
                           cv2.LINE_8, _SHIFT)
        self.circle((ax, ay), wa / 2, label)
        self.circle((bx, by), wb / 2, label)


def _draw_legs(c: _Canvas, b: dict[str, Any], outfit: dict[str, Any], hidden: bool) -> None:
    w_hip, w_knee, w_ankle = b["leg_w"]
    for side, name in SIDES:
        leg, i = b[name], 0 if name == "left" else 1
        if not hidden:
            c.limb(leg["hip"], leg["knee"], w_hip, w_knee, SIDE_LABELS["leg"][i])
            c.limb(leg["knee"], leg["ankle"], w_knee, w_ankle, SIDE_LABELS["leg"][i])
        if outfit["socks"]:
            up = (leg["knee"] - leg["ankle"]) / np.linalg.norm(leg["knee"] - leg["ankle"])
            top = leg["ankle"] + 0.6 * up
            c.limb(top, leg["ankle"], w_ankle + 0.1, w_ankle + 0.06, LABEL_ID["socks"])
        shoe = SIDE_LABELS["shoe"][i]
        c.limb(leg["ankle"] + [0, 0.05], leg["ankle"] + [side * 0.06, 0.2], w_ankle + 0.04, 0.4, shoe)
        c.ellipse(leg["ankle"] + [side * 0.08, 0.22], (0.27, 0.17), shoe)


def _draw_pants(c: _Canvas, b: dict[str, Any], shape: str) -> None:
    label = LABEL_ID["pants"]
    ww, hw, wy, hy = b["waist_w"], b["hip_w"], b["waist_y"], b["hip_y"]
    c.poly([(-ww - 0.04, wy - 0.05), (ww + 0.04, wy - 0.05), (hw + 0.05, hy), (0.0, hy + 0.4), (-hw - 0.05, hy)], label)
    w_hip, w_knee, w_ankle = b["leg_w"]
    for _, name in SIDES:
        leg = b[name]
        if shape == "shorts":
            end = leg["hip"] + 0.5 * (leg["knee"] - leg["hip"])
            c.limb(leg["hip"], end, w_hip + 0.14, 0.5 * (w_hip + w_knee) + 0.16, label)
        else:
            c.limb(leg["hip"], leg["knee"], w_hip + 0.12, w_knee + 0.12, label)
            c.limb(leg["knee"], leg["ankle"] + [0, 0.04], w_knee + 0.12, w_ankle + 0.16, label)


def _draw_torso_skin(c: _Canvas, b: dict[str, Any]) -> None:
    label = LABEL_ID["torso-skin"]
    sy, sw, ww, hw = b["shoulder_y"], b["shoulder_w"], b["waist_w"], b["hip_w"]
    c.limb((0, 0.8), (0, sy + 0.1), 0.3, 0.34, label)
    c.poly([(-sw, sy + 0.02), (sw, sy + 0.02), (sw - 0.08, sy + 0.85), (ww, b["waist_y"]), (hw, b["hip_y"]),
            (-hw, b["hip_y"]), (-ww, b["waist_y"]), (-sw + 0.08, sy + 0.85)], label)
    for side, name in SIDES:
        c.circle(b[name]["shoulder"], 0.2, label)


def _bodice(b: dict[str, Any], neck_depth: float, hem_y: float, pad: float, neck_w: float = 0.27) -> list:
    """Polygon of a torso garment from its neckline down to ``hem_y`` (``pad`` = looseness)."""
    sy, sw = b["shoulder_y"], b["shoulder_w"]
    t = np.clip((hem_y - b["waist_y"]) / (b["hip_y"] - b["waist_y"]), 0, 1)
    hem_w = b["waist_w"] + t * (b["hip_w"] - b["waist_w"]) + pad + 0.04
    neck = [(x, sy - 0.03 + neck_depth * (1 - (x / neck_w) ** 2)) for x in np.linspace(neck_w, -neck_w, 7)]
    return [(-neck_w, sy - 0.03), (-sw - pad, sy), (-sw + 0.06 - pad, sy + 0.85), (-b["waist_w"] - pad, b["waist_y"]),
            (-hem_w, hem_y), (hem_w, hem_y), (b["waist_w"] + pad, b["waist_y"]), (sw - 0.06 + pad, sy + 0.85),
            (sw + pad, sy)] + neck


def _hem_poly(b: dict[str, Any], top_y: float, top_w: float, hem_y: float, flare: float) -> list:
    """A flared skirt-like panel from ``top_y`` to a slightly curved hem covering the legs."""
    widths = _hem_half_widths(b, hem_y, flare)
    curve = [(x, hem_y + 0.06 * (1 - (2 * i / 6 - 1) ** 2))
             for i, x in enumerate(np.linspace(-widths[-1], widths[1], 7))]
    return [(-top_w, top_y), (top_w, top_y)] + curve[::-1]


def _sample_sleeves(rng: np.random.Generator, outfit: dict[str, Any]) -> None:
    """Sleeve length of each garment as the covered share of the arm path shoulder -> elbow -> wrist.

    One draw per garment from its own generator (see the module notes). Arms hidden under long sleeves
    and gloves need sleeves reaching the gloves, so those sleeves run to the wrist.
    """
    shapes = {g["shape"] for g in outfit["garments"]}
    arms_hidden, _ = _hidden_limbs(shapes, outfit["gloves"] is not None)
    ranges = {"t-shirt": (0.12, 0.6), "long-sleeve": (0.75, 1.0), "coat": (0.75, 1.0), "dress": (0.1, 0.4)}
    for g, draw in zip(outfit["garments"], rng.random(len(outfit["garments"]))):
        if g["shape"] not in ranges or g.get("sleeves") == "none":  # bottoms and sleeveless dresses
            continue
        lo, hi = ranges[g["shape"]]
        full = arms_hidden and g["shape"] in ("long-sleeve", "coat")
        g["sleeve_length"] = 1.0 if full else lo + float(draw) * (hi - lo)


def _arm_path(b: dict[str, Any], name: str, fraction: float) -> tuple[list[np.ndarray], list[float]]:
    """Points and arm widths along the first ``fraction`` of the arm path shoulder -> elbow -> wrist."""
    arm, (wa, we, wr) = b[name], b["arm_w"]
    upper = float(np.linalg.norm(arm["elbow"] - arm["shoulder"]))
    fore = float(np.linalg.norm(arm["wrist"] - arm["elbow"]))
    s = fraction * (upper + fore)
    if s <= upper:
        t = s / upper
        return [arm["shoulder"], arm["shoulder"] + t * (arm["elbow"] - arm["shoulder"])], [wa, wa + t * (we - wa)]
    t = (s - upper) / fore
    return ([arm["shoulder"], arm["elbow"], arm["elbow"] + t * (arm["wrist"] - arm["elbow"])],
            [wa, we, we + t * (wr - we)])


def _draw_sleeves(c: _Canvas, b: dict[str, Any], label: int, fraction: float, extra: float) -> None:
    """Sleeves over the first ``fraction`` of each arm (tapered like the arm, ``extra`` wider)."""
    for _, name in SIDES:
        points, widths = _arm_path(b, name, fraction)
        for (p0, p1), (w0, w1) in zip(zip(points, points[1:]), zip(widths, widths[1:])):
            c.limb(p0, p1, w0 + extra, w1 + extra, label)


def _draw_arms(c: _Canvas, b: dict[str, Any]) -> None:
    wa, we, wr = b["arm_w"]
    for i, (side, name) in enumerate(SIDES):
        arm, label = b[name], SIDE_LABELS["arm"][i]
        c.limb(arm["shoulder"], arm["elbow"], wa, we, label)
        c.limb(arm["elbow"], arm["wrist"], we, wr, label)
        # long axis along the forearm: cv2 rotates the x axis by `angle`, so the y axis follows -side*a
        c.ellipse(arm["hand"], (0.13, 0.2), label, angle=-side * arm["fore_angle"])


def _draw_gloves(c: _Canvas, b: dict[str, Any]) -> None:
    wr = b["arm_w"][2]
    for side, name in SIDES:
        arm = b[name]
        back = arm["wrist"] - 1.4 * (arm["hand"] - arm["wrist"])
        c.limb(back, arm["wrist"], wr + 0.26, wr + 0.24, LABEL_ID["glove"])
        c.ellipse(arm["hand"], (0.17, 0.24), LABEL_ID["glove"], angle=-side * arm["fore_angle"])


def _draw_coat(c: _Canvas, b: dict[str, Any], g: dict[str, Any]) -> None:
    sy, sw, gap = b["shoulder_y"], b["shoulder_w"], g["gap"]
    widths = _hem_half_widths(b, g["hem_y"], 0.22)
    for side, _ in SIDES:
        c.poly([(side * 0.3, sy - 0.06), (side * (sw + 0.1), sy - 0.01), (side * (sw + 0.02), sy + 0.85),
                (side * (b["waist_w"] + 0.14), b["waist_y"]), (side * widths[side], g["hem_y"]),
                (side * gap, g["hem_y"]), (side * gap, sy + 1.0)], g["label"])


def _draw_scarf(c: _Canvas, b: dict[str, Any], side: int) -> None:
    sy, label = b["shoulder_y"], LABEL_ID["scarf"]
    c.limb((-0.26, sy + 0.06), (0.26, sy + 0.06), 0.26, 0.26, label)
    c.limb((side * 0.14, sy + 0.1), (side * 0.2, sy + 1.3), 0.24, 0.22, label)


def _draw_head(c: _Canvas, b: dict[str, Any], outfit: dict[str, Any]) -> None:
    fw, style = b["face_width"], outfit["hair"]["style"]
    hair, face = LABEL_ID["hair"], LABEL_ID["face"]
    if style == "bob":
        c.ellipse((0, 0.5), (0.5 * fw, 0.52), hair)  # ends at the chin: the neck stays visible
    c.ellipse((0, 0.45), (0.44 * fw, 0.5), hair)
    if style == "bun":
        c.circle((0, -0.05), 0.2, hair)
    c.ellipse((0, 0.56), (0.34 * fw, 0.44), face)
    c.ellipse((0.03, 0.36), (0.37 * fw, 0.26), hair, start=180, end=360)
    if outfit["hat"]:
        if outfit["hat_style"] == "beanie":
            c.ellipse((0, 0.3), (0.47 * fw, 0.4), LABEL_ID["hat"], start=180, end=360)
            c.poly([(-0.48 * fw, 0.18), (0.48 * fw, 0.18), (0.48 * fw, 0.34), (-0.48 * fw, 0.34)], LABEL_ID["hat"])
        else:
            c.ellipse((0, 0.08), (0.34 * fw, 0.28), LABEL_ID["hat"])
            c.ellipse((0, 0.24), (0.66 * fw, 0.1), LABEL_ID["hat"])
    if outfit["sunglasses"]:
        for x in (-0.15, 0.15):
            c.ellipse((x * fw, 0.6), (0.13 * fw, 0.1), LABEL_ID["sunglasses"])
        c.limb((-0.12 * fw, 0.56), (0.12 * fw, 0.56), 0.05, 0.05, LABEL_ID["sunglasses"])


def _draw_long_hair_back(c: _Canvas, b: dict[str, Any]) -> None:
    c.ellipse((0, 0.95), (0.5 * b["face_width"], 1.0), LABEL_ID["hair"])


# --------------------------------------------------------------------------- layout
def _shape_geometry(rng: np.random.Generator, b: dict[str, Any], g: dict[str, Any]) -> None:
    """One garment's hem height, neckline or coat opening (stored on its dict, in head units); trousers and
    shorts follow the legs and draw nothing."""
    knee_y = min(b["left"]["knee"][1], b["right"]["knee"][1])
    shape = g["shape"]
    if shape in ("t-shirt", "long-sleeve"):
        g["hem_y"] = b["waist_y"] + rng.uniform(0.25, 0.6)
        g["neck_depth"] = float(rng.choice([0.15, 0.22, 0.45]))
    elif shape == "skirt":
        g["hem_y"] = rng.uniform(b["hip_y"] + 0.6, knee_y + 0.5)
        g["flare"] = rng.uniform(0.1, 0.5)
    elif shape == "dress":
        g["hem_y"] = rng.uniform(knee_y - 0.5, knee_y + 0.5)  # leaves bare leg above any socks
        g["flare"] = rng.uniform(0.15, 0.6)
        g["neck_depth"] = float(rng.choice([0.2, 0.35, 0.5]))
    elif shape == "coat":
        g["hem_y"] = rng.uniform(b["hip_y"] + 0.5, knee_y + 0.4)
        g["gap"] = rng.uniform(0.13, 0.3)


def _garment_geometry(rng: np.random.Generator, b: dict[str, Any], outfit: dict[str, Any]) -> None:
    """Every garment's shape draws (see :func:`_shape_geometry`), then the scarf's side."""
    for g in outfit["garments"]:
        _shape_geometry(rng, b, g)
    if outfit["scarf"]:
        outfit["scarf_side"] = int(rng.choice([-1, 1]))


def _lower_hems(b: dict[str, Any], outfit: dict[str, Any]) -> list[tuple[float, float]]:
    """(lowest y, full width) of each lower garment's hem as drawn, in head units."""
    w_hip, w_knee, w_ankle = b["leg_w"]
    hems = []
    for g in outfit["garments"]:
        shape = g["shape"]
        if shape in ("trousers", "shorts"):  # each leg ends in a round cap of the leg's width
            ends = []
            for side, name in SIDES:
                leg = b[name]
                if shape == "shorts":
                    end, width = leg["hip"] + 0.5 * (leg["knee"] - leg["hip"]), 0.5 * (w_hip + w_knee) + 0.16
                else:
                    end, width = leg["ankle"] + [0, 0.04], w_ankle + 0.16
                ends.append((float(end[1]) + width / 2, side * float(end[0]) + width / 2))
            hems.append((max(y for y, _ in ends), sum(x for _, x in ends)))
        elif shape in ("skirt", "dress", "coat"):  # skirt and dress hems curve 0.06 lower at the centre
            widths = _hem_half_widths(b, g["hem_y"], 0.22 if shape == "coat" else g["flare"])
            hems.append((g["hem_y"] + (0.0 if shape == "coat" else 0.06), widths[1] + widths[-1]))
    return hems


def _true_attributes(b: dict[str, Any], outfit: dict[str, Any]) -> dict[str, float]:
    """The garment attributes this figure is drawn with (what fashion_edit.data.attributes measures).

    sleeve_length: covered share of the arm path shoulder -> elbow -> wrist (the longest sleeve; 0 = bare).
    hem_length: (lowest hem - hip_y) / (ankle y - hip_y), ankle y = mean of both legs.
    width: that hem's full width / the figure's height (head top to the shoes' soles).
    """
    sleeves = [g.get("sleeve_length", 0.0) for g in outfit["garments"]]
    hem_y, hem_w = max(_lower_hems(b, outfit), key=lambda hem: hem[0])
    ankle_y = 0.5 * (b["left"]["ankle"][1] + b["right"]["ankle"][1])
    head_top = {"bun": -0.25}.get(outfit["hair"]["style"], -0.05)
    if outfit["hat"]:
        head_top = -0.2 if outfit["hat_style"] == "brim" else -0.1
    soles = max(b["left"]["ankle"][1], b["right"]["ankle"][1]) + 0.4
    return {"sleeve_length": max(sleeves), "hem_length": (hem_y - b["hip_y"]) / (ankle_y - b["hip_y"]),
            "width": hem_w / (soles - head_top)}


def _extent(b: dict[str, Any], outfit: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min xy, max xy) of everything drawn, in head units."""
    pts = [np.array([-0.7, -0.3]), np.array([0.7, -0.3])]
    for _, name in SIDES:
        limb = b[name]
        for key, r in (("shoulder", 0.45), ("elbow", 0.35), ("wrist", 0.3), ("hand", 0.35), ("knee", 0.45)):
            pts += [limb[key] - r, limb[key] + r]
        pts += [limb["ankle"] + [-0.45, 0.0], limb["ankle"] + [0.45, 0.42]]
    for g in outfit["garments"]:
        if g["shape"] in ("skirt", "dress", "coat"):
            w = _hem_half_widths(b, g["hem_y"], 0.6)
            pts += [np.array([-w[-1], g["hem_y"] + 0.1]), np.array([w[1], g["hem_y"] + 0.1])]
    arr = np.stack(pts)
    return arr.min(0), arr.max(0)


def _place(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, height: int, width: int
           ) -> tuple[float, tuple[float, float]]:
    """Scale (pixels per head unit) and origin so the figure fits the frame with a margin."""
    margin = 1.5
    size = hi - lo
    fit = min((width - 1 - 2 * margin) / size[0], (height - 1 - 2 * margin) / size[1])
    unit = fit * rng.uniform(0.72, 1.0)
    ox = rng.uniform(margin - lo[0] * unit, width - 1 - margin - hi[0] * unit)
    oy = rng.uniform(margin - lo[1] * unit, height - 1 - margin - hi[1] * unit)
    return float(unit), (float(ox), float(oy))


def _hidden_limbs(shapes: set[str], gloves: bool) -> tuple[bool, bool]:
    """(arms hidden, legs hidden): long sleeves or a coat plus gloves cover the arms, trousers the legs.

    Hidden limbs are not drawn at all, so no sliver can leak past a covering shape's rasterisation.
    """
    return gloves and bool(shapes & {"long-sleeve", "coat"}), "trousers" in shapes


def _draw_figure(c: _Canvas, b: dict[str, Any], outfit: dict[str, Any]) -> None:
    """Painter's order, back to front."""
    garments = {g["shape"]: g for g in outfit["garments"]}
    if outfit["hair"]["style"] == "long":
        _draw_long_hair_back(c, b)
    arms_hidden, legs_hidden = _hidden_limbs(set(garments), outfit["gloves"] is not None)
    _draw_torso_skin(c, b)
    _draw_legs(c, b, outfit, legs_hidden)
    for shape in ("trousers", "shorts"):
        if shape in garments:
            _draw_pants(c, b, shape)
    if "skirt" in garments:
        g = garments["skirt"]
        c.poly(_hem_poly(b, b["waist_y"] - 0.05, b["waist_w"] + 0.04, g["hem_y"], g["flare"]), g["label"])
    for shape in ("t-shirt", "long-sleeve"):
        if shape in garments:
            g = garments[shape]
            c.poly(_bodice(b, g["neck_depth"], g["hem_y"], 0.06), g["label"])
    if "dress" in garments:
        g = garments["dress"]
        c.poly(_bodice(b, g["neck_depth"], b["waist_y"] + 0.05, 0.04, neck_w=0.3 if g["sleeves"] == "short" else 0.45),
               g["label"])
        c.poly(_hem_poly(b, b["waist_y"], b["waist_w"] + 0.05, g["hem_y"], g["flare"]), g["label"])
    if "coat" in garments:
        _draw_coat(c, b, garments["coat"])
    if outfit["scarf"]:
        _draw_scarf(c, b, outfit["scarf_side"])
    if not arms_hidden:
        _draw_arms(c, b)
    # short sleeves (t-shirt, dress) hang 0.04 looser than long ones, as before sleeves were continuous
    for shape, extra in (("t-shirt", 0.14), ("long-sleeve", 0.1), ("dress", 0.12), ("coat", 0.2)):
        if "sleeve_length" in garments.get(shape, {}):
            _draw_sleeves(c, b, garments[shape]["label"], garments[shape]["sleeve_length"], extra)
    if outfit["gloves"]:
        _draw_gloves(c, b)
    _draw_head(c, b, outfit)


# --------------------------------------------------------------------------- colouring
def _ramp(c1: Any, c2: Any, t: np.ndarray) -> np.ndarray:
    """Blend two RGB colours by weight map ``t`` in [0, 1] -> (h, w, 3) uint8 (via a 256-entry table)."""
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)
    table = np.clip(c1 + _RAMP[:, None] * (c2 - c1), 0, 255)
    index = np.clip(t * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)
    return table.astype(np.uint8)[index]


def _pick(c1: Any, c2: Any, second: np.ndarray) -> np.ndarray:
    """Two-colour pattern: ``c2`` where ``second`` else ``c1`` -> (h, w, 3) uint8."""
    return np.where(second[..., None], np.asarray(c2, np.uint8), np.asarray(c1, np.uint8))


def _texture(spec: dict[str, Any], ys: np.ndarray, xs: np.ndarray, unit: float,
             rng: np.random.Generator) -> np.ndarray:
    """Texture (h, w, 3) uint8 at final-pixel coordinates ys (h, 1), xs (1, w); ``unit`` = px per head unit."""
    kind, (c1, c2) = spec["kind"], spec["colours"]
    period = max(spec.get("period", 0.3) * unit, 2.0)
    shape = (ys.shape[0], xs.shape[1])
    if kind == "solid":
        return np.broadcast_to(np.asarray(c1, np.uint8), (*shape, 3))
    if kind == "stripes":
        a = math.radians(spec["angle"])
        t = (xs * math.cos(a) + ys * math.sin(a)) / period + spec["phase"][0]
        return _pick(c1, c2, (t % 1.0) < spec["duty"])
    if kind == "checks":  # gingham: where one band crosses, half tone; both, full second colour
        u = ((xs / period + spec["phase"][0]) % 1.0) < 0.5
        v = ((ys / period + spec["phase"][1]) % 1.0) < 0.5
        return _ramp(c1, c2, (u.astype(np.float32) + v.astype(np.float32)) * 0.5)
    if kind == "dots":
        fx = (xs / period + spec["phase"][0]) % 1.0 - 0.5
        fy = (ys / period + spec["phase"][1]) % 1.0 - 0.5
        return _pick(c1, c2, fx * fx + fy * fy < (0.55 * spec["duty"]) ** 2)
    if kind == "gradient":
        a = math.radians(spec["angle"])
        t = np.broadcast_to(xs * math.cos(a) + ys * math.sin(a), shape)
        lo, hi = float(t.min()), float(t.max())
        return _ramp(c1, c2, (t - lo) / max(hi - lo, 1e-6))
    if kind == "noise":
        grid = rng.random((max(2, int(shape[0] / period / 1.5) + 2), max(2, int(shape[1] / period / 1.5) + 2)),
                          np.float32)
        return _ramp(c1, c2, cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC))
    raise ValueError(f"unknown texture kind {kind!r}; known: {TEXTURES}")


def _background(rng: np.random.Generator, height: int, width: int, horizon: float) -> tuple[str, np.ndarray]:
    """Background at final resolution (smooth, so it needs no supersampling)."""
    kind = str(rng.choice(BACKGROUNDS))
    c1 = _colour(rng, (0.0, 0.5), (0.35, 1.0))
    c2 = _colour(rng, (0.0, 0.5), (0.2, 0.95))
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    if kind == "solid":
        img = _texture({"kind": "solid", "colours": [c1, c2]}, ys, xs, 1.0, rng)
    elif kind == "gradient":
        angle = float(rng.choice([90.0, 0.0, rng.uniform(0, 180)]))
        img = _texture({"kind": "gradient", "colours": [c1, c2], "angle": angle}, ys, xs, 1.0, rng)
    elif kind == "noise":
        grid = rng.random((int(rng.integers(3, 9)),) * 2, np.float32)
        img = _ramp(c1, c2, cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC))
    else:  # floor: a wall above a floor line near the feet, each slightly shaded
        depth = np.broadcast_to(ys / height, (height, width))
        wall = _ramp(c1, np.multiply(c1, 0.85), depth)
        floor = _ramp(c2, np.multiply(c2, 0.75), np.clip((depth * height - horizon) / max(height - horizon, 1), 0, 1))
        img = np.where(ys[..., None] < horizon, wall, floor)
    return kind, np.ascontiguousarray(img)


def _face_details(img: np.ndarray, labels: np.ndarray, c: _Canvas, b: dict[str, Any], outfit: dict[str, Any]) -> None:
    """Eyes, brows and mouth drawn into the image only where the parsing says face."""
    x, y, w, h = cv2.boundingRect((labels == LABEL_ID["face"]).view(np.uint8))
    if w == 0 or h == 0:
        return
    crop = img[y:y + h, x:x + w].copy()
    dark = tuple(int(v) for v in np.asarray(outfit["skin"]) * 0.35)
    lips = tuple(int(v) for v in np.asarray(outfit["skin"]) * [0.75, 0.45, 0.45])

    def local(pt: tuple[float, float]) -> tuple[int, int]:
        fx, fy = c.fixed_point(pt)
        return fx - (x << _SHIFT), fy - (y << _SHIFT)

    fw = b["face_width"]
    if not outfit["sunglasses"]:
        for ex in (-0.14, 0.14):
            cv2.circle(crop, local((ex * fw, 0.6)), c._length(0.045), dark, -1, cv2.LINE_8, _SHIFT)
            cv2.line(crop, local(((ex - 0.07) * fw, 0.51)), local(((ex + 0.07) * fw, 0.51)), dark,
                     max(1, c._length(0.025) >> _SHIFT), cv2.LINE_8, _SHIFT)
    cv2.ellipse(crop, local((0, 0.83)), (c._length(0.09), c._length(0.03)), 0, 0, 360, lips, -1, cv2.LINE_8, _SHIFT)
    np.copyto(img[y:y + h, x:x + w], crop, where=(labels[y:y + h, x:x + w] == LABEL_ID["face"])[..., None])


def _label_textures(outfit: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The one texture each label is painted with."""
    specs: dict[int, dict[str, Any]] = {lab: {"kind": "solid", "colours": [outfit["skin"]] * 2} for lab in SKIN_LABELS}
    hair = outfit["hair"]["colour"]
    specs[LABEL_ID["hair"]] = {"kind": "noise", "period": 0.12, "colours": [hair, [int(v * 0.75) for v in hair]]}
    for lab in SIDE_LABELS["shoe"]:
        specs[lab] = {"kind": "solid", "colours": [outfit["shoes"]] * 2}
    specs[LABEL_ID["sunglasses"]] = {"kind": "solid", "colours": [[18, 18, 22]] * 2}
    if outfit["gloves"]:
        specs[LABEL_ID["glove"]] = {"kind": "solid", "colours": [outfit["gloves"]] * 2}
    for key in ("hat", "scarf", "socks"):
        if outfit[key]:
            specs[LABEL_ID[key]] = outfit[key]
    for g in outfit["garments"]:
        specs[g["label"]] = g["texture"]
    return specs


def _darken_seams(img: np.ndarray, labels: np.ndarray) -> None:
    """Darken a thin seam where two labels meet so equal-coloured parts (arm over skin) stay readable."""
    seam = np.zeros(labels.shape, bool)
    dx, dy = labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]
    seam[:, 1:] |= dx
    seam[:, :-1] |= dx
    seam[1:, :] |= dy
    seam[:-1, :] |= dy
    seam &= labels != 0
    img[seam] = (img[seam] * np.float32(0.78)).astype(np.uint8)


def _figure_box(labels: np.ndarray) -> tuple[tuple[slice, slice], int, int]:
    """The figure's bounding box 1 px wider on each side (for the seams), and its top-left corner."""
    x0, y0, w0, h0 = cv2.boundingRect(labels)
    x0, y0 = max(x0 - 1, 0), max(y0 - 1, 0)
    return (slice(y0, y0 + h0 + 2), slice(x0, x0 + w0 + 2)), x0, y0


def _paint_figure(rng: np.random.Generator, c: _Canvas, b: dict[str, Any], outfit: dict[str, Any],
                  background: np.ndarray) -> np.ndarray:
    """Supersampled RGB image: background + one texture per label + face details (no seams yet)."""
    s = c.s
    img = cv2.resize(background, (c.labels.shape[1], c.labels.shape[0]), interpolation=cv2.INTER_NEAREST)
    box, x0, y0 = _figure_box(c.labels)  # work inside the figure's bounding box
    labels, canvas = c.labels[box], img[box]
    specs = _label_textures(outfit)
    # solid labels in one table lookup; patterned labels one by one inside their own boxes
    table, solid = np.zeros((NUM_CLASSES, 3), np.uint8), np.zeros(NUM_CLASSES, bool)
    for lab, spec in specs.items():
        if spec["kind"] == "solid":
            table[lab], solid[lab] = spec["colours"][0], True
    np.copyto(canvas, table[labels], where=solid[labels][..., None])
    patterned = [lab for lab, spec in specs.items() if spec["kind"] != "solid"]
    for lab in sorted(set(patterned) & set(np.flatnonzero(np.bincount(labels.ravel(), minlength=NUM_CLASSES)))):
        mask = labels == lab
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        ys = (np.arange(y0 + y, y0 + y + h, dtype=np.float32)[:, None] - (s - 1) / 2) / s
        xs = (np.arange(x0 + x, x0 + x + w, dtype=np.float32)[None, :] - (s - 1) / 2) / s
        tex = _texture(specs[int(lab)], ys, xs, c.unit, rng)
        np.copyto(canvas[y:y + h, x:x + w], tex, where=mask[y:y + h, x:x + w, None])
    _face_details(img, c.labels, c, b, outfit)
    return img


def _colour_figure(rng: np.random.Generator, c: _Canvas, b: dict[str, Any], outfit: dict[str, Any],
                   background: np.ndarray) -> np.ndarray:
    """Supersampled RGB image: the painted figure with seam shading."""
    img = _paint_figure(rng, c, b, outfit, background)
    box = _figure_box(c.labels)[0]
    _darken_seams(img[box], c.labels[box])
    return img


# --------------------------------------------------------------------------- downsampling
def majority_downsample(labels: np.ndarray, s: int) -> np.ndarray:
    """Label covering most of each s x s block (ties: the first in row-major order)."""
    if s == 1:
        return labels.copy()
    h, w = labels.shape[0] // s, labels.shape[1] // s
    if s == 2:  # fast path, same rule: a wins if it occurs twice, else b, else c (c == d), else a
        a, b, c, d = labels[0::2, 0::2], labels[0::2, 1::2], labels[1::2, 0::2], labels[1::2, 1::2]
        out = np.where(c == d, c, a)
        out = np.where((b == c) | (b == d), b, out)
        return np.where((a == b) | (a == c) | (a == d), a, out)
    blocks = labels.reshape(h, s, w, s).transpose(0, 2, 1, 3).reshape(h, w, s * s)
    counts = (blocks[..., :, None] == blocks[..., None, :]).sum(-1)
    winner = counts.argmax(-1)
    return np.take_along_axis(blocks, winner[..., None], -1)[..., 0]


# --------------------------------------------------------------------------- public API
def expected_labels(description: dict[str, Any]) -> set[int]:
    """LIP-20 ids a figure with this description shows (by construction of the layers)."""
    shapes = {g["shape"] for g in description["garments"]}
    labels = {0, LABEL_ID["hair"], LABEL_ID["face"], LABEL_ID["torso-skin"], *SIDE_LABELS["shoe"]}
    labels |= {g["label"] for g in description["garments"]}
    arms_hidden, legs_hidden = _hidden_limbs(shapes, description["gloves"] is not None)
    if not arms_hidden:
        labels |= set(SIDE_LABELS["arm"])
    if not legs_hidden:
        labels |= set(SIDE_LABELS["leg"])
    for key in ("hat", "sunglasses", "scarf", "socks"):
        if description[key]:
            labels.add(LABEL_ID[key])
    if description["gloves"] is not None:
        labels.add(LABEL_ID["glove"])
    return labels


def _jsonable(value: Any) -> Any:
    """Round floats (3 decimals) and turn numpy values into plain JSON types."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (float, np.floating)):
        return round(float(value), 3)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class _Scene:
    """Every draw of a figure's main generator up to its placement: what a swapped render shares."""

    rng: np.random.Generator  # left where the background's draws start
    outfit: dict[str, Any]
    body: dict[str, Any]
    unit: float
    origin: tuple[float, float]


def _sample_scene(index: int, p: SynthesizeParams) -> _Scene:
    rng = np.random.default_rng([p.seed, index])
    outfit = _sample_outfit(rng)
    _sample_sleeves(np.random.default_rng([p.seed, index, 1]), outfit)
    body = _sample_body(rng)
    _garment_geometry(rng, body, outfit)
    unit, origin = _place(rng, *_extent(body, outfit), p.height, p.width)
    return _Scene(rng, outfit, body, unit, origin)


def _draw(scene: _Scene, outfit: dict[str, Any], p: SynthesizeParams) -> _Canvas:
    canvas = _Canvas(p.height, p.width, p.supersample, scene.unit, scene.origin)
    _draw_figure(canvas, scene.body, outfit)
    return canvas


def _backdrop(scene: _Scene, canvas: _Canvas, p: SynthesizeParams) -> tuple[str, np.ndarray]:
    """The background, its floor line a little off the feet."""
    feet_y = canvas.final(scene.body["left"]["ankle"])[1] + scene.rng.uniform(-0.5, 0.2) * scene.unit
    return _background(scene.rng, p.height, p.width, feet_y)


def _finish(index: int, p: SynthesizeParams, scene: _Scene, outfit: dict[str, Any], canvas: _Canvas,
            big: np.ndarray, bg_kind: str, extra: dict[str, Any] | None = None) -> Figure:
    """Downsample the supersampled image and labels; keypoints and the JSON description (plus ``extra``)."""
    body, unit = scene.body, scene.unit
    image = cv2.resize(big, (p.width, p.height), interpolation=cv2.INTER_AREA) if p.supersample > 1 else big
    parsing = majority_downsample(canvas.labels, p.supersample)

    right, left = body["right"], body["left"]
    joints = [np.array([0.0, -0.05]), np.array([0.0, body["shoulder_y"]])]
    joints += [right[k] for k in ("shoulder", "elbow", "wrist")] + [left[k] for k in ("shoulder", "elbow", "wrist")]
    joints += [right[k] for k in ("hip", "knee", "ankle")] + [left[k] for k in ("hip", "knee", "ankle")]
    xy = canvas.final(np.stack(joints))
    keypoints = np.concatenate([xy, np.ones((len(joints), 1))], 1).astype(np.float32)

    garments = [{"shape": g["shape"], "label": g["label"], "texture": g["texture"]["kind"],
                 "colours": g["texture"]["colours"], **({"sleeves": g["sleeves"]} if "sleeves" in g else {})}
                for g in outfit["garments"]]
    textures = sorted({g["texture"] for g in garments} |
                      {outfit[k]["kind"] for k in ("hat", "scarf", "socks") if outfit[k]})
    description = _jsonable({
        "index": index, "stem": stem(index), "height": p.height, "width": p.width,
        "garments": garments, "textures": textures, "background": bg_kind,
        "hat": outfit["hat_style"], "sunglasses": outfit["sunglasses"],
        "scarf": outfit["scarf"]["kind"] if outfit["scarf"] else None,
        "gloves": outfit["gloves"], "socks": outfit["socks"]["kind"] if outfit["socks"] else None,
        "hair": outfit["hair"], "skin": outfit["skin"], "shoes": outfit["shoes"],
        "body": {"unit_px": unit, "width": body["width"], "legs": body["legs"]}, "pose": body["pose"],
        "attributes": _true_attributes(body, outfit), **(extra or {}),
    })
    return Figure(image=image, parsing=parsing, keypoints=keypoints, description=description)


def render_figure(index: int, p: SynthesizeParams) -> Figure:
    """Render figure ``index`` of the dataset defined by ``p`` (independent of all other figures)."""
    scene = _sample_scene(index, p)
    canvas = _draw(scene, scene.outfit, p)
    bg_kind, background = _backdrop(scene, canvas, p)
    big = _colour_figure(scene.rng, canvas, scene.body, scene.outfit, background)
    return _finish(index, p, scene, scene.outfit, canvas, big, bg_kind)


# --------------------------------------------------------------------------- garment-category swap
class SwapError(FashionEditError, ValueError):
    """A figure's lower garment cannot become the asked shape (a dress, no lower garment, an unknown shape)."""


def lower_shape(description: dict[str, Any]) -> str | None:
    """What a figure (its description, or outfit) wears from the waist down: a :data:`LOWER_SHAPES` shape, "dress",
    or None."""
    return next((g["shape"] for g in description["garments"] if g["shape"] in (*LOWER_SHAPES, "dress")), None)


def _swapped_outfit(outfit: dict[str, Any], body: dict[str, Any], to_shape: str,
                    rng: np.random.Generator) -> dict[str, Any]:
    """The outfit with its lower garment made ``to_shape`` in the same texture; shape draws come from ``rng``."""
    shape = lower_shape(outfit)
    if shape in (None, "dress"):
        raise SwapError(f"the figure wears {'a dress' if shape else 'no lower garment'}: nothing to swap for "
                        f"{to_shape!r}")
    if to_shape not in LOWER_SHAPES or to_shape == shape:
        raise SwapError(f"cannot swap the figure's {shape} for {to_shape!r}; choose one of "
                        f"{[s for s in LOWER_SHAPES if s != shape]}")
    old = next(g for g in outfit["garments"] if g["shape"] == shape)
    new = {"shape": to_shape, "label": GARMENT_LABEL[to_shape], "texture": old["texture"]}
    _shape_geometry(rng, body, new)
    swapped = {**outfit, "garments": [new if g is old else g for g in outfit["garments"]]}
    if _hidden_limbs({to_shape}, False)[1]:
        swapped["socks"] = None  # hidden under trousers (the generator gives socks to bare legs only)
    return swapped


def render_swapped(index: int, p: SynthesizeParams, to_shape: str) -> Figure:
    """Figure ``index`` of ``p`` with its lower garment (skirt, trousers or shorts) drawn as ``to_shape``.

    Body, pose, placement, background and every other garment are the original's, and so is every pixel whose
    label is unchanged: the original is painted first and only the pixels whose label the swap changes are
    repainted (the new garment in the old one's texture spec, newly bare legs in the skin colour, background).
    Seams are then shaded along the new labels' borders. The new garment's shape draws (hem, flare) and its
    noise texture come from a third generator, ``default_rng([seed, index, 2])``. SwapError for a figure in a
    dress, one without a lower garment, or a ``to_shape`` that is no other lower shape.
    """
    scene = _sample_scene(index, p)
    extra_rng = np.random.default_rng([p.seed, index, 2])
    swapped = _swapped_outfit(scene.outfit, scene.body, to_shape, extra_rng)
    before, after = _draw(scene, scene.outfit, p), _draw(scene, swapped, p)
    bg_kind, background = _backdrop(scene, before, p)
    big = _paint_figure(scene.rng, before, scene.body, scene.outfit, background)
    changed = after.labels != before.labels
    np.copyto(big, _paint_figure(extra_rng, after, scene.body, swapped, background), where=changed[..., None])
    box = _figure_box(after.labels)[0]
    _darken_seams(big[box], after.labels[box])
    return _finish(index, p, scene, swapped, after, big, bg_kind, {"swapped_from": lower_shape(scene.outfit)})


def colourise(parsing: np.ndarray) -> np.ndarray:
    """Parsing ids -> RGB using the shared LIP-20 palette."""
    return np.asarray(PALETTE, np.uint8)[parsing]


def contact_sheet(figures: list[tuple[np.ndarray, np.ndarray]], columns: int = 8, gap: int = 2) -> np.ndarray:
    """Grid of (image | colourised parsing) pairs, RGB uint8."""
    h, w = figures[0][0].shape[:2]
    cell_w = 2 * w + gap
    rows = math.ceil(len(figures) / columns)
    cols = min(columns, len(figures))
    sheet = np.full((rows * (h + gap) + gap, cols * (cell_w + 2 * gap) + gap, 3), 255, np.uint8)
    for i, (image, parsing) in enumerate(figures):
        y = gap + (i // columns) * (h + gap)
        x = gap + (i % columns) * (cell_w + 2 * gap)
        sheet[y:y + h, x:x + w] = image
        sheet[y:y + h, x + w + gap:x + cell_w] = colourise(parsing)
    return sheet


def _clear_owned(out_dir: Path) -> None:
    """Remove files a previous run wrote; refuse to touch a folder holding anything else."""
    for sub in ("images", "parsing", "keypoints"):
        folder = out_dir / sub
        if not folder.exists():
            continue
        foreign = [f.name for f in folder.iterdir() if not STEM_PATTERN.fullmatch(f.name)]
        if foreign:
            raise SynthesizeError(
                f"{folder}: holds {foreign[:3]} which the synthesize stage did not write; "
                "point --out at an empty folder or one written by this stage")
        for f in folder.iterdir():
            f.unlink()
    for name in ("label_map.yaml", "figures.jsonl"):
        (out_dir / name).unlink(missing_ok=True)


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise SynthesizeError(f"{path}: could not write PNG (check the folder is writable)")


def write_dataset(p: SynthesizeParams, out_dir: Path, sheet_path: Path) -> dict[str, Any]:
    """Write ``p.count`` figures in the raw folder layout plus a contact sheet; return a summary."""
    out_dir, sheet_path = Path(out_dir), Path(sheet_path)
    _clear_owned(out_dir)
    for sub in ("images", "parsing", "keypoints"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    shapes, textures, labels = Counter(), Counter(), Counter()
    sheet_items: list[tuple[np.ndarray, np.ndarray]] = []
    with (out_dir / "figures.jsonl").open("w") as lines:
        for index in tqdm(range(p.count), desc="synthesize", unit="fig", disable=None):
            fig, name = render_figure(index, p), stem(index)
            _write_png(out_dir / "images" / f"{name}.png", cv2.cvtColor(fig.image, cv2.COLOR_RGB2BGR))
            _write_png(out_dir / "parsing" / f"{name}.png", fig.parsing)
            kp = {"format": KEYPOINT_FORMAT, "keypoints": np.round(fig.keypoints.astype(np.float64), 3).tolist()}
            (out_dir / "keypoints" / f"{name}.json").write_text(json.dumps(kp) + "\n")
            lines.write(json.dumps(fig.description, sort_keys=True) + "\n")
            shapes.update(g["shape"] for g in fig.description["garments"])
            textures.update(fig.description["textures"])
            labels.update(np.flatnonzero(np.bincount(fig.parsing.ravel(), minlength=NUM_CLASSES)).tolist())
            if index < p.contact_sheet:
                sheet_items.append((fig.image, fig.parsing))
    label_map = {"source": LABEL_MAP_SOURCE, "map": {i: i for i in range(NUM_CLASSES)}}
    (out_dir / "label_map.yaml").write_text(yaml.safe_dump(label_map, sort_keys=False))
    sheet_path.parent.mkdir(parents=True, exist_ok=True)
    _write_png(sheet_path, cv2.cvtColor(contact_sheet(sheet_items), cv2.COLOR_RGB2BGR))
    return {
        "count": p.count, "height": p.height, "width": p.width, "seed": p.seed, "out_dir": str(out_dir),
        "contact_sheet": str(sheet_path), "garments": dict(sorted(shapes.items())),
        "textures": dict(sorted(textures.items())), "figures_per_label": dict(sorted(labels.items())),
    }
