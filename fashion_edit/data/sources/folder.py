"""The generic folder format (also what the ``synthesize`` stage writes to ``data/raw``):

    <root>/images/<stem>.{png,jpg,jpeg,bmp,webp}   RGB (grey / RGBA are converted)
    <root>/parsing/<stem>.png                      one label id per pixel (mode "L" or palette "P")
    <root>/keypoints/<stem>.json                   optional: {"format": ..., "keypoints": [[x, y, v], ...]}
    <root>/splits/{train,val,test}.txt             optional official split: one stem per line
    <label map YAML>                               source ids -> LIP-20 (schema below)

Label map YAML (``fashion_edit/data/label_maps/*.yaml`` use the same schema)::

    source: "where the ids come from"
    map: {<source id>: <LIP-20 id or name>, ...}     # every id that occurs must be listed
    split_left_right: [left-arm, [left-shoe, right-shoe], ...]   # optional

``split_left_right`` names LIP-20 left/right pairs the source does not distinguish: the map
sends the merged class to the *left* id, and each pixel of it is reassigned by the body's
midline (mean x of the foreground): a frontal figure's left limb is on the image's right.

Skip reasons are ``"<kind>: <detail>"`` so preprocess can count them by kind.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from fashion_edit.config import DataParams
from fashion_edit.data.labels import LABEL_ID, LEFT_RIGHT_PAIRS, NUM_CLASSES
from fashion_edit.data.sources.base import (DatasetError, LoadedSample, RawItem, SampleSkipped, Source,
                                             UnknownLabelIds, dataset_root)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_NAMES = ("train", "val", "test")
UNKNOWN = -1


@dataclass(frozen=True)
class LabelMap:
    """A lookup table from source ids (0..255) to LIP-20 ids; -1 marks ids the map lacks."""

    path: Path
    table: np.ndarray  # (256,) int16
    split_pairs: tuple[tuple[int, int], ...] = ()

    def apply(self, raw: np.ndarray, parsing_path: Path) -> np.ndarray:
        """Map a raw id image into LIP-20; SampleSkipped names any id the map does not know."""
        if raw.dtype == np.uint8:
            mapped = cv2.LUT(raw, self._lut_u8)  # unknown ids become 255 (no LIP-20 id)
            if cv2.minMaxLoc(mapped)[1] < 255:
                return mapped
        present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
        unknown = [int(i) for i in present if i > 255 or self.table[i] == UNKNOWN]
        if unknown:
            raise UnknownLabelIds(parsing_path, unknown, self.path)
        return self.table[raw].astype(np.uint8)

    @cached_property
    def _lut_u8(self) -> np.ndarray:
        return np.where(self.table == UNKNOWN, 255, self.table).astype(np.uint8)


def _lip_id(value: object, where: str) -> int:
    if isinstance(value, str) and value in LABEL_ID:
        return LABEL_ID[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < NUM_CLASSES:
        return value
    raise DatasetError(f"{where}: {value!r} is neither a LIP-20 id (0..{NUM_CLASSES - 1}) nor a LIP-20 name")


def _split_pair(entry: object, where: str) -> tuple[int, int]:
    left = _lip_id(entry[0] if isinstance(entry, list) else entry, where)
    pair = next((pr for pr in LEFT_RIGHT_PAIRS if pr[0] == left), None)
    if pair is None or (isinstance(entry, list) and (len(entry) != 2 or _lip_id(entry[1], where) != pair[1])):
        known = [list(p) for p in LEFT_RIGHT_PAIRS]
        raise DatasetError(f"{where}: {entry!r} is not a LIP-20 left/right pair (left id first); known: {known}")
    return pair


def load_label_map(path: Path) -> LabelMap:
    """Parse and validate a label-map YAML; DatasetError says what is wrong and where."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label map not found (set data.label_map, or put label_map.yaml in the root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: label map is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("map"), dict) or not raw["map"]:
        raise DatasetError(f"{path}: expected a mapping with a non-empty 'map: {{source id: LIP-20 id or name}}'")
    table = np.full(256, UNKNOWN, dtype=np.int16)
    for source_id, target in raw["map"].items():
        if not isinstance(source_id, int) or not 0 <= source_id <= 255:
            raise DatasetError(f"{path}: map key {source_id!r} must be an integer source id in 0..255")
        table[source_id] = _lip_id(target, f"{path}: map[{source_id}]")
    pairs = tuple(_split_pair(e, f"{path}: split_left_right") for e in raw.get("split_left_right") or [])
    return LabelMap(path=path, table=table, split_pairs=pairs)


