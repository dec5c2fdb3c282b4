"""The prepared-array store: one folder per split holding a few large ``.npy`` arrays.

    <prepared>/<split>/images.npy    uint8 (N, H, W, 3) RGB
                       parsing.npy   uint8 (N, H, W)    LIP-20 ids
                       sketch.npy    uint8 (N, H, W)    {0, 1} Canny edges of the whole image
                       colour.npy    uint8 (N, H, W, 3) per-segment mean colour
                       stems.json    list of N stems
                       eval_masks.npy, eval_strokes.npy  uint8 (N, H, W) {0, 1} (val/test only)
    <prepared>/manifest.json

Arrays are written front to back with plain buffered file writes (never all in memory, and
never mapped: mapped output pages would count in the writer's resident memory and grow with
the dataset) and read back with ``np.load(mmap_mode="r")`` so a data loader touches only the
rows it needs. A written file is byte-identical to ``np.save`` of the same array.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_edit.errors import FashionEditError

SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")
MANIFEST = "manifest.json"
STEMS = "stems.json"


class StoreError(FashionEditError, RuntimeError):
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
    """Appends rows to one ``.npy`` file per array; :meth:`close` trims unused rows (skipped items)."""

    def __init__(self, root: Path, capacity: int, height: int, width: int, with_eval: bool) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.shapes = _array_shapes(height, width, with_eval)
        self.files: dict[str, NpyRowFile] = {}
        try:
            for name, shape in self.shapes.items():
                self.files[name] = NpyRowFile(self.root / f"{name}.npy", capacity, shape)
        except BaseException:
            self.discard()
            raise
        self.stems: list[str] = []

    def append(self, stem: str, **rows: np.ndarray) -> None:
        """Write one item; ``rows`` gives every array of this split by name."""
        if set(rows) != set(self.files):
            raise ValueError(f"{self.root}: expected arrays {sorted(self.files)}, got {sorted(rows)}")
        if len(self.stems) >= self.capacity:
            raise ValueError(f"{self.root}: more than the {self.capacity} rows this split was sized for ({stem!r})")
        for name, row in rows.items():
            self.files[name].append(row)
        self.stems.append(stem)

    def close(self) -> int:
        """Finish every file at the rows written, write stems.json; returns the row count."""
        count = len(self.stems)
        for array_file in self.files.values():
            array_file.close(count)
        self.files = {}
        (self.root / STEMS).write_text(json.dumps(self.stems))
        return count

    def discard(self) -> None:
        """Close the files without finishing them (the caller deletes the folder)."""
        for array_file in self.files.values():
            array_file.handle.close()
        self.files = {}


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The exact header ``np.save`` writes for a C-ordered uint8 array of ``shape``."""
    buffer = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(np.uint8))
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


class NpyRowFile:
    """A uint8 ``.npy`` file of rows of ``row_shape`` written in order through a buffered handle."""

    def __init__(self, path: Path, capacity: int, row_shape: tuple[int, ...]) -> None:
        self.path = path
        self.row_shape = tuple(row_shape)
        self.header = _npy_header((capacity, *self.row_shape))
        self.handle = open(path, "wb")
        self.handle.write(self.header)

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape or not np.can_cast(row.dtype, np.uint8, casting="safe"):
            raise ValueError(f"{self.path}: row of shape {row.shape} {row.dtype}, expected {self.row_shape} uint8")
        self.handle.write(np.ascontiguousarray(row, dtype=np.uint8).data)

    def close(self, count: int) -> None:
        """Rewrite the header for ``count`` rows (np.save pads it to a fixed length, so it fits in place)."""
        header = _npy_header((count, *self.row_shape))
        if len(header) != len(self.header):  # not with numpy's fixed-width shape field; guard anyway
            self.handle.close()
            _replace_header(self.path, len(self.header), header)
            return
        self.handle.seek(0)
        self.handle.write(header)
        self.handle.close()


def _replace_header(path: Path, old_length: int, header: bytes, chunk: int = 1 << 22) -> None:
    """Copy the data after an ``old_length`` header behind a new header, in chunks, then replace the file."""
    tmp = path.with_suffix(".tmp.npy")
    with open(path, "rb") as source, open(tmp, "wb") as target:
        source.seek(old_length)
        target.write(header)
        while block := source.read(chunk):
            target.write(block)
    os.replace(tmp, path)
