"""Benchmark: synthetic figure throughput on ONE core.

    .venv/bin/python -m bench.bench_synthesize                      # 128x128 and 256x256
    .venv/bin/python -m bench.bench_synthesize --sizes 128 --count 1000

For each size it times ``render_figure`` alone and ``write_dataset`` (render + PNG/JSON files,
in a temporary folder). OpenCV is limited to one thread and the process pinned to one CPU;
rates use the process's CPU time (``time.process_time``) so a busy machine does not distort
the per-core figure, with the wall-clock rate printed beside it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from fashion_edit.config import SynthesizeParams
from fashion_edit.data.synthetic import render_figure, write_dataset


def _timed(work: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def _pin_to_one_core() -> None:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--count", type=int, default=600, help="figures per measurement")
    ap.add_argument("--supersample", type=int, default=SynthesizeParams().supersample)
    args = ap.parse_args(argv)
    _pin_to_one_core()
    for size in args.sizes:
        p = SynthesizeParams(count=args.count, height=size, width=size, supersample=args.supersample,
                             contact_sheet=1)
        render_figure(0, p)  # warm-up (first-call allocations, lazy imports)
        cpu, wall = _timed(lambda: [render_figure(i, p) for i in range(p.count)])
        print(f"{size}x{size} x{p.supersample} render_figure : {p.count / cpu:7.0f} images/s per core (CPU time), "
              f"{p.count / wall:7.0f} images/s wall")
        with tempfile.TemporaryDirectory() as tmp:
            cpu, wall = _timed(lambda: write_dataset(p, Path(tmp) / "raw", Path(tmp) / "sheet.png"))
        print(f"{size}x{size} x{p.supersample} write_dataset : {p.count / cpu:7.0f} images/s per core (CPU time), "
              f"{p.count / wall:7.0f} images/s wall")


if __name__ == "__main__":
    main()
