"""DVC stage `synthesize`: write the procedural dressed-figure dataset (data/raw) and its contact sheet.

    python -m stages.synthesize [--params params.yaml] [--out data/raw]
                                [--sheet reports/figures/synthesize_contact_sheet.png]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from fashion_edit.config import load_params
from fashion_edit.data.synthetic import write_dataset
from fashion_edit.layout import CONTACT_SHEET, RAW


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=RAW)
    ap.add_argument("--sheet", type=Path, default=CONTACT_SHEET)
    args = ap.parse_args(argv)
    p = load_params(args.params).synthesize
    start = time.perf_counter()
    summary = write_dataset(p, args.out, args.sheet)  # replaces the files a previous run wrote
    garments = ", ".join(f"{k} {v}" for k, v in summary["garments"].items())
    print(f"synthesize: {summary['count']} figures {p.height}x{p.width} (seed {p.seed}) -> {args.out} "
          f"in {time.perf_counter() - start:.1f} s; garments: {garments}; sheet: {args.sheet}")


if __name__ == "__main__":
    main()
