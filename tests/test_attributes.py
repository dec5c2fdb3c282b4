"""Garment attributes measured from a parsing alone (fashion_edit/data/attributes.py)."""
from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from fashion_edit.config import SynthesizeParams
from fashion_edit.data import attributes
from fashion_edit.data.attributes import (
    ATTRIBUTES, UnknownAttributeError, attribute_index, attribute_region, measure_attributes,
)
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.synthetic import render_figure
from fashion_edit.errors import FashionEditError
from tools.calibrate_attributes import calibrate

L = LABEL_ID
SLEEVE, HEM, WIDTH = (attribute_index(name) for name in ATTRIBUTES)


@pytest.fixture(scope="module")
def figures():
    """80 default-size procedural figures with their recorded true attributes."""
    p = SynthesizeParams(seed=0)
    return [render_figure(i, p) for i in range(80)]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # ranks by numpy (the values are continuous: ties are negligible)
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return float(np.corrcoef(ra, rb)[0, 1])
    return float(spearmanr(a, b)[0])


# --------------------------------------------------------------------------- vs the generator's truth
@pytest.mark.parametrize("name, min_rho, max_mae", [("sleeve_length", 0.9, 0.1), ("hem_length", 0.9, 0.1),
                                                     ("width", 0.7, None)])
def test_measures_follow_the_generators_truth(figures, name, min_rho, max_mae):
    j = attribute_index(name)
    measured = np.array([measure_attributes(f.parsing)[j] for f in figures])
    truth = np.array([f.description["attributes"][name] for f in figures])
    assert not np.isnan(measured).any()  # every procedural figure wears a lower garment
    assert _spearman(measured, truth) >= min_rho
    if max_mae is not None:
        assert np.abs(measured - truth).mean() <= max_mae


def test_generator_records_continuous_attributes(figures):
    truth = np.array([[f.description["attributes"][name] for name in ATTRIBUTES] for f in figures])
    sleeves = truth[:, SLEEVE]
    assert ((sleeves >= 0) & (sleeves <= 1)).all() and len(np.unique(sleeves)) > 40
    for f in figures:  # sleeveless dresses (without a coat) show bare arms
        shapes = {g["shape"]: g for g in f.description["garments"]}
        if set(shapes) == {"dress"} and shapes["dress"]["sleeves"] == "none":
            assert f.description["attributes"]["sleeve_length"] == 0
    assert ((truth[:, HEM] > 0) & (truth[:, HEM] <= 1.1)).all() and (truth[:, WIDTH] > 0).all()


def test_constants_match_a_fresh_calibration():
    """The generator changed? Recalibrate (python -m tools.calibrate_attributes) and update the constants."""
    fresh = calibrate(count=300, seed=1)
    assert fresh["FIGURE_HEIGHT_U"] == pytest.approx(attributes.FIGURE_HEIGHT_U, rel=0.01)
    assert fresh["HIP_FRACTION"] == pytest.approx(attributes.HIP_FRACTION, abs=0.01)
    assert fresh["ARMS_U2"] == pytest.approx(attributes.ARMS_U2, rel=0.05)
    assert fresh["HANDS_U2"] == pytest.approx(attributes.HANDS_U2, abs=0.03)


