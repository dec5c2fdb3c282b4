"""Benchmark: one edit of a 256x256 photo (segmenter -> parser -> inpainter -> composite), CPU.

    python -m bench.bench_edit [--checkpoint artifacts/editor] [--size 256] [--threads 2] [--repeats 20]

Without --checkpoint the networks are built from params.yaml with random weights (the time does not
depend on the weights). Prints the median and 90th-percentile wall time of ``Editor.edit`` and of its
parts at the model's resolution. Target (DESIGN.md section 10): <= 150 ms at 256x256 on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fashion_edit.config import load_params
from fashion_edit.data.conditioning import sketch_edges
from fashion_edit.data.masks import colour_stroke_mask, free_form_mask
from fashion_edit.networks import segment
from fashion_edit.serving.editor import EditInputs, Editor, EditorNetworks, known_foreground, two_stage


def random_editor(params_path: Path) -> Editor:
    params = load_params(params_path)
    return Editor(EditorNetworks.untrained(params), (params.preprocess.height, params.preprocess.width))


def request(size: int, params_path: Path) -> dict[str, np.ndarray]:
    """A photo-like input: smooth colour gradients plus texture, a free-form hole, its edges, strokes."""
    rng = np.random.default_rng(0)
    masks = load_params(params_path).masks
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x) + 60], axis=2)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    hole = free_form_mask(rng, size, size, masks)
    strokes = colour_stroke_mask(rng, size, size, masks, region=hole)
    colour = np.where(strokes[..., None] > 0, np.array([200, 30, 60], np.uint8), 0).astype(np.uint8)
    return {"image": image, "mask": hole * 255, "sketch": sketch_edges(image, 100, 200) * 255, "colour": colour}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    p90 = sorted(times)[max(0, int(round(0.9 * len(times))) - 1)]
    print(f"{name:<28} median {statistics.median(times):7.1f} ms   p90 {p90:7.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="editor folder (default: random weights from params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--size", type=int, default=256, help="input side in pixels (default 256)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    editor = Editor.load(args.checkpoint) if args.checkpoint else random_editor(args.params)
    inputs = request(args.size, args.params)
    print(f"edit of a {args.size}x{args.size} image at model resolution {editor.size[0]}x{editor.size[1]}, "
          f"{args.threads} threads, torch {torch.__version__}")
    report("Editor.edit (end to end)", timed(lambda: editor.edit(**inputs), args.repeats))

    checked = EditInputs.read(**inputs)
    report("  read + check inputs", timed(lambda: EditInputs.read(**inputs), args.repeats))
    report("  fit to model resolution", timed(lambda: editor.model_batch(checked), args.repeats))
    batch, _ = editor.model_batch(checked)
    with torch.inference_mode():
        report("  segmenter", timed(lambda: segment(editor.networks.segmenter, batch["image"]), args.repeats))
        batch["parsing"] = segment(editor.networks.segmenter, batch["image"])
        batch["known_fg"] = known_foreground(batch)
        report("  parser + inpainter", timed(lambda: two_stage(editor.networks, batch), args.repeats))


if __name__ == "__main__":
    main()
