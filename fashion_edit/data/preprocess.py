"""Raw dataset -> prepared arrays (DESIGN.md 3.2/3.3), streaming one item at a time.

Steps per item: load through the Source (LIP-20 parsing), fit to ``preprocess.height x width``
keeping the aspect ratio (image INTER_AREA, parsing INTER_NEAREST, padding = background for
the parsing and the median border colour for the image), Canny sketch and segment mean colour,
and for val/test the fixed evaluation hole and colour-stroke masks (seeded per stem by
``preprocess.eval_mask_seed``). Bad items are skipped, counted by kind and listed in the report.
Rows are appended to the split's ``.npy`` files in item order (memory stays flat whatever the
dataset size); with ``workers > 1`` spawned processes prepare items in order (results are
identical, only faster).

Splits: a source's official split is kept; items without one are split by a seeded hash of
their stem at the ``preprocess.split`` fractions (exact counts, at least one item per
non-zero fraction). When the official split lacks val or test (e.g. LIP withholds test
labels), the missing split is carved out of the official train items the same way.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from fashion_edit.config import DataParams, MaskParams, PreprocessParams, SplitParams
from fashion_edit.data.conditioning import segment_mean_colour, sketch_edges
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.data.letterbox import Letterbox, fit_labels, fit_photo
from fashion_edit.data.masks import colour_stroke_mask, hole_mask
from fashion_edit.data.sources.base import LoadedSample, RawItem, SampleSkipped, Source, UnknownLabelIds
from fashion_edit.data.store import EVAL_SPLITS, MANIFEST, SPLITS, SplitWriter
from fashion_edit.errors import FashionEditError


class PreprocessError(FashionEditError, RuntimeError):
    """Nothing (or not enough) usable data; the message says what was found and what to fix."""


@dataclass
class PreprocessReport:
    """What ``reports/preprocess.json`` records."""

    read: int = 0
    kept_by_split: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, path: str, reason: str) -> None:
        self.skipped_files.append({"file": path, "reason": reason})

    def to_dict(self) -> dict:
        kept = sum(self.kept_by_split.values())
        by_reason = Counter(entry["reason"].split(":", 1)[0] for entry in self.skipped_files)
        return {
            "read": self.read,
            "kept": kept,
            "skipped": len(self.skipped_files),
            "kept_by_split": self.kept_by_split,
            "skipped_by_reason": dict(sorted(by_reason.items())),
            "seconds": round(self.seconds, 3),
            "items_per_second": round(self.read / self.seconds, 1) if self.seconds > 0 else 0.0,
            "skipped_files": self.skipped_files,
        }


# ----------------------------------------------------------------------------- per item
def fit_to_size(image: np.ndarray, parsing: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize keeping the aspect ratio, then centre-pad to exactly (height, width): the editor's letterbox."""
    box = Letterbox(parsing.shape, (height, width))
    if box.source == box.target:
        return image, parsing
    return fit_photo(box, image), fit_labels(box, parsing)


def label_histogram(parsing: np.ndarray) -> np.ndarray:
    """Pixel count per LIP-20 class (int64)."""
    hist = cv2.calcHist([parsing], [0], None, [NUM_CLASSES], [0, NUM_CLASSES])
    return hist.ravel().astype(np.int64)


def stable_hash(*parts: object) -> int:
    """A 63-bit hash of the parts that is the same on every machine and Python run."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def eval_rng(eval_mask_seed: int, stem: str) -> np.random.Generator:
    """The generator for one item's fixed evaluation masks (keyed by stem, not position)."""
    return np.random.default_rng([eval_mask_seed, stable_hash(stem)])


