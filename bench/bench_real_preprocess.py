"""Benchmark: preprocess streams a real-format dataset (peak memory must not grow with its size).

    .venv/bin/python -m bench.bench_real_preprocess                       # 200 and 2000 images
    .venv/bin/python -m bench.bench_real_preprocess --counts 2000 10000 --size 256

Writes a DeepFashion-MultiModal tree (``image/*.jpg`` 750x1101, ``segm/*_segm.png`` 24-class,
``keypoints/keypoints_loc.txt``) of N photos in a temporary folder, then runs the real
``preprocess`` on it in a fresh process per N, and prints that process's peak RSS
(``resource.getrusage``) before and after preprocess, sampled peaks of its heap (RssAnon)
and file-backed pages (RssFile: shared libraries and any mapped file), the largest worker's
peak RSS with ``--workers`` > 1, images/s per wall second and per CPU second (wall time
suffers on a busy machine), and how often the shared ``keypoints_loc.txt`` was hashed (with
one worker; it should be once, not once per item). Photos are drawn from 16 rendered figures
(copied bytes; decoding cost is the same as for distinct photos). Peak RSS should not grow
with the number of photos.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

HEIGHT, WIDTH = 1101, 750  # DeepFashion-MultiModal photo size
TEMPLATES = 16
# DeepFashion-MultiModal ids and (top, bottom, left, right) as fractions of the photo
FIGURE = (
    (13, (0.05, 0.16, 0.40, 0.60)),  # hair
    (14, (0.10, 0.20, 0.43, 0.57)),  # face
    (15, (0.20, 0.25, 0.46, 0.54)),  # skin (neck)
    (1, (0.25, 0.50, 0.33, 0.67)),  # top
    (15, (0.26, 0.58, 0.25, 0.31)),  # skin (arm)
    (15, (0.26, 0.58, 0.69, 0.75)),  # skin (arm)
    (10, (0.49, 0.51, 0.35, 0.65)),  # belt
    (3, (0.51, 0.70, 0.34, 0.66)),  # skirt
    (15, (0.70, 0.92, 0.37, 0.47)),  # skin (leg)
    (15, (0.70, 0.92, 0.53, 0.63)),  # skin (leg)
    (11, (0.92, 0.96, 0.36, 0.48)),  # footwear
    (11, (0.92, 0.96, 0.52, 0.64)),  # footwear
    (12, (0.40, 0.52, 0.78, 0.88)),  # bag
)
KEYPOINTS = " ".join(f"{x} {y}" for x, y in [(375, 160)] * 19 + [(-1, -1)] * 2)


def render(seed: int) -> tuple[bytes, bytes]:
    """One figure: (JPEG photo bytes, PNG parsing bytes)."""
    rng = np.random.default_rng(seed)
    shift = rng.integers(-30, 31, 2)
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    for label, (t, b, left, r) in FIGURE:
        y0, y1 = int(t * HEIGHT) + shift[0], int(b * HEIGHT) + shift[0]
        x0, x1 = int(left * WIDTH) + shift[1], int(r * WIDTH) + shift[1]
        labels[max(y0, 0) : y1, max(x0, 0) : x1] = label
    colours = rng.integers(0, 256, (256, 3)).astype(np.float32)
    texture = rng.normal(0, 12, (HEIGHT // 4, WIDTH // 4, 3)).astype(np.float32)
    image = colours[labels] + cv2.resize(texture, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    image = cv2.GaussianBlur(image.clip(0, 255).astype(np.uint8), (3, 3), 0)
    jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    png = cv2.imencode(".png", labels)[1].tobytes()
    return jpg, png


def write_tree(root: Path, count: int, templates: list[tuple[bytes, bytes]]) -> None:
    (root / "image").mkdir(parents=True)
    (root / "segm").mkdir()
    (root / "keypoints").mkdir()
    rows = []
    for i in range(count):
        name = f"WOMEN-Dresses-id_{i:08d}-01_1_front"
        jpg, png = templates[i % len(templates)]
        (root / "image" / f"{name}.jpg").write_bytes(jpg)
        (root / "segm" / f"{name}_segm.png").write_bytes(png)
        rows.append(f"{name}.jpg {KEYPOINTS}")
    (root / "keypoints" / "keypoints_loc.txt").write_text("\n".join(rows) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    """This process's CPU time plus that of its finished children (the preprocess workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class RssSampler(threading.Thread):
    """Peak anonymous (heap) and file-backed (memmapped output) resident memory, sampled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]) / 1024)


def run_preprocess(root: str, out: str, size: int, workers: int) -> dict:
    """In a fresh process: preprocess the tree; memory, time, counts."""
    cv2.setNumThreads(1)
    import fashion_edit.data.preprocess as preprocess_module
    from fashion_edit.config import DataParams, MaskParams, PreprocessParams
    from fashion_edit.data.preprocess import file_sha256, preprocess
    from fashion_edit.data.sources import build_source

    keypoints = Path(root) / "keypoints" / "keypoints_loc.txt"
    keypoint_hashes = 0

    def counting_sha256(path: Path, *args, **kwargs) -> str:  # counts hashing in this process only
        nonlocal keypoint_hashes
        keypoint_hashes += Path(path) == keypoints
        return file_sha256(path, *args, **kwargs)

    preprocess_module.file_sha256 = counting_sha256

    data = DataParams(source="deepfashion_mm", root=root)
    source = build_source(data, Path(out) / "unused")
    before, cpu_before = peak_rss_mb(), cpu_seconds()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    manifest = preprocess(
        source, data, PreprocessParams(height=size, width=size), MaskParams(), Path(out) / "prepared",
        Path(out) / "report.json", workers=workers,
    )
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    sampler.done.set()
    sampler.join()
    t0 = time.perf_counter()
    for _ in range(20):
        file_sha256(keypoints)
    hash_once = (time.perf_counter() - t0) / 20
    return {
        "before_mb": before, "peak_mb": peak_rss_mb(), "seconds": seconds, "cpu_seconds": cpu,
        "counts": manifest["counts"], "peak_anon_mb": sampler.peak["RssAnon"], "peak_file_mb": sampler.peak["RssFile"],
        "keypoint_hash_seconds": hash_once, "keypoint_hashes": keypoint_hashes,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--size", type=int, default=128, help="preprocess.height = width")
    parser.add_argument("--workers", type=int, default=1, help="preprocess worker processes")
    args = parser.parse_args()
    templates = [render(seed) for seed in range(TEMPLATES)]
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.counts:
            root, out = Path(tmp) / f"dfmm{count}", Path(tmp) / f"out{count}"
            write_tree(root, count, templates)
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                result = pool.submit(run_preprocess, str(root), str(out), args.size, args.workers).result()
            n = sum(result["counts"].values())
            hashed = (f"{result['keypoint_hashes']} time(s)" if args.workers == 1 else "in the workers")
            print(
                f"preprocess deepfashion_mm {count} photos 750x1101 -> {args.size}x{args.size}, {args.workers} worker(s): "
                f"{n / result['seconds']:.1f} images/s wall, {n / result['cpu_seconds']:.1f} images/CPU-s; "
                f"peak RSS {result['peak_mb']:.0f} MB (after imports {result['before_mb']:.0f} MB; sampled peaks: "
                f"heap {result['peak_anon_mb']:.0f} MB, file-backed {result['peak_file_mb']:.0f} MB; "
                f"largest worker {result['worker_peak_mb']:.0f} MB); "
                f"splits {result['counts']}; the shared keypoints_loc.txt was hashed {hashed} "
                f"({result['keypoint_hash_seconds'] * 1e3:.1f} ms each; per item it would cost "
                f"{result['keypoint_hash_seconds'] * n:.2f} s)"
            )
            shutil.rmtree(root)
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
