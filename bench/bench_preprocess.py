"""Benchmark: preprocess throughput (images/s on ONE core) and dataset item latency.

    .venv/bin/python -m bench.bench_preprocess                  # 256x256, 600 images
    .venv/bin/python -m bench.bench_preprocess --size 128 --count 1000

Builds a raw folder tree once in a temporary folder (the synthetic generator when
``fashion_edit.data.synthetic`` is available, else random textured ellipses), then times
``preprocess`` end to end with OpenCV limited to one thread, a per-step breakdown, and
``EditingDataset.__getitem__``, and the wall-clock rate with one worker process per CPU
(what ``stages/preprocess.py`` uses by default). Prints one line per figure. Rates use the process's CPU
time (``time.process_time``, one thread) so a busy machine does not distort the per-core
figure; the wall-clock rate is printed beside it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fashion_edit.config import DataParams, MaskParams, PreprocessParams
from fashion_edit.data.conditioning import segment_mean_colour, sketch_edges
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.masks import colour_stroke_mask, hole_mask
from fashion_edit.data.preprocess import default_workers, fit_to_size, item_digest, label_histogram, preprocess
from fashion_edit.data.sources.folder import FolderSource
from fashion_edit.data.store import SplitWriter, open_split


def write_shapes_tree(root: Path, count: int, size: int, seed: int = 0) -> None:
    """Random textured ellipses on a gradient: PNG images + LIP-20 parsing + identity label map."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "parsing").mkdir()
    ramp = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    for i in range(count):
        lo, hi = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        image = (lo + (hi - lo) * ramp).repeat(size, axis=0).astype(np.uint8)
        parsing = np.zeros((size, size), np.uint8)
        for label in rng.choice(np.arange(1, 20), size=6, replace=False):
            shape = np.zeros_like(parsing)
            centre = tuple(int(v) for v in rng.integers(size // 8, size - size // 8, 2))
            axes = tuple(int(v) for v in rng.integers(size // 16, size // 4, 2))
            cv2.ellipse(shape, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1, cv2.LINE_8)
            stripes = (np.arange(size)[:, None] // int(rng.integers(3, 12))) % 2
            colour = rng.integers(0, 256, (2, 3))
            image[shape > 0] = colour[stripes.repeat(size, axis=1)[shape > 0]]
            parsing[shape > 0] = label
        cv2.imwrite(str(root / "images" / f"fig{i:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "parsing" / f"fig{i:06d}.png"), parsing)
    (root / "label_map.yaml").write_text("source: bench shapes\nmap: {" + ", ".join(f"{i}: {i}" for i in range(20)) + "}\n")


def write_raw_tree(root: Path, count: int, size: int) -> str:
    try:
        from fashion_edit.config import SynthesizeParams
        from fashion_edit.data.synthetic import write_dataset
    except ImportError:
        write_shapes_tree(root, count, size)
        return "random ellipses"
    write_dataset(SynthesizeParams(count=count, height=size, width=size), root, root / "sheet.png")
    return "synthetic figures"


def time_steps(
    source: FolderSource, p: PreprocessParams, masks: MaskParams, store: Path, limit: int = 200
) -> dict[str, float]:
    """Mean milliseconds per item of each preprocessing step (eval masks: every item, not only val/test)."""
    totals = dict.fromkeys(("load", "fit", "sketch", "colour", "eval masks", "hash + histogram", "store"), 0.0)
    items = list(source.items())[:limit]
    writer = SplitWriter(store, len(items), p.height, p.width, with_eval=True)
    for item in items:
        t0 = time.process_time()
        sample = source.load(item)
        t1 = time.process_time()
        image, parsing = fit_to_size(sample.image, sample.parsing, p.height, p.width)
        t2 = time.process_time()
        sketch_edges(image, p.canny_low, p.canny_high)
        t3 = time.process_time()
        segment_mean_colour(image, parsing, p.colour)
        t4 = time.process_time()
        rng = np.random.default_rng(0)
        colour_stroke_mask(rng, p.height, p.width, masks, region=hole_mask(rng, parsing, masks))
        t5 = time.process_time()
        item_digest(item)
        label_histogram(parsing)
        t6 = time.process_time()
        writer.append(item.stem, images=image, parsing=parsing, sketch=parsing, colour=image, eval_masks=parsing,
                      eval_strokes=parsing)
        t7 = time.process_time()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            totals[key] += dt
    started = time.process_time()
    writer.close()
    totals["store"] += time.process_time() - started
    return {k: 1e3 * v / len(items) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # per-core figures
    torch.set_num_threads(1)
    p = PreprocessParams(height=args.size, width=args.size)
    masks = MaskParams()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        kind = write_raw_tree(raw, args.count, args.size)
        source = FolderSource(raw, raw / "label_map.yaml")
        time_steps(source, p, masks, Path(tmp) / "warm", limit=20)  # warm the page cache and OpenCV
        started, wall = time.process_time(), time.perf_counter()
        preprocess(source, DataParams(source="folder"), p, masks, Path(tmp) / "prepared", Path(tmp) / "report.json")
        elapsed, wall = time.process_time() - started, time.perf_counter() - wall
        print(f"preprocess {args.size}x{args.size} ({kind}, {args.count} images, 1 OpenCV thread): "
              f"{args.count / elapsed:.0f} images/s per core ({1e3 * elapsed / args.count:.2f} ms CPU/image; "
              f"wall clock {args.count / wall:.0f} images/s)")
        workers = default_workers()
        if workers > 1:
            wall = time.perf_counter()
            preprocess(source, DataParams(source="folder"), p, masks, Path(tmp) / "prepared_mp",
                       Path(tmp) / "report_mp.json", workers=workers)
            wall = time.perf_counter() - wall
            print(f"preprocess with {workers} worker processes: wall clock {args.count / wall:.0f} images/s")
        steps = time_steps(source, p, masks, Path(tmp) / "steps")
        print("  per step (ms/image): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
        for name, fixed in (("train", False), ("test", True)):
            dataset = EditingDataset(open_split(Path(tmp) / "prepared" / name), masks, seed=0, fixed_masks=fixed)
            n = min(len(dataset), 200)
            started = time.process_time()
            for i in range(n):
                dataset[i]
            print(f"EditingDataset[{name}, fixed_masks={fixed}] {args.size}x{args.size}: "
                  f"{1e3 * (time.process_time() - started) / n:.2f} ms/item")


if __name__ == "__main__":
    main()