def check_fits(sample: LoadedSample, item: RawItem, p: PreprocessParams) -> None:
    """SampleSkipped for an item fit_to_size would enlarge more than ``preprocess.max_upscale``, or whose shape is
    more than ``preprocess.max_aspect`` times off the target's (most of the letterbox would be padding)."""
    h, w = sample.parsing.shape
    scale = min(p.height / h, p.width / w)
    if scale > p.max_upscale:
        raise SampleSkipped(item.image_path, f"too small: {w}x{h} would be enlarged {scale:.1f}x to fit "
                                             f"{p.width}x{p.height} (preprocess.max_upscale {p.max_upscale:g})")
    off = (w / h) / (p.width / p.height)
    if max(off, 1 / off) > p.max_aspect:
        raise SampleSkipped(item.image_path, f"extreme aspect ratio: {w}x{h} is {max(off, 1 / off):.1f}x off "
                                             f"{p.width}x{p.height} (preprocess.max_aspect {p.max_aspect:g})")


def prepare_sample(
    sample: LoadedSample, stem: str, with_eval: bool, p: PreprocessParams, masks: MaskParams
) -> dict[str, np.ndarray]:
    """All stored arrays of one item at the prepared resolution."""
    image, parsing = fit_to_size(sample.image, sample.parsing, p.height, p.width)
    rows = {
        "images": image,
        "parsing": parsing,
        "sketch": sketch_edges(image, p.canny_low, p.canny_high),
        "colour": segment_mean_colour(image, parsing, p.colour),
    }
    if with_eval:
        rng = eval_rng(p.eval_mask_seed, stem)
        hole = hole_mask(rng, parsing, masks)
        rows["eval_masks"] = hole
        rows["eval_strokes"] = colour_stroke_mask(rng, p.height, p.width, masks, region=hole)
    return rows


# ------------------------------------------------------------------------------- splits
def _seeded_split(indices: list[int], stems: Sequence[str], fractions: dict[str, float], seed: int) -> dict[int, str]:
    """Exact-count split of ``indices`` ordered by a seeded hash of their stems."""
    order = sorted(indices, key=lambda i: stable_hash(seed, stems[i]))
    assigned: dict[int, str] = {}
    start = 0
    for split, fraction in fractions.items():
        count = max(1, round(len(order) * fraction)) if fraction > 0 and len(order) > len(fractions) else 0
        for i in order[start : start + count]:
            assigned[i] = split
        start += count
    for i in order[start:]:
        assigned[i] = "train"
    return assigned


def assign_splits(items: Sequence[RawItem], p: SplitParams, seed: int) -> list[str]:
    """One of train/val/test per item (see the module docstring for the rule)."""
    for item in items:
        if item.split is not None and item.split not in SPLITS:
            raise PreprocessError(f"{item.image_path}: official split {item.split!r} is not one of {SPLITS}")
    official = {item.split for item in items if item.split is not None}
    carve = {s: getattr(p, s) for s in EVAL_SPLITS if s not in official}
    pool = [i for i, item in enumerate(items) if item.split is None or (item.split == "train" and official and carve)]
    stems = [item.stem for item in items]
    assigned = _seeded_split(pool, stems, carve, seed)
    return [assigned.get(i, item.split or "train") for i, item in enumerate(items)]


# ------------------------------------------------------------------------------ hashing
def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _item_files(item: RawItem) -> list[Path]:
    return [p for p in (item.image_path, item.parsing_path, item.keypoints_path) if p is not None]


def shared_files(items: Sequence[RawItem]) -> frozenset[Path]:
    """Files listed by more than one item (e.g. DeepFashion-MM's one keypoints_loc.txt)."""
    counts = Counter(path for item in items for path in _item_files(item))
    return frozenset(path for path, n in counts.items() if n > 1)


@dataclass
class FileHasher:
    """sha256 of files, remembering those in ``shared`` so each is read once per run (and process).

    Only shared files are remembered: caching every path would grow with the dataset.
    """

    shared: frozenset[Path] = frozenset()
    known: dict[Path, str] = field(default_factory=dict)

    def __call__(self, path: Path) -> str:
        if path not in self.shared:
            return file_sha256(path)
        if path not in self.known:
            self.known[path] = file_sha256(path)
        return self.known[path]


