"""Human-parsing datasets: image + label-PNG pairs in fixed folders (LIP, CIHP, ATR).

Layouts under ``data.root`` (as the archives unpack; labels are one id per pixel, mode L or P):

LIP (20 classes, ``label_maps/lip.yaml``)::

    TrainVal_images/train_images/<id>.jpg          TrainVal_parsing_annotations/train_segmentations/<id>.png
    TrainVal_images/val_images/<id>.jpg            TrainVal_parsing_annotations/val_segmentations/<id>.png

CIHP (20 classes, ``label_maps/cihp.yaml``; the class ids, not the instance ids)::

    instance-level_human_parsing/Training/Images/<id>.jpg     .../Training/Category_ids/<id>.png
    instance-level_human_parsing/Validation/Images/<id>.jpg   .../Validation/Category_ids/<id>.png

ATR (18 classes, ``label_maps/atr.yaml``; no official split)::

    humanparsing/JPEGImages/<id>.jpg               humanparsing/SegmentationClassAug/<id>.png

Official splits: LIP and CIHP train -> train, val -> val; their test images have no public
labels and are not read, so preprocess carves the test split out of train. ATR has none:
preprocess splits it by the seeded hash of the stem. Stems are ``<split>-<id>`` for sources
with split folders (ids repeat across folders in some releases), else ``<id>``.
An image without its label PNG, or a label PNG without its image, is a counted skip.

``PairedSource`` is the shared reader; VITON-HD, DeepFashion-MultiModal and In-shop build on
:func:`read_pair`. ``data.label_map`` (when set) replaces the packaged label map.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_edit.config import DataParams
from fashion_edit.data.sources.base import DatasetError, LoadedSample, RawItem, SampleSkipped, Source, dataset_root
from fashion_edit.data.sources.folder import IMAGE_SUFFIXES, LabelMap, files_by_stem, load_label_map, read_pair

LABEL_MAP_DIR = Path(__file__).resolve().parents[1] / "label_maps"


def packaged_label_map(name: str) -> Path:
    """``fashion_edit/data/label_maps/<name>.yaml``."""
    return LABEL_MAP_DIR / f"{name}.yaml"


def label_map_path(data: DataParams, default: str) -> Path:
    """``data.label_map`` when set, else the packaged map ``default``."""
    return Path(data.label_map).expanduser() if data.label_map else packaged_label_map(default)


def label_map_for(data: DataParams, default: str) -> LabelMap:
    return load_label_map(label_map_path(data, default))


@dataclass(frozen=True)
class PairFolders:
    """One split's image folder and label folder, relative to the dataset root."""

    split: str | None
    images: str
    labels: str


def paired_items(root: Path, folders: PairFolders, stem_prefix: str = "") -> Iterator[RawItem]:
    """Items of one image/label folder pair, sorted by stem; orphans on either side are listed."""
    images = files_by_stem(root / folders.images, IMAGE_SUFFIXES)
    labels = files_by_stem(root / folders.labels, (".png",))
    for name in sorted(images.keys() | labels.keys()):
        yield RawItem(
            stem=f"{stem_prefix}{name}",
            # an orphan label is listed with the image path it lacks, so the skip names it
            image_path=images.get(name, [root / folders.images / f"{name}.jpg"])[0],
            parsing_path=labels.get(name, [None])[0],
            split=folders.split,
            same_name=tuple(images.get(name, [])[1:]),
        )


class PairedSource(Source):
    """A dataset of image/label folder pairs (one pair per official split)."""

    name = "paired"
    layout: tuple[PairFolders, ...] = ()
    label_map_name = ""

    def __init__(self, root: Path, label_map: LabelMap) -> None:
        self.root = Path(root)
        self.label_map = label_map
        self.present = tuple(f for f in self.layout if (self.root / f.images).is_dir())
        if not self.present:
            expected = ", ".join(f"{f.images}/ + {f.labels}/" for f in self.layout)
            raise DatasetError(f"{self.root}: not a {self.name} dataset folder; expected {expected}")
        for folders in self.present:
            if not (self.root / folders.labels).is_dir():
                raise DatasetError(
                    f"{self.root / folders.labels}: label folder missing next to {folders.images}/ "
                    f"(unpack the {self.name} annotations there)"
                )

    @classmethod
    def from_params(cls, data: DataParams, raw_dir: Path) -> "PairedSource":
        return cls(dataset_root(data), label_map_for(data, cls.label_map_name))

    def items(self) -> Iterator[RawItem]:
        prefixed = len(self.layout) > 1
        for folders in self.present:
            yield from paired_items(self.root, folders, f"{folders.split}-" if prefixed else "")

    def load(self, item: RawItem) -> LoadedSample:
        image, parsing = read_pair(item, self.label_map)
        return LoadedSample(image=image, parsing=parsing)


class LIPSource(PairedSource):
    name = "lip"
    label_map_name = "lip"
    layout = (
        PairFolders("train", "TrainVal_images/train_images", "TrainVal_parsing_annotations/train_segmentations"),
        PairFolders("val", "TrainVal_images/val_images", "TrainVal_parsing_annotations/val_segmentations"),
    )


CIHP_ROOT = "instance-level_human_parsing"


class CIHPSource(PairedSource):
    name = "cihp"
    label_map_name = "cihp"
    layout = (
        PairFolders("train", f"{CIHP_ROOT}/Training/Images", f"{CIHP_ROOT}/Training/Category_ids"),
        PairFolders("val", f"{CIHP_ROOT}/Validation/Images", f"{CIHP_ROOT}/Validation/Category_ids"),
    )


class ATRSource(PairedSource):
    name = "atr"
    label_map_name = "atr"
    layout = (PairFolders(None, "humanparsing/JPEGImages", "humanparsing/SegmentationClassAug"),)