# --------------------------------------------------------------------------- hand-drawn figures
def _person(sleeves: float = 0.0, lower: str | None = "skirt", hem: float = 0.5, flare: float = 0.0,
            arm_angle: float = 20.0, unit: float = 13.0, size: int = 128) -> np.ndarray:
    """A front-facing figure drawn in head units (proportions of the procedural figures).

    ``sleeves``: covered share of each arm; ``hem``: skirt/shorts hem between the hips (0) and ankles (1).
    """
    s = 4  # drawn 4x larger, then sampled: line widths of a few pixels would otherwise round by up to 30 %
    canvas = np.zeros((size * s, size * s), np.uint8)
    cx, top, unit = s * size / 2, s * 6.0, s * unit

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round(cx + x * unit)), int(round(top + (y + 0.05) * unit))

    def line(a: tuple[float, float], b: tuple[float, float], width: float, label: int) -> None:
        cv2.line(canvas, px(*a), px(*b), label, max(1, int(round(width * unit))))

    def ellipse(c: tuple[float, float], axes: tuple[float, float], label: int) -> None:
        cv2.ellipse(canvas, px(*c), (int(round(axes[0] * unit)), int(round(axes[1] * unit))), 0, 0, 360, label, -1)

    hip_y, ankle_y = 3.6, 7.25  # soles at 7.64: about FIGURE_HEIGHT_U below the hair top
    for side in (-1, 1):  # legs and shoes
        line((side * 0.4, hip_y), (side * 0.5, ankle_y), 0.5, L["left-leg" if side > 0 else "right-leg"])
        ellipse((side * 0.55, ankle_y + 0.22), (0.27, 0.17), L["left-shoe" if side > 0 else "right-shoe"])
    shoe_top = ankle_y + 0.05  # the ellipse's top in head units (ankle row of the measure)
    def poly(points: list[tuple[float, float]], label: int) -> None:
        cv2.fillPoly(canvas, [np.array([px(*p) for p in points])], label)

    poly([(-0.9, 1.35), (0.9, 1.35), (0.7, 3.3), (-0.7, 3.3)], L["upper-clothes"])
    if lower is not None:
        hem_y = hip_y + hem * (shoe_top - hip_y)
        if lower == "skirt":
            half = 0.8 + flare
            poly([(-0.6, 2.95), (0.6, 2.95), (half, hem_y), (-half, hem_y)], L["skirt"])
        else:  # shorts / trousers
            poly([(-0.6, 2.95), (0.6, 2.95), (0.75, hip_y), (-0.75, hip_y)], L["pants"])
            for side in (-1, 1):
                line((side * 0.4, hip_y), (side * (0.4 + 0.1 * hem), hem_y - 0.3), 0.62, L["pants"])
    a = math.radians(arm_angle)
    for side in (-1, 1):  # arms 2.55 head units long, then the hand, then the sleeve over the arm
        shoulder = (side * 0.9, 1.5)
        wrist = (shoulder[0] + side * 2.55 * math.sin(a), shoulder[1] + 2.55 * math.cos(a))
        line(shoulder, wrist, 0.34, L["left-arm" if side > 0 else "right-arm"])
        ellipse((wrist[0] + side * 0.2 * math.sin(a), wrist[1] + 0.2 * math.cos(a)), (0.13, 0.2),
                L["left-arm" if side > 0 else "right-arm"])
        if sleeves > 0:
            end = (shoulder[0] + side * 2.55 * sleeves * math.sin(a), shoulder[1] + 2.55 * sleeves * math.cos(a))
            line(shoulder, end, 0.46, L["upper-clothes"])
    ellipse((0, 0.45), (0.44, 0.5), L["hair"])
    ellipse((0, 0.56), (0.34, 0.44), L["face"])
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("unit", [9.0, 13.0])
def test_bare_half_and_fully_sleeved_arms(unit):
    for sleeves in (0.0, 0.5, 1.0):
        assert measure_attributes(_person(sleeves=sleeves, unit=unit))[SLEEVE] == pytest.approx(sleeves, abs=0.1)


def test_sleeve_length_ignores_the_arms_pose():
    values = [measure_attributes(_person(sleeves=0.5, arm_angle=angle))[SLEEVE] for angle in (8, 30, 55)]
    assert max(values) - min(values) < 0.1


def test_hem_length_of_drawn_skirts_and_shorts():
    assert measure_attributes(_person(lower="skirt", hem=1.0))[HEM] == pytest.approx(1.0, abs=0.1)
    assert measure_attributes(_person(lower="skirt", hem=0.5))[HEM] == pytest.approx(0.5, abs=0.1)
    assert measure_attributes(_person(lower="shorts", hem=0.3))[HEM] == pytest.approx(0.3, abs=0.1)


def test_a_flared_skirt_is_wider():
    straight = measure_attributes(_person(lower="skirt", hem=0.6))[WIDTH]
    flared = measure_attributes(_person(lower="skirt", hem=0.6, flare=0.5))[WIDTH]
    assert flared > straight * 1.2


