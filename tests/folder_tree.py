"""Test helper: write a tiny dataset in the generic folder format (images/ + parsing/ + label map)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fashion_edit.config import DataParams, MaskParams, PreprocessParams, SplitParams
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.preprocess import preprocess
from fashion_edit.data.sources.folder import FolderSource

IDENTITY_MAP = "source: test fixture\nmap: {" + ", ".join(f"{i}: {i}" for i in range(20)) + "}\n"


def figure(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A blocky 'figure': background, face, upper-clothes, pants, each a flat random colour."""
    parsing = np.zeros((height, width), np.uint8)
    h, w = height, width
    parsing[h // 8 : h // 4, 3 * w // 8 : 5 * w // 8] = LABEL_ID["face"]
    parsing[h // 4 : h // 2, w // 4 : 3 * w // 4] = LABEL_ID["upper-clothes"]
    parsing[h // 2 : 7 * h // 8, 5 * w // 16 : 11 * w // 16] = LABEL_ID["pants"]
    palette = rng.integers(0, 256, (20, 3)).astype(np.uint8)
    return palette[parsing], parsing


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    assert cv2.imwrite(str(path), pixels)


def make_tree(root: Path, count: int = 12, height: int = 40, width: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "parsing").mkdir(exist_ok=True)
    for i in range(count):
        image, parsing = figure(rng, height, width)
        write_png(root / "images" / f"item{i:03d}.png", image)
        write_png(root / "parsing" / f"item{i:03d}.png", parsing)
    (root / "label_map.yaml").write_text(IDENTITY_MAP)
    return root


def small_params(**preprocess_overrides: object) -> PreprocessParams:
    fields = {"height": 32, "width": 32, "split": SplitParams(val=0.25, test=0.25)} | preprocess_overrides
    return PreprocessParams(**fields)


def run_preprocess(raw: Path, out: Path, p: PreprocessParams | None = None, masks: MaskParams | None = None) -> dict:
    source = FolderSource(raw, raw / "label_map.yaml")
    return preprocess(
        source, DataParams(source="folder", root=str(raw)), p or small_params(), masks or MaskParams(),
        out / "prepared", out / "report.json",
    )
