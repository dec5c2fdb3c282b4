"""DVC stage `synthesize`: write the procedural dressed-figure dataset (data/raw) and its contact sheet.

    python -m stages.synthesize [--params params.yaml] [--out data/raw]
                                [--sheet reports/figures/synthesize_contact_sheet.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.data.synthetic import write_dataset
from fashion_edit.layout import CONTACT_SHEET, RAW
from fashion_edit.stage import run_stage


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=RAW)
    parser.add_argument("--sheet", type=Path, default=CONTACT_SHEET)


def synthesize(params: Params, root: Path, args: argparse.Namespace) -> str:
    p = params.synthesize
    start = time.perf_counter()
    summary = write_dataset(p, args.out, args.sheet)  # replaces the files a previous run wrote
    garments = ", ".join(f"{k} {v}" for k, v in summary["garments"].items())
    return (f"{summary['count']} figures {p.height}x{p.width} (seed {p.seed}) -> {args.out} "
            f"in {time.perf_counter() - start:.1f} s; garments: {garments}; sheet: {args.sheet}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("synthesize", __doc__, synthesize, argv, arguments=arguments)


if __name__ == "__main__":
    sys.exit(main())