def test_no_lower_garment_gives_nan_hem_and_width():
    values = measure_attributes(_person(sleeves=0.5, lower=None))
    assert np.isnan(values[HEM]) and np.isnan(values[WIDTH]) and not np.isnan(values[SLEEVE])


def test_empty_parsing_measures_nothing():
    values = measure_attributes(np.zeros((64, 64), np.uint8))
    assert values.dtype == np.float32 and values.shape == (len(ATTRIBUTES),) and np.isnan(values).all()


# --------------------------------------------------------------------------- regions
def _mask(parsing: np.ndarray, *names: str) -> np.ndarray:
    return np.isin(parsing, [L[n] for n in names])


def test_regions_cover_the_garments_and_limbs_but_not_the_head(figures):
    head = ("face", "hair")
    for f in figures[:30]:
        q = f.parsing
        sleeve = attribute_region(q, "sleeve_length")
        assert sleeve.dtype == bool and sleeve.shape == q.shape
        assert sleeve[_mask(q, "upper-clothes", "coat", "dress", "left-arm", "right-arm", "glove")].all()
        hem, width = attribute_region(q, "hem_length"), attribute_region(q, "width")
        rows = np.arange(q.shape[0])[:, None]
        hip = attributes._frame(q).hip
        below_hip = _mask(q, "pants", "skirt", "dress", "coat") & (rows > hip + 1)
        legs = _mask(q, "left-leg", "right-leg", "socks")
        for region in (hem, width):
            assert region[below_hip | legs | _mask(q, "skirt")].all()
        for region in (sleeve, hem, width):
            assert not region[_mask(q, *head)].any()


def test_hem_region_reaches_the_ankles_and_width_region_the_sides():
    unit = 13.0
    q = _person(lower="skirt", hem=0.3, unit=unit)
    hem, width = attribute_region(q, "hem_length"), attribute_region(q, "width")
    skirt_rows, skirt_cols = np.flatnonzero((q == L["skirt"]).any(1)), np.flatnonzero((q == L["skirt"]).any(0))
    shoe_top = np.flatnonzero(_mask(q, "left-shoe", "right-shoe").any(1))[0]
    # beside a leg, halfway between the short skirt's hem and the shoes: where a longer skirt would be
    below = ((skirt_rows[-1] + shoe_top) // 2, skirt_cols[-1] + 3)
    assert q[below] == 0 and hem[below] and not width[below]
    # beside the skirt just above its hem: where a wider skirt would be
    for beside in ((skirt_rows[-1] - 2, skirt_cols[0] - 3), (skirt_rows[-1] - 2, skirt_cols[-1] + 3)):
        assert q[beside] == 0 and width[beside] and hem[beside]
    assert not attribute_region(q, "sleeve_length")[below]


# --------------------------------------------------------------------------- errors
def test_unknown_attribute_names_are_refused_clearly():
    for call in (lambda: attribute_index("colour"), lambda: attribute_region(_person(), "colour")):
        with pytest.raises(UnknownAttributeError, match=r"'colour'.*sleeve_length.*hem_length.*width"):
            call()
    assert issubclass(UnknownAttributeError, FashionEditError) and issubclass(UnknownAttributeError, ValueError)
    assert [attribute_index(n) for n in ATTRIBUTES] == [0, 1, 2]


def test_region_of_an_empty_parsing_says_there_is_no_figure():
    with pytest.raises(FashionEditError, match="no figure"):
        attribute_region(np.zeros((64, 64), np.uint8), "hem_length")


# --------------------------------------------------------------------------- invariance and speed
def test_flip_and_rescale_invariance(figures):
    for f in figures[:20]:
        values = measure_attributes(f.parsing)
        np.testing.assert_allclose(measure_attributes(np.ascontiguousarray(f.parsing[:, ::-1])), values, atol=1e-6)
        double = cv2.resize(f.parsing, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        np.testing.assert_allclose(measure_attributes(double), values, atol=0.05)


def test_measuring_is_fast(figures):
    parsings = [f.parsing for f in figures[:40]]
    best = math.inf
    for _ in range(3):  # best of three: other jobs share the cores
        start = time.perf_counter()
        for q in parsings:
            measure_attributes(q)
        best = min(best, (time.perf_counter() - start) / len(parsings))
    assert best < 1e-3
