"""Paired garment-category swaps of the prepared test figures: the truth a category-swap edit is scored against
(issue 14, seed 002's Design-GAN: a skirt becomes trousers, trousers or shorts become a skirt, same texture).

Only the synthetic generator can draw the same person twice. For each figure of ``data/prepared/test`` it renders
the figure as it is ("before", checked equal to its raw files: otherwise data/raw was made with other params) and
with its lower garment in the other category ("after", :func:`fashion_edit.data.synthetic.render_swapped`). Both
go through the prepared split's fit (:func:`fashion_edit.data.preprocess.fit_to_size`), and the fitted "before"
is checked equal to the prepared row, so a pair is pixel aligned with the test image an edit starts from.
Figures in a dress are skipped and counted; a photo dataset has no paired truth, so its set is empty.

    <out>/pairs.npz      image_before, image_after (N, H, W, 3) uint8 RGB; parsing_before, parsing_after
                         (N, H, W) uint8 LIP-20 ids; source_label, target_label (N,) uint8;
                         target_category (N,) str ("trousers" | "skirt"); stems (N,) str
    <out>/summary.json   {"pairs": N, "considered": test figures, "skipped": {reason: count}, "source": data.source}
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fashion_edit.config import DataParams, Params, PreprocessParams, SynthesizeParams
from fashion_edit.data.preprocess import fit_to_size
from fashion_edit.data.sources import LoadedSample, RawItem, SampleSkipped, Source, build_source
from fashion_edit.data.store import PreparedSplit, open_split
from fashion_edit.data.synthetic import GARMENT_LABEL, Figure, lower_shape, render_figure, render_swapped
from fashion_edit.errors import FashionEditError

PAIRS_FILE = "pairs.npz"
SUMMARY_FILE = "summary.json"
SECTIONS = ("data", "synthesize", "preprocess")  # the params sections the swap_pairs stage reads
# the category a lower garment's shape swaps to; the category names are the synthetic shapes drawn for them
TARGET_CATEGORY = {"skirt": "trousers", "trousers": "skirt", "shorts": "skirt"}
SKIP_REASONS = ("dress", "no lower garment")
_STEM = re.compile(r"fig(\d+)")
_REPRODUCE = "run `dvc repro swap_pairs`"


class SwapPairsError(FashionEditError, RuntimeError):
    """The swap pairs cannot be built or read; the message names the file and the command that fixes it."""


@dataclass(frozen=True)
class SwapPairs:
    """N before/after pairs at the prepared size (see the module docstring for the arrays)."""

    image_before: np.ndarray
    image_after: np.ndarray
    parsing_before: np.ndarray
    parsing_after: np.ndarray
    source_label: np.ndarray
    target_label: np.ndarray
    target_category: np.ndarray
    stems: np.ndarray

    def __len__(self) -> int:
        return len(self.stems)


def _expected_shapes(count: int, height: int, width: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Array name -> (shape, dtype kind: "u1" uint8, "U" unicode)."""
    image, parsing, row = (count, height, width, 3), (count, height, width), (count,)
    return {"image_before": (image, "u1"), "image_after": (image, "u1"), "parsing_before": (parsing, "u1"),
            "parsing_after": (parsing, "u1"), "source_label": (row, "u1"), "target_label": (row, "u1"),
            "target_category": (row, "U"), "stems": (row, "U")}


def empty_pairs(height: int, width: int) -> SwapPairs:
    """No pairs, with the arrays' trailing shapes (what a photo dataset gets)."""
    return SwapPairs(**{name: np.zeros(shape, np.uint8 if kind == "u1" else np.str_)
                        for name, (shape, kind) in _expected_shapes(0, height, width).items()})


def figure_index(stem: str) -> int:
    """The synthetic figure index of a stem ("fig000123" -> 123)."""
    match = _STEM.fullmatch(stem)
    if match is None:
        raise SwapPairsError(f"prepared test stem {stem!r} is not a synthetic figure's (figNNNNNN): data/prepared "
                             f"was not made from the synthetic data; run `dvc repro preprocess`")
    return int(match.group(1))


# ----------------------------------------------------------------------------------------------------- building
def _load_raw(source: Source, items: dict[str, RawItem], stem: str, split_root: Path) -> LoadedSample:
    if stem not in items:
        raise SwapPairsError(f"{stem}: listed in {split_root} but not in the raw data: data/prepared was made from "
                             f"other raw data; run `dvc repro preprocess`")
    try:
        return source.load(items[stem])
    except SampleSkipped as exc:
        raise SwapPairsError(f"{exc}; run `dvc repro synthesize`") from None


def _check_raw(stem: str, before: Figure, raw: LoadedSample, raw_path: Path, p: SynthesizeParams) -> None:
    """The re-rendered figure must be the raw one, else the pair would not show the prepared test image."""
    same = (before.image.shape == raw.image.shape and np.array_equal(before.image, raw.image)
            and np.array_equal(before.parsing, raw.parsing))
    if not same:
        raise SwapPairsError(
            f"{stem}: figure {figure_index(stem)} rendered with params.yaml synthesize (seed {p.seed}, "
            f"{p.height}x{p.width}, supersample {p.supersample}) differs from {raw_path}: data/raw was not made with "
            f"these params; run `dvc repro synthesize` (then the stages after it)")


