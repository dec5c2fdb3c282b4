"""DVC stage `fid_reference`: Inception features of the real test images, computed once.

    python -m stages.fid_reference [--params params.yaml]

Reads data/prepared/test; writes data/fid_reference/test.npz, the real side of every FID that
`evaluate` and the `ablations@<variant>` stages compute (see fashion_edit/evaluation/fid_reference.py).
"""
from __future__ import annotations

import argparse
import sys
import time

from fashion_edit.config import ParamsError, load_params
from fashion_edit.data.store import StoreError, open_split
from fashion_edit.evaluation.fid_reference import FidReferenceError, compute_reference, save_reference
from fashion_edit.evaluation.metrics.fid import InceptionFeatures
from fashion_edit.layout import FID_REFERENCE, PREPARED
from fashion_edit.pretrained import WeightsError
from fashion_edit.stage_args import stage_parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.params.resolve().parent
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        test = open_split(root / PREPARED / "test")
        features = compute_reference(test, InceptionFeatures(batch_size=params.evaluate.fid_batch_size))
        save_reference(root / FID_REFERENCE, features, test)
    except (ParamsError, StoreError, WeightsError, FidReferenceError) as exc:
        print(f"fid_reference: error: {exc}", file=sys.stderr)
        return 1
    print(f"fid_reference: Inception features of {len(test)} test images -> {FID_REFERENCE} "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
