"""Recompute the calibrated constants of ``fashion_edit/data/attributes.py`` from procedural figures.

    python -m tools.calibrate_attributes [--count 2000] [--seed 0]

Run it after changing the synthetic generator and copy the printed numbers into attributes.py (a tool, not
part of the library: the pipeline's stages must not depend on the generator's source).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from fashion_edit.config import SynthesizeParams
from fashion_edit.data.attributes import ARMS, GLOVE, _frame
from fashion_edit.data.synthetic import KEYPOINT_NAMES, render_figure


def calibrate(count: int = 400, seed: int = 0) -> dict[str, float]:
    """Recompute the calibrated constants from ``count`` procedural figures (renders them: ~2 s per 400).

    FIGURE_HEIGHT_U and HIP_FRACTION are medians over the figures (the generator's head unit and hip
    keypoints are the truth); ARMS_U2 and HANDS_U2 are the line bare area / u**2 = HANDS_U2 + ARMS_U2 *
    (1 - sleeve) fitted by least squares on sleeved figures without gloves; GLOVE_AS_ARM is the
    least-squares factor that puts gloved figures with bare arms on that line.
    """
    hips = [KEYPOINT_NAMES.index("left_hip"), KEYPOINT_NAMES.index("right_hip")]
    p = SynthesizeParams(seed=seed)
    heights, hip_fractions, arms, gloves, sleeves = [], [], [], [], []
    for index in range(count):
        fig = render_figure(index, p)
        frame = _frame(fig.parsing)
        assert frame is not None
        counts = np.bincount(fig.parsing.ravel(), minlength=256)
        heights.append(frame.height / fig.description["body"]["unit_px"])
        hip_fractions.append((fig.keypoints[hips, 1].mean() - frame.top) / (frame.ankle - frame.top))
        arms.append(counts[list(ARMS)].sum() / frame.height ** 2)  # times height_u**2 below: per u**2
        gloves.append(counts[GLOVE] / frame.height ** 2)
        sleeves.append(fig.description["attributes"]["sleeve_length"])
    height_u = float(np.median(heights))
    arm, glove, sleeve = np.asarray(arms) * height_u ** 2, np.asarray(gloves) * height_u ** 2, np.asarray(sleeves)
    fit = (sleeve > 0) & (glove == 0)
    slope, intercept = np.polyfit(1 - sleeve[fit], arm[fit], 1)
    gloved = (glove > 0) & (arm > 0)
    gap = intercept + slope * (1 - sleeve[gloved]) - arm[gloved]
    return {"FIGURE_HEIGHT_U": height_u, "HIP_FRACTION": float(np.median(hip_fractions)),
            "ARMS_U2": float(slope), "HANDS_U2": float(intercept),
            "GLOVE_AS_ARM": float(gap @ glove[gloved] / (glove[gloved] @ glove[gloved]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(calibrate(args.count, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