def _check_prepared(stem: str, image: np.ndarray, parsing: np.ndarray, test: PreparedSplit, row: int) -> None:
    if not (np.array_equal(image, test.images[row]) and np.array_equal(parsing, test.parsing[row])):
        raise SwapPairsError(f"{stem}: the raw figure fitted to {test.size[1]}x{test.size[0]} differs from its row in "
                             f"{test.root}: data/prepared was made from other raw data or preprocess params; "
                             f"run `dvc repro preprocess`")


def _pair_rows(stem: str, before: Figure, after: Figure, target: str, height: int, width: int) -> dict[str, Any]:
    """One pair at the prepared size: both renders through the same fit as the prepared split."""
    image_before, parsing_before = fit_to_size(before.image, before.parsing, height, width)
    image_after, parsing_after = fit_to_size(after.image, after.parsing, height, width)
    return {"image_before": image_before, "image_after": image_after, "parsing_before": parsing_before,
            "parsing_after": parsing_after, "source_label": GARMENT_LABEL[lower_shape(before.description)],
            "target_label": GARMENT_LABEL[target], "target_category": target, "stems": stem}


def _stack(rows: list[dict[str, Any]], height: int, width: int) -> SwapPairs:
    if not rows:
        return empty_pairs(height, width)
    kinds = {name: kind for name, (_, kind) in _expected_shapes(0, height, width).items()}
    return SwapPairs(**{name: np.array([r[name] for r in rows], np.uint8 if kind == "u1" else np.str_)
                        for name, kind in kinds.items()})


def build_swap_pairs(data: DataParams, synth: SynthesizeParams, prep: PreprocessParams, raw_dir: Path,
                     prepared_dir: Path) -> tuple[SwapPairs, dict[str, Any]]:
    """The pairs of the prepared test split and the summary (see the module docstring)."""
    test = open_split(Path(prepared_dir) / "test")
    summary: dict[str, Any] = {"pairs": 0, "considered": len(test), "skipped": {}, "source": data.source}
    if data.source != "synthetic":  # no paired truth for photos
        summary["skipped"] = {"not synthetic": len(test)}
        return empty_pairs(prep.height, prep.width), summary
    source = build_source(data, Path(raw_dir))
    items = {item.stem: item for item in source.items()}
    skipped: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})
    rows = []
    for row, stem in enumerate(tqdm(test.stems, desc="swap_pairs", unit="fig", disable=None)):
        before = render_figure(figure_index(stem), synth)
        _check_raw(stem, before, _load_raw(source, items, stem, test.root), items[stem].image_path, synth)
        shape = lower_shape(before.description)
        if shape not in TARGET_CATEGORY:
            skipped["dress" if shape == "dress" else "no lower garment"] += 1
            continue
        target = TARGET_CATEGORY[shape]
        after = render_swapped(figure_index(stem), synth, target)
        rows.append(_pair_rows(stem, before, after, target, prep.height, prep.width))
        _check_prepared(stem, rows[-1]["image_before"], rows[-1]["parsing_before"], test, row)
    summary["pairs"], summary["skipped"] = len(rows), dict(skipped)
    return _stack(rows, prep.height, prep.width), summary


def write_swap_pairs(pairs: SwapPairs, summary: dict[str, Any], out_dir: Path) -> None:
    """``pairs.npz`` (written aside, then moved into place) and ``summary.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f".{PAIRS_FILE}.partial"
    with open(partial, "wb") as handle:
        np.savez(handle, **{f.name: getattr(pairs, f.name) for f in fields(pairs)})
    os.replace(partial, out_dir / PAIRS_FILE)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def make_swap_pairs(params: Params, raw_dir: Path, prepared_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Build and write the pairs (the swap_pairs stage's work); returns the summary."""
    pairs, summary = build_swap_pairs(params.data, params.synthesize, params.preprocess, raw_dir, prepared_dir)
    write_swap_pairs(pairs, summary, out_dir)
    return summary


# ------------------------------------------------------------------------------------------------------ reading
def load_swap_pairs(folder: str | Path) -> SwapPairs:
    """The pairs in ``folder`` (``data/swap_pairs``); SwapPairsError naming the file when missing or malformed."""
    path = Path(folder) / PAIRS_FILE
    if not path.is_file():
        raise SwapPairsError(f"{path}: missing; {_REPRODUCE}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SwapPairsError(f"{path}: not a readable .npz archive ({exc}); {_REPRODUCE}") from None
    images = arrays.get("image_before")
    if images is None or images.ndim != 4:
        raise SwapPairsError(f"{path}: no (N, H, W, 3) array image_before; {_REPRODUCE}")
    for name, (shape, kind) in _expected_shapes(*images.shape[:3]).items():
        array = arrays.get(name)
        if array is None:
            raise SwapPairsError(f"{path}: array {name!r} is missing; {_REPRODUCE}")
        if array.shape != shape or array.dtype.str.lstrip("<>|=")[:len(kind)] != kind:
            raise SwapPairsError(f"{path}: array {name!r} is {array.shape} {array.dtype}, expected {shape} "
                                 f"{'uint8' if kind == 'u1' else 'str'}; {_REPRODUCE}")
    return SwapPairs(**{f.name: arrays[f.name] for f in fields(SwapPairs)})
