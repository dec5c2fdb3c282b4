"""DeepFashion-MultiModal: full-body photos with manual 24-class parsing and 21 keypoints.

Layout under ``data.root`` (as the archives unpack; other folders are ignored)::

    image/<name>.jpg                     750x1101 photos (``images/`` is accepted too)
    segm/<name>_segm.png                 24-class parsing, one id per pixel (``parsing/`` accepted)
    keypoints/keypoints_loc.txt          optional: ``<name>.jpg x1 y1 x2 y2 ... x21 y21`` per line,
                                         (-1, -1) for a point that is not present

Only images with a parsing PNG are read: the dataset annotates parsing for its 12,701
full-body images, the other photos are not part of this source. A parsing PNG without its
image is a counted skip; so is a truncated or non-numeric keypoint row (the skip names the
file and line). The dataset has no official split: preprocess splits by the seeded hash of
the stem.

Labels (``label_maps/deepfashion_mm.yaml``): ``footwear`` and ``skin`` have no left/right
and ``skin`` covers arms, legs and torso; the map sends them to left-shoe and torso-skin and
:mod:`fashion_edit.data.body_sides` divides them by the figure's midline (from the keypoints
when present) and the rules documented there.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from fashion_edit.config import DataParams
from fashion_edit.data.body_sides import assign_body_sides
from fashion_edit.data.labels import LABEL_ID, NUM_CLASSES
from fashion_edit.data.sources.base import DatasetError, LoadedSample, RawItem, SampleSkipped, Source, dataset_root
from fashion_edit.data.sources.folder import load_label_map
from fashion_edit.data.sources.human_parsing import label_map_path, read_pair

NUM_KEYPOINTS = 21
SEGM_SUFFIX = "_segm.png"


def skin_class(map_path: Path) -> int | None:
    """The LIP-20 id named by a label map's optional ``split_skin`` key (the merged bare-skin class)."""
    raw = yaml.safe_load(Path(map_path).read_text()) or {}
    value = raw.get("split_skin") if isinstance(raw, dict) else None
    if value is None:
        return None
    if isinstance(value, str) and value in LABEL_ID:
        return LABEL_ID[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < NUM_CLASSES:
        return value
    raise DatasetError(f"{map_path}: split_skin: {value!r} is neither a LIP-20 id nor a LIP-20 name")


def _first_folder(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root}: no {' or '.join(n + '/' for n in names)} folder ({what}); is data.root the "
                       "DeepFashion-MultiModal folder?")


class KeypointTable:
    """``keypoints_loc.txt`` indexed by image stem; rows are parsed when an item is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, tuple[int, str]] = {}
        if path.is_file():
            with open(path) as handle:
                for number, line in enumerate(handle, start=1):
                    name, _, rest = line.strip().partition(" ")
                    if name:
                        self.rows[Path(name).stem] = (number, rest)

    def __contains__(self, stem: str) -> bool:
        return stem in self.rows

    def get(self, stem: str) -> np.ndarray | None:
        """(21, 3) float32 x, y, visible (0 where the point is absent); None if not listed."""
        if stem not in self.rows:
            return None
        number, rest = self.rows[stem]
        values = rest.split()
        where = f"line {number} ({stem})"
        if len(values) != 2 * NUM_KEYPOINTS:
            raise SampleSkipped(
                self.path, f"bad keypoints: {where} has {len(values)} numbers, expected {2 * NUM_KEYPOINTS}"
            )
        try:
            xy = np.asarray(values, dtype=np.float32).reshape(NUM_KEYPOINTS, 2)
        except ValueError:
            raise SampleSkipped(self.path, f"bad keypoints: {where} has a non-numeric value") from None
        present = (xy >= 0).all(axis=1).astype(np.float32)
        return np.concatenate([xy, present[:, None]], axis=1)


class DeepFashionMMSource(Source):
    name = "deepfashion_mm"

    def __init__(self, root: Path, map_path: Path) -> None:
        self.root = Path(root)
        self.image_dir = _first_folder(self.root, ("image", "images"), "the photos")
        self.segm_dir = _first_folder(self.root, ("segm", "parsing"), f"the <name>{SEGM_SUFFIX} parsing PNGs")
        self.label_map = load_label_map(map_path)
        self.skin = skin_class(map_path)
        self.keypoints = KeypointTable(self.root / "keypoints" / "keypoints_loc.txt")

    @classmethod
    def from_params(cls, data: DataParams, raw_dir: Path) -> "DeepFashionMMSource":
        return cls(dataset_root(data), label_map_path(data, cls.name))

    def items(self) -> Iterator[RawItem]:
        for segm in sorted(self.segm_dir.glob(f"*{SEGM_SUFFIX}")):
            stem = segm.name[: -len(SEGM_SUFFIX)]
            yield RawItem(
                stem=stem,
                image_path=self.image_dir / f"{stem}.jpg",
                parsing_path=segm,
                keypoints_path=self.keypoints.path if stem in self.keypoints else None,
            )

    def load(self, item: RawItem) -> LoadedSample:
        image, parsing = read_pair(item, self.label_map)
        keypoints = self.keypoints.get(item.stem)
        parsing = assign_body_sides(parsing, self.label_map.split_pairs, skin=self.skin, keypoints=keypoints)
        return LoadedSample(image=image, parsing=parsing, keypoints=keypoints)