def item_digest(item: RawItem, hasher: Callable[[Path], str] = file_sha256) -> bytes:
    """Stem plus the sha256 of each of the item's files."""
    return item.stem.encode() + b"".join(hasher(f).encode() for f in _item_files(item))


# ------------------------------------------------------------------------------ workers
@dataclass(frozen=True)
class ItemResult:
    stem: str
    split: str
    rows: dict[str, np.ndarray] | None = None  # None when skipped
    skipped: tuple[str, str] | None = None  # (file, reason)
    digest: bytes = b""


@dataclass(frozen=True)
class ItemProcessor:
    """Load and prepare one item; a pure function of the item, so any process can run it."""

    source: Source
    p: PreprocessParams
    masks: MaskParams
    hasher: FileHasher = field(default_factory=FileHasher)

    def __call__(self, task: tuple[RawItem, str]) -> ItemResult:
        item, split = task
        try:
            sample = self.source.load(item)
            check_fits(sample, item, self.p)
        except SampleSkipped as skipped:
            return ItemResult(item.stem, split, skipped=(skipped.path, skipped.reason))
        rows = prepare_sample(sample, item.stem, split in EVAL_SPLITS, self.p, self.masks)
        return ItemResult(item.stem, split, rows=rows, digest=item_digest(item, self.hasher))


_WORKER: ItemProcessor | None = None
MIN_ITEMS_PER_WORKER = 200  # below this a worker's start-up (~1 s of imports) costs more than it saves


def _start_worker(processor: ItemProcessor) -> None:
    global _WORKER
    _WORKER = processor
    cv2.setNumThreads(1)  # the processes are the parallelism


def _run_in_worker(task: tuple[RawItem, str]) -> ItemResult:
    assert _WORKER is not None
    return _WORKER(task)


