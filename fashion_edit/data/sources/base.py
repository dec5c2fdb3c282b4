"""The interface every dataset reader implements: stream items, load one item into LIP-20."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(RuntimeError):
    """The dataset as a whole cannot be read (missing root, split file, label map...)."""


class SampleSkipped(Exception):
    """One item is unusable; preprocess counts it and lists it with the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class RawItem:
    stem: str
    image_path: Path
    parsing_path: Path | None
    split: str | None = None  # official split ("train" | "val" | "test") when the source has one
    keypoints_path: Path | None = None


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
