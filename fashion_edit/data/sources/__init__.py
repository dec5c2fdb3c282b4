"""Dataset readers, chosen by ``data.source`` through the explicit :data:`SOURCES` mapping.

Each registered class implements :class:`~fashion_edit.data.sources.base.Source` and a
classmethod ``from_params(data: DataParams, raw_dir: Path) -> Source`` that validates the
params it needs and raises ``DatasetError`` with the fix when they are wrong; a reader of a local
copy checks ``data.root`` first with :func:`~fashion_edit.data.sources.base.dataset_root`, so a
root that does not exist is reported as such before any layout check.
"""
from __future__ import annotations

from pathlib import Path

from fashion_edit.config import DataParams
from fashion_edit.data.sources.base import DatasetError, LoadedSample, RawItem, SampleSkipped, Source
from fashion_edit.data.sources.deepfashion_inshop import InShopSource
from fashion_edit.data.sources.deepfashion_mm import DeepFashionMMSource
from fashion_edit.data.sources.folder import FolderSource, SyntheticSource
from fashion_edit.data.sources.human_parsing import ATRSource, CIHPSource, LIPSource
from fashion_edit.data.sources.viton_hd import VitonHDSource

SOURCES: dict[str, type[Source]] = {
    "synthetic": SyntheticSource,
    "folder": FolderSource,
    "deepfashion_mm": DeepFashionMMSource,
    "deepfashion_inshop": InShopSource,
    "viton_hd": VitonHDSource,
    "lip": LIPSource,
    "cihp": CIHPSource,
    "atr": ATRSource,
}


def build_source(data: DataParams, raw_dir: Path) -> Source:
    """The reader for ``data.source``; ``raw_dir`` is where the synthetic data lives."""
    cls = SOURCES.get(data.source)
    if cls is None:
        raise DatasetError(f"data.source: {data.source!r} has no registered reader; available: {sorted(SOURCES)}")
    return cls.from_params(data, Path(raw_dir))  # type: ignore[attr-defined]


__all__ = [
    "SOURCES", "build_source", "DatasetError", "LoadedSample", "RawItem", "SampleSkipped", "Source",
    "FolderSource", "SyntheticSource",
]
