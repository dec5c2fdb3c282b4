"""The interface every dataset reader implements: stream items, load one item into LIP-20."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_edit.config import DataParams
from fashion_edit.errors import FashionEditError


class DatasetError(FashionEditError, RuntimeError):
    """The dataset as a whole cannot be read (missing root, split file, label map...)."""


def dataset_root(data: DataParams) -> Path:
    """``data.root`` as an existing folder, or DatasetError saying how to set it; every reader of a local
    dataset calls this first, so a wrong root fails as such before any layout check."""
    how = (f"set data.root to the folder holding your local copy of data.source={data.source} "
           f"(e.g. `dvc exp run -S data.source={data.source} -S data.root=/path/to/dataset`)")
    if not data.root:
        raise DatasetError(f"data.root is empty: {how}")
    root = Path(data.root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root.absolute()} (data.root) does not exist: {how}")
    if not root.is_dir():
        raise DatasetError(f"{root.absolute()} (data.root) is not a folder: {how}; unpack archives first")
    return root


class SampleSkipped(Exception):
    """One item is unusable; preprocess counts it and lists it with the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class UnknownLabelIds(SampleSkipped):
    """The item's parsing holds ids its label map lacks: an error of the map, so preprocess skips the
    item while it counts, then fails listing every such id and how many items carry it."""

    REASON = "unknown label id"

    def __init__(self, path: Path | str, ids: list[int], label_map: Path | str) -> None:
        super().__init__(path, f"{self.REASON}: ids {sorted(ids)} are not in label map {label_map}")

    @classmethod
    def ids_in(cls, reason: str) -> list[int]:
        """The ids a reason written by this class names ([] for any other reason)."""
        if not reason.startswith(cls.REASON):
            return []
        listed = reason.partition("[")[2].partition("]")[0]
        return [int(i) for i in listed.split(",") if i.strip()]


@dataclass(frozen=True)
class RawItem:
    stem: str
    image_path: Path
    parsing_path: Path | None
    split: str | None = None  # official split ("train" | "val" | "test") when the source has one
    keypoints_path: Path | None = None
    same_name: tuple[Path, ...] = ()  # other photos with this stem (e.g. a.jpg beside a.png): the item is skipped


@dataclass(frozen=True)
class LoadedSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    parsing: np.ndarray  # (H, W) uint8, LIP-20 ids
    keypoints: np.ndarray | None = None  # (K, 3) float32: x, y, visible (pixel coordinates)


class Source(ABC):
    """A dataset on local disk. ``items`` streams; ``load`` reads one item or raises SampleSkipped."""

    name: str = "abstract"

    @abstractmethod
    def items(self) -> Iterator[RawItem]:
        """Yield items in a deterministic (sorted) order without loading images."""

    @abstractmethod
    def load(self, item: RawItem) -> LoadedSample:
        """Read one item, map its labels into LIP-20; raise SampleSkipped if it is unusable."""
