"""The canonical LIP-20 / CIHP parsing label set (ids as published by the LIP dataset)."""
from __future__ import annotations

LIP20: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat",
    "socks", "pants", "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm",
    "left-leg", "right-leg", "left-shoe", "right-shoe",
)
NUM_CLASSES = len(LIP20)
LABEL_ID = {name: i for i, name in enumerate(LIP20)}

BACKGROUND = 0
FACE = LABEL_ID["face"]
# left/right pairs a source may lack: (left id, right id)
LEFT_RIGHT_PAIRS = (
    (LABEL_ID["left-arm"], LABEL_ID["right-arm"]),
    (LABEL_ID["left-leg"], LABEL_ID["right-leg"]),
    (LABEL_ID["left-shoe"], LABEL_ID["right-shoe"]),
)

# a fixed palette for visualising parsing maps (RGB, one row per id)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0),
    (0, 0, 255), (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0),
    (255, 170, 0),
)
