"""DVC stage `report`: gather every ablation variant's metrics into a table and a bar plot.

    python -m stages.report [--params params.yaml]

Reads reports/ablations/<variant>/seed<k>.json; writes reports/ablations.md (the table),
reports/figures/ablations.png (DVC plot), reports/metrics/ablations/<variant>.json (DVC metrics: the
headline metrics' means over seeds), reports/ablations.json (mean/std/n per variant and metric) and
logs the table, plot and summary to MLflow under the pipeline's parent run.
"""
from __future__ import annotations

import argparse
import sys

from fashion_edit.config import ParamsError, load_params
from fashion_edit.evaluation.ablation import variant_metric_files
from fashion_edit.evaluation.ablation_report import build_report, load_variant_metrics
from fashion_edit.layout import ABLATION_DETAIL, ABLATION_HEADLINES, ABLATION_PLOT, ABLATION_TABLE
from fashion_edit.stage_args import stage_parser
from fashion_edit.tracking.runs import TrackingError, stage_run

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.params.resolve().parent
    try:
        params = load_params(args.params)
        metrics = load_variant_metrics(variant_metric_files(params, root))
        build_report(metrics, root / ABLATION_TABLE, root / ABLATION_PLOT, root / ABLATION_DETAIL, root / ABLATION_HEADLINES)
        with stage_run(params, "report", ("ablation", "ablations"), root) as run:
            for path in (ABLATION_TABLE, ABLATION_PLOT, ABLATION_DETAIL):
                run.log_artifact(root / path, "ablations")
    except (ParamsError, OSError, ValueError, TrackingError) as exc:  # OSError: a file or the artifact store
        print(f"report: error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {len(metrics)} variants -> {ABLATION_TABLE}, {ABLATION_PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
