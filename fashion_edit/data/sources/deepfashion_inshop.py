"""DeepFashion In-shop Clothes Retrieval: high-resolution shop photos + parsing from a human parser.

In-shop ships no human parsing, so run any LIP-20 human parser over the photos first and
point ``data.parsing_dir`` at its output. Layout::

    <data.root>/Eval/list_eval_partition.txt            the official partition (required)
    <data.root>/img_highres/<gender>/<category>/<item>/<view>.jpg   (``Img/img_highres/`` too)
    <data.parsing_dir>/<gender>/<category>/<item>/<view>.png        parser output, mirroring the
                                                                    image tree, or flat as
    <data.parsing_dir>/<gender>-<category>-<item>-<view>.png        (the item's stem)

``list_eval_partition.txt``: line 1 the row count, line 2 the header
``image_name item_id evaluation_status``, then ``img/<...>.jpg <item id> train|query|gallery``.
Its ``img/`` paths name the low-resolution copies; the same relative path under
``img_highres/`` is read. A malformed partition file is a DatasetError naming the line.

Split: train -> train, gallery -> val, query -> test. Retrieval's query and gallery hold
the same held-out clothing items, disjoint from train, so val and test never share an item
with training (carving val out of train would put photos of one item on both sides); they
share items with each other, which only matters for comparing val to test numbers.

Stems are the image path below ``img_highres/`` joined by ``-`` without the extension
(``WOMEN-Dresses-id_00000002-02_1_front``, DeepFashion-MultiModal's naming). A listed
photo without parser output is a counted skip ("missing parsing"); so is a missing photo.
The parsing is read through ``data.label_map`` when set (e.g. ``label_maps/atr.yaml`` for
an ATR parser), else ``label_maps/lip.yaml``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from fashion_edit.config import DataParams
from fashion_edit.data.sources.base import DatasetError, LoadedSample, RawItem, Source, dataset_root
from fashion_edit.data.sources.folder import LabelMap
from fashion_edit.data.sources.human_parsing import label_map_for, read_pair

PARTITION = Path("Eval") / "list_eval_partition.txt"
HEADER = ["image_name", "item_id", "evaluation_status"]
SPLIT_OF_STATUS = {"train": "train", "gallery": "val", "query": "test"}


def read_partition(path: Path) -> list[tuple[PurePosixPath, str]]:
    """(image path below the image root, split) per row; DatasetError names a malformed line."""
    if not path.is_file():
        raise DatasetError(
            f"{path}: In-shop partition file missing; put the official Eval/list_eval_partition.txt under data.root"
        )
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit() or lines[1].split() != HEADER:
        raise DatasetError(f"{path}: lines 1-2 must be the row count and the header '{' '.join(HEADER)}'")
    rows: list[tuple[PurePosixPath, str]] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[2] not in SPLIT_OF_STATUS:
            raise DatasetError(
                f"{path}: line {number}: expected '<image name> <item id> {'|'.join(SPLIT_OF_STATUS)}', got {line!r}"
            )
        name = PurePosixPath(fields[0])
        if name.parts and name.parts[0] in ("img", "img_highres"):
            name = PurePosixPath(*name.parts[1:])
        rows.append((name, SPLIT_OF_STATUS[fields[2]]))
    if len(rows) != int(lines[0]):
        raise DatasetError(f"{path}: line 1 declares {int(lines[0])} rows but {len(rows)} follow (truncated file?)")
    return rows


class InShopSource(Source):
    name = "deepfashion_inshop"

    def __init__(self, root: Path, parsing_dir: Path, label_map: LabelMap) -> None:
        self.root, self.parsing_dir, self.label_map = Path(root), Path(parsing_dir), label_map
        self.partition = read_partition(self.root / PARTITION)
        candidates = (self.root / "img_highres", self.root / "Img" / "img_highres")
        self.image_dir = next((c for c in candidates if c.is_dir()), None)
        if self.image_dir is None:
            raise DatasetError(f"{self.root}: no img_highres/ or Img/img_highres/ folder (unpack img_highres.zip)")
        if not self.parsing_dir.is_dir():
            raise DatasetError(f"data.parsing_dir: {self.parsing_dir} does not exist (run a LIP-20 parser first)")

    @classmethod
    def from_params(cls, data: DataParams, raw_dir: Path) -> "InShopSource":
        root = dataset_root(data)
        if not data.parsing_dir:
            raise DatasetError(
                "data.parsing_dir is empty: In-shop has no human parsing; run a LIP-20 human parser over "
                "img_highres/ and set data.parsing_dir to its output folder"
            )
        return cls(root, Path(data.parsing_dir).expanduser(), label_map_for(data, "lip"))

    def _parsing_for(self, name: PurePosixPath, stem: str) -> Path | None:
        for candidate in (self.parsing_dir / name.with_suffix(".png"), self.parsing_dir / f"{stem}.png"):
            if candidate.is_file():
                return candidate
        return None

    def items(self) -> Iterator[RawItem]:
        named = sorted(("-".join(name.with_suffix("").parts), name, split) for name, split in self.partition)
        for stem, name, split in named:
            yield RawItem(
                stem=stem,
                image_path=self.image_dir / name,
                parsing_path=self._parsing_for(name, stem),
                split=split,
            )

    def load(self, item: RawItem) -> LoadedSample:
        image, parsing = read_pair(item, self.label_map)
        return LoadedSample(image=image, parsing=parsing)
