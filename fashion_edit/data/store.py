"""The prepared-array store: one folder per split holding a few large ``.npy`` arrays.

    <prepared>/<split>/images.npy    uint8 (N, H, W, 3) RGB
                       parsing.npy   uint8 (N, H, W)    LIP-20 ids
                       sketch.npy    uint8 (N, H, W)    {0, 1} Canny edges of the whole image
                       colour.npy    uint8 (N, H, W, 3) per-segment mean colour
                       stems.json    list of N stems
                       eval_masks.npy, eval_strokes.npy  uint8 (N, H, W) {0, 1} (val/test only)
    <prepared>/manifest.json

Arrays are written row by row into preallocated memmaps (never all in memory) and read back
with ``np.load(mmap_mode="r")`` so a data loader touches only the rows it needs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")
MANIFEST = "manifest.json"
STEMS = "stems.json"


class StoreError(RuntimeError):
    """A prepared split is missing or inconsistent (re-run ``dvc repro preprocess``)."""


def _array_shapes(height: int, width: int, with_eval: bool) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "images": (height, width, 3),
        "parsing": (height, width),
        "sketch": (height, width),
        "colour": (height, width, 3),
    }
    if with_eval:
        shapes |= {"eval_masks": (height, width), "eval_strokes": (height, width)}
    return shapes


@dataclass(frozen=True)
class PreparedSplit:
    """Read-only memmapped arrays of one split."""

    root: Path
    images: np.ndarray
    parsing: np.ndarray
    sketch: np.ndarray
    colour: np.ndarray
    stems: list[str]
    eval_masks: np.ndarray | None = None
    eval_strokes: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every item."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def __len__(self) -> int:
        return len(self.stems)


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise StoreError(f"{path}: missing prepared array (run `dvc repro preprocess`)")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(f"{path}: not a readable .npy array ({exc}); re-run `dvc repro preprocess`") from None


def open_split(split_dir: str | Path) -> PreparedSplit:
    """Open ``<prepared>/<split>`` read-only; StoreError when files are missing or disagree."""
    root = Path(split_dir)
    stems_path = root / STEMS
    if not stems_path.is_file():
        raise StoreError(f"{stems_path}: missing (is {root} a prepared split? run `dvc repro preprocess`)")
    stems = json.loads(stems_path.read_text())
    images = _load(root / "images.npy")
    if images.ndim != 4:
        raise StoreError(f"{root / 'images.npy'}: shape {images.shape}, expected (N, H, W, 3); re-run `dvc repro preprocess`")
    shapes = _array_shapes(images.shape[1], images.shape[2], with_eval=(root / "eval_masks.npy").is_file())
    arrays = {name: images if name == "images" else _load(root / f"{name}.npy") for name in shapes}
    for name, shape in shapes.items():
        if arrays[name].shape != (len(stems), *shape) or arrays[name].dtype != np.uint8:
            raise StoreError(
                f"{root / name}.npy: shape {arrays[name].shape} {arrays[name].dtype}, expected "
                f"{(len(stems), *shape)} uint8 to match {len(stems)} stems; re-run `dvc repro preprocess`"
            )
    return PreparedSplit(root=root, stems=stems, **arrays)


def read_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: missing (run `dvc repro preprocess`)")
    return json.loads(path.read_text())


class SplitWriter:
    """Fills preallocated memmaps row by row; :meth:`close` trims unused rows (skipped items)."""

    def __init__(self, root: Path, capacity: int, height: int, width: int, with_eval: bool) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.shapes = _array_shapes(height, width, with_eval)
        self.arrays = {
            name: np.lib.format.open_memmap(self.root / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(capacity, *shape))
            for name, shape in self.shapes.items()
        }
        self.stems: list[str] = []

    def append(self, stem: str, **rows: np.ndarray) -> None:
        """Write one item; ``rows`` gives every array of this split by name."""
        if set(rows) != set(self.arrays):
            raise ValueError(f"{self.root}: expected arrays {sorted(self.arrays)}, got {sorted(rows)}")
        index = len(self.stems)
        for name, row in rows.items():
            self.arrays[name][index] = row
        self.stems.append(stem)

    def close(self) -> int:
        """Flush, shrink arrays to the rows written, write stems.json; returns the row count."""
        count = len(self.stems)
        for name, array in self.arrays.items():
            array.flush()
            if count < self.capacity:
                _shrink(self.root / f"{name}.npy", array, count)
        self.arrays = {}
        (self.root / STEMS).write_text(json.dumps(self.stems))
        return count


def _shrink(path: Path, array: np.memmap, count: int, chunk: int = 256) -> None:
    """Copy the first ``count`` rows into a new file in chunks, then replace the original."""
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype, shape=(count, *array.shape[1:]))
    for start in range(0, count, chunk):
        out[start : start + chunk] = array[start : min(start + chunk, count)]
    out.flush()
    del out
    os.replace(tmp, path)
