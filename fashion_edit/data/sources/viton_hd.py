"""VITON-HD (person images of the try-on dataset) with their CIHP parsing and OpenPose keypoints.

Layout under ``data.root`` (as the dataset unpacks; other folders such as cloth/ are ignored)::

    {train,test}/image/<id>.jpg                     person photo (1024x768)
    {train,test}/image-parse-v3/<id>.png            palette PNG, indices = CIHP ids 0-19
                                                    (``image-parse/`` is used when no -v3 exists)
    {train,test}/openpose_json/<id>_keypoints.json  optional: OpenPose BODY_25,
                                                    ``people[0].pose_keypoints_2d`` = 25 x (x, y, c)

The CIHP ids are the LIP-20 ids (``label_maps/viton_hd.yaml`` is the identity); a palette
index outside 0-19 is a counted skip naming the PNG. Official split: train -> train,
test -> test; preprocess carves val out of train. Stems are ``<split>-<id>``.
Keypoints become (K, 3) float32 x, y, visible with visible = 1 where the confidence c > 0
(OpenPose writes 0, 0, 0 for a joint it did not find); a JSON without ``people`` or with a
malformed list is a counted skip.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from fashion_edit.data.sources.base import LoadedSample, RawItem, SampleSkipped
from fashion_edit.data.sources.human_parsing import PairedSource, PairFolders, read_pair
from fashion_edit.data.sources.folder import LabelMap

SPLITS = ("train", "test")


def read_openpose(path: Path) -> np.ndarray:
    """The first person's ``pose_keypoints_2d`` as (K, 3) float32 x, y, visible."""
    try:
        people = json.loads(Path(path).read_text())["people"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SampleSkipped(path, f"bad keypoints: not an OpenPose JSON with a 'people' list ({exc!r})") from None
    if not isinstance(people, list) or not people:
        raise SampleSkipped(path, "bad keypoints: 'people' is empty (OpenPose found no person in this image)")
    try:
        flat = np.asarray(people[0]["pose_keypoints_2d"], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise SampleSkipped(path, f"bad keypoints: people[0].pose_keypoints_2d unreadable ({exc!r})") from None
    if flat.ndim != 1 or flat.size == 0 or flat.size % 3:
        raise SampleSkipped(path, f"bad keypoints: pose_keypoints_2d has {flat.size} numbers, expected K x (x, y, c)")
    points = flat.reshape(-1, 3).copy()
    points[:, 2] = (points[:, 2] > 0).astype(np.float32)
    return points


class VitonHDSource(PairedSource):
    name = "viton_hd"
    label_map_name = "viton_hd"

    def __init__(self, root: Path, label_map: LabelMap) -> None:
        root = Path(root)
        parse = "image-parse-v3" if any((root / s / "image-parse-v3").is_dir() for s in SPLITS) else "image-parse"
        self.layout = tuple(PairFolders(s, f"{s}/image", f"{s}/{parse}") for s in SPLITS)
        super().__init__(root, label_map)

    def items(self) -> Iterator[RawItem]:
        for item in super().items():
            keypoints = item.image_path.parent.parent / "openpose_json" / f"{item.image_path.stem}_keypoints.json"
            yield replace(item, keypoints_path=keypoints if keypoints.is_file() else None)

    def load(self, item: RawItem) -> LoadedSample:
        image, parsing = read_pair(item, self.label_map)
        keypoints = read_openpose(item.keypoints_path) if item.keypoints_path else None
        return LoadedSample(image=image, parsing=parsing, keypoints=keypoints)
