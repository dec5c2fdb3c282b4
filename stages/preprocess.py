"""DVC stage `preprocess`: raw dataset -> data/prepared/{train,val,test} arrays + manifest.

    python -m stages.preprocess --raw data/raw --out data/prepared --report reports/preprocess.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.data.preprocess import default_workers, preprocess
from fashion_edit.data.sources import build_source
from fashion_edit.data.store import SPLITS
from fashion_edit.layout import PREPARED, PREPROCESS_REPORT, RAW
from fashion_edit.stage import run_stage


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", type=Path, default=RAW, help="synthetic data (data.source=synthetic)")
    parser.add_argument("--out", type=Path, default=PREPARED)
    parser.add_argument("--report", type=Path, default=PREPROCESS_REPORT)
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = one per CPU (output is the same)")


def prepare(params: Params, root: Path, args: argparse.Namespace) -> str:
    source = build_source(params.data, args.raw)
    manifest = preprocess(source, params.data, params.preprocess, params.masks, args.out, args.report,
                          args.workers or default_workers())
    report = json.loads(args.report.read_text())
    counts = ", ".join(f"{s} {manifest['counts'][s]}" for s in SPLITS)
    return (f"kept {report['kept']} of {report['read']} items ({counts}); "
            f"skipped {report['skipped']} {report['skipped_by_reason'] or ''} -> {args.out}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("preprocess", __doc__, prepare, argv, arguments=arguments)


if __name__ == "__main__":
    sys.exit(main())
