"""DVC stage `fid_reference`: Inception features of the real test images, computed once.

    python -m stages.fid_reference [--params params.yaml]

Reads data/prepared/test; writes data/fid_reference/test.npz, the real side of every FID that
`evaluate` and the `ablations@<variant>` stages compute (see fashion_edit/evaluation/fid_reference.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.data.store import open_split
from fashion_edit.evaluation.fid_reference import compute_reference, save_reference
from fashion_edit.evaluation.metrics.fid import InceptionFeatures
from fashion_edit.layout import FID_REFERENCE, PREPARED
from fashion_edit.stage import run_stage


def fid_reference(params: Params, root: Path, args: argparse.Namespace) -> str:
    started = time.perf_counter()
    test = open_split(root / PREPARED / "test")
    features = compute_reference(test, InceptionFeatures(batch_size=params.evaluate.fid_batch_size))
    save_reference(root / FID_REFERENCE, features, test)
    return f"Inception features of {len(test)} test images -> {FID_REFERENCE} in {time.perf_counter() - started:.1f} s"


def main(argv: list[str] | None = None) -> int:
    return run_stage("fid_reference", __doc__, fid_reference, argv)


if __name__ == "__main__":
    sys.exit(main())