def split_left_right(parsing: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Reassign each pair's left-labelled pixels left of the body's midline to the right id."""
    if not pairs:
        return parsing
    foreground_x = np.nonzero(parsing)[1]
    if foreground_x.size == 0:
        return parsing
    midline = foreground_x.mean()
    image_left_half = np.arange(parsing.shape[1])[None, :] < midline
    out = parsing.copy()
    for left, right in pairs:
        out[(parsing == left) & image_left_half] = right
    return out


def read_bytes(path: Path) -> np.ndarray:
    """A file's bytes; SampleSkipped for a missing or empty file."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise SampleSkipped(path, "missing file: the partner file does not exist") from None
    except OSError as exc:
        raise SampleSkipped(path, f"unreadable: {exc.strerror}") from None
    if data.size == 0:
        raise SampleSkipped(path, "empty file: 0 bytes")
    return data


def decode_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; SampleSkipped when it cannot be decoded."""
    image = cv2.imdecode(read_bytes(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleSkipped(path, "unreadable image: not decodable (corrupt or truncated)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _is_palette_png(data: np.ndarray) -> bool:
    # PNG signature (8) + IHDR length/type (8) + width, height (8) + bit depth (1) -> colour type
    return data.size > 25 and bytes(data[1:4]) == b"PNG" and int(data[25]) == 3


def decode_ids(path: Path) -> np.ndarray:
    """A label PNG as (H, W) integer ids (palette PNGs give their indices, not colours)."""
    data = read_bytes(path)
    if _is_palette_png(data):
        try:
            return np.asarray(Image.open(io.BytesIO(data.tobytes())))
        except (OSError, SyntaxError, ValueError):
            raise SampleSkipped(path, "unreadable parsing: not decodable (corrupt or truncated)") from None
    ids = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise SampleSkipped(path, "unreadable parsing: not decodable (corrupt or truncated)")
    if ids.ndim == 3:
        if ids.shape[2] >= 3 and not (np.array_equal(ids[..., 0], ids[..., 1]) and np.array_equal(ids[..., 0], ids[..., 2])):
            raise SampleSkipped(path, "bad parsing: a colour image; expected one label id per pixel (mode L or P)")
        ids = ids[..., 0]
    return ids


def read_keypoints(path: Path) -> np.ndarray:
    """``{"keypoints": [[x, y, visible], ...]}`` as (K, 3) float32."""
    try:
        points = np.asarray(json.loads(path.read_text())["keypoints"], dtype=np.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SampleSkipped(path, f"bad keypoints: {exc}") from None
    if points.ndim != 2 or points.shape[1] != 3:
        raise SampleSkipped(path, f"bad keypoints: expected a list of [x, y, visible], got shape {points.shape}")
    return points


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """stem -> the files with that stem (more than one: an ambiguous name, skipped when loaded)."""
    if not folder.is_dir():
        return {}
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix.lower() in suffixes and entry.is_file():
            found.setdefault(entry.stem, []).append(entry)
    return found


class FolderSource(Source):
    """images/ + parsing/ (+ keypoints/, splits/) under ``root`` with a label-map YAML."""

    name = "folder"

    def __init__(self, root: Path, label_map: Path) -> None:
        self.root = Path(root)
        if not (self.root / "images").is_dir():
            raise DatasetError(f"{self.root}: no images/ folder (expected images/ and parsing/ with the same stems)")
        self.label_map = load_label_map(label_map)

    @classmethod
    def from_params(cls, data: DataParams, raw_dir: Path) -> "FolderSource":
        root = dataset_root(data)
        return cls(root, Path(data.label_map) if data.label_map else root / "label_map.yaml")

    def _official_splits(self) -> dict[str, str]:
        split_of: dict[str, str] = {}
        for split in SPLIT_NAMES:
            listing = self.root / "splits" / f"{split}.txt"
            if listing.is_file():
                for stem in listing.read_text().split():
                    split_of[stem] = split
        return split_of

    def items(self) -> Iterator[RawItem]:
        images = files_by_stem(self.root / "images", IMAGE_SUFFIXES)
        parsings = files_by_stem(self.root / "parsing", (".png",))
        split_of = self._official_splits()
        keypoint_dir = self.root / "keypoints"
        for stem in sorted(images.keys() | parsings.keys()):
            # an orphan parsing is listed too, with the image path it lacks, so it is reported
            image = images.get(stem, [self.root / "images" / f"{stem}.png"])
            keypoints = keypoint_dir / f"{stem}.json"
            yield RawItem(
                stem=stem,
                image_path=image[0],
                parsing_path=parsings.get(stem, [self.root / "parsing" / f"{stem}.png"])[0],
                split=split_of.get(stem),
                keypoints_path=keypoints if keypoints.is_file() else None,
                same_name=tuple(image[1:]),
            )

    def load(self, item: RawItem) -> LoadedSample:
        image, mapped = read_pair(item, self.label_map, missing="missing file: no parsing for this image")
        parsing = split_left_right(mapped, self.label_map.split_pairs)
        keypoints = read_keypoints(item.keypoints_path) if item.keypoints_path else None
        return LoadedSample(image=image, parsing=parsing, keypoints=keypoints)


class SyntheticSource(FolderSource):
    """The synthetic figures: the folder format under ``data/raw`` with its own label map."""

    name = "synthetic"

    @classmethod
    def from_params(cls, data: DataParams, raw_dir: Path) -> "SyntheticSource":
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise DatasetError(f"{raw_dir}: synthetic data not found (run `dvc repro synthesize` first)")
        return cls(raw_dir, raw_dir / "label_map.yaml")


def read_pair(item: RawItem, label_map: LabelMap,
              missing: str = "missing parsing: no parsing/label PNG found for this image") -> tuple[np.ndarray, np.ndarray]:
    """An item's RGB image and its parsing mapped into LIP-20; SampleSkipped for a bad pair."""
    if item.parsing_path is None:
        raise SampleSkipped(item.image_path, missing)
    if item.same_name:
        others = ", ".join(path.name for path in item.same_name)
        raise SampleSkipped(item.image_path, f"duplicate name: {others} has the same stem, so which photo the "
                                             f"parsing belongs to is unknown; keep one photo per name")
    image = decode_rgb(item.image_path)
    raw = decode_ids(item.parsing_path)
    if raw.shape != image.shape[:2]:
        raise SampleSkipped(
            item.parsing_path,
            f"size mismatch: parsing {raw.shape[1]}x{raw.shape[0]} vs image {image.shape[1]}x{image.shape[0]}",
        )
    return image, label_map.apply(raw, item.parsing_path)
