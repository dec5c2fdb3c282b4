"""DVC stage `preprocess`: raw dataset -> data/prepared/{train,val,test} arrays + manifest.

    python -m stages.preprocess --raw data/raw --out data/prepared --report reports/preprocess.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fashion_edit.config import ParamsError, load_params
from fashion_edit.data.preprocess import PreprocessError, default_workers, preprocess
from fashion_edit.data.sources import DatasetError, build_source
from fashion_edit.data.store import SPLITS
from fashion_edit.layout import PREPARED, PREPROCESS_REPORT, RAW
from fashion_edit.stage_args import stage_parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", type=Path, default=RAW, help="synthetic data (data.source=synthetic)")
    parser.add_argument("--out", type=Path, default=PREPARED)
    parser.add_argument("--report", type=Path, default=PREPROCESS_REPORT)
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = one per CPU (output is the same)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        source = build_source(params.data, args.raw)
        workers = args.workers or default_workers()
        manifest = preprocess(source, params.data, params.preprocess, params.masks, args.out, args.report, workers)
    except (ParamsError, DatasetError, PreprocessError) as exc:
        print(f"preprocess: error: {exc}", file=sys.stderr)
        return 1
    report = json.loads(args.report.read_text())
    counts = ", ".join(f"{s} {manifest['counts'][s]}" for s in SPLITS)
    print(
        f"preprocess: kept {report['kept']} of {report['read']} items ({counts}); "
        f"skipped {report['skipped']} {report['skipped_by_reason'] or ''} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