def process_items(processor: ItemProcessor, tasks: list[tuple[RawItem, str]], workers: int) -> Iterator[ItemResult]:
    """Results in task order, computed here or by ``workers`` spawned processes."""
    workers = min(workers, len(tasks) // MIN_ITEMS_PER_WORKER)
    if workers <= 1:
        yield from map(processor, tasks)
        return
    # spawn, not fork: a forked child inherits OpenCV's thread pool in an unusable state
    with multiprocessing.get_context("spawn").Pool(workers, _start_worker, (processor,)) as pool:
        yield from pool.imap(_run_in_worker, tasks, chunksize=8)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------------------- driver
def _unique_stems(items: list[RawItem], splits: list[str], report: "PreprocessReport") -> list[tuple[RawItem, str]]:
    """(item, split) tasks; a repeated stem is skipped and reported (stems key the stored rows)."""
    seen: dict[str, str] = {}
    tasks = []
    for item, split in zip(items, splits):
        if item.stem in seen:
            report.skip(str(item.image_path), f"duplicate stem: {item.stem!r} already used by {seen[item.stem]}")
            continue
        seen[item.stem] = str(item.image_path)
        tasks.append((item, split))
    return tasks


def preprocess(
    source: Source,
    data: DataParams,
    p: PreprocessParams,
    masks: MaskParams,
    out_dir: Path,
    report_path: Path,
    workers: int = 1,
) -> dict:
    """Write ``out_dir/{train,val,test}`` + manifest and the report; returns the manifest.

    Raises PreprocessError (after writing the report) when no item or no item of some split
    survives. Output is built in ``<out_dir>.partial`` and moved into place on success; it is
    the same whatever the number of ``workers``.
    """
    started = time.perf_counter()
    out_dir, report_path = Path(out_dir), Path(report_path)
    items = list(source.items())  # paths only: cheap even for a million items
    if not items:
        raise PreprocessError(f"{source.name}: the source lists no items (is the dataset folder empty?)")
    splits = assign_splits(items, p.split, p.seed)
    report = PreprocessReport(read=len(items))
    tasks = _unique_stems(items, splits, report)

    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    histograms = {s: np.zeros(NUM_CLASSES, dtype=np.int64) for s in SPLITS}
    hashes = {s: hashlib.sha256() for s in SPLITS}
    writers: dict[str, SplitWriter] = {}
    try:
        for s in SPLITS:
            writers[s] = SplitWriter(partial / s, splits.count(s), p.height, p.width, with_eval=s in EVAL_SPLITS)
        processor = ItemProcessor(source, p, masks, FileHasher(shared_files(items)))
        results = process_items(processor, tasks, workers)
        for result in tqdm(results, total=len(tasks), desc="preprocess", unit="img", disable=None):
            if result.rows is None:
                report.skip(*result.skipped)
                continue
            writers[result.split].append(result.stem, **result.rows)
            histograms[result.split] += label_histogram(result.rows["parsing"])
            hashes[result.split].update(result.digest)
        for split, writer in writers.items():
            report.kept_by_split[split] = writer.close()
        report.seconds = time.perf_counter() - started
        _write_json(report_path, report.to_dict())
        _check_label_map(report)
        _check_usable(report, p)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        shutil.rmtree(partial, ignore_errors=True)
        raise

    manifest = _manifest(report, histograms, hashes, data, p, masks)
    _write_json(partial / MANIFEST, manifest)
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return manifest


def _check_label_map(report: PreprocessReport) -> None:
    """Ids the label map lacks would silently bias the data (every item showing one is dropped): fail,
    naming each id and how many items carry it."""
    items_by_id: Counter[int] = Counter()
    for entry in report.skipped_files:
        items_by_id.update(UnknownLabelIds.ids_in(entry["reason"]))
    if items_by_id:
        ids = ", ".join(f"id {i} in {n} item{'s' * (n != 1)}" for i, n in sorted(items_by_id.items()))
        example = next(e["reason"] for e in report.skipped_files if UnknownLabelIds.ids_in(e["reason"]))
        raise PreprocessError(f"the label map lacks parsing ids found in the data ({ids}, of {report.read} items; "
                              f"e.g. {example}): add each id to the label map with its LIP-20 class "
                              "(docs/datasets.md), or fix the files that carry it")


def _check_usable(report: PreprocessReport, p: PreprocessParams) -> None:
    kept = sum(report.kept_by_split.values())
    if kept == 0:
        raise PreprocessError(
            f"no usable items: all {report.read} items were skipped "
            f"({report.to_dict()['skipped_by_reason']}); see the report for the list of files"
        )
    for split, count in report.kept_by_split.items():
        if count == 0:
            fix = f"raise preprocess.split.{split} (now {getattr(p.split, split)})" if split != "train" else (
                "lower preprocess.split.val/test"
            )
            raise PreprocessError(
                f"split {split!r} is empty ({kept} usable items of {report.read}; skipped: "
                f"{report.to_dict()['skipped_by_reason'] or 'none'}); {fix} or add more data"
            )


def _manifest(
    report: PreprocessReport,
    histograms: dict[str, np.ndarray],
    hashes: dict[str, Any],
    data: DataParams,
    p: PreprocessParams,
    masks: MaskParams,
) -> dict:
    split_hashes = {s: h.hexdigest() for s, h in hashes.items()}
    combined = hashlib.sha256("".join(split_hashes[s] for s in SPLITS).encode()).hexdigest()
    return {
        "counts": dict(report.kept_by_split),
        "resolution": {"height": p.height, "width": p.width},
        "label_histogram": {s: histograms[s].tolist() for s in SPLITS},
        "inputs_sha256": {"all": combined, **split_hashes},
        "skipped": len(report.skipped_files),
        "params": {
            "data": data.model_dump(mode="json"),
            "preprocess": p.model_dump(mode="json"),
            "masks": masks.model_dump(mode="json"),
        },
    }


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
