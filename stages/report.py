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
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.ablation import variant_metric_files
from fashion_edit.evaluation.ablation_report import build_report, load_variant_metrics
from fashion_edit.layout import ABLATION_DETAIL, ABLATION_HEADLINES, ABLATION_PLOT, ABLATION_TABLE
from fashion_edit.stage import run_stage
from fashion_edit.tracking.runs import stage_run


def report(params: Params, root: Path, args: argparse.Namespace) -> str:
    metrics = load_variant_metrics(variant_metric_files(params, root))
    build_report(metrics, root / ABLATION_TABLE, root / ABLATION_PLOT, root / ABLATION_DETAIL, root / ABLATION_HEADLINES)
    with stage_run(params, "report", ("ablation", "ablations"), root) as run:
        for path in (ABLATION_TABLE, ABLATION_PLOT, ABLATION_DETAIL):
            run.log_artifact(root / path, "ablations")
    return f"{len(metrics)} variants -> {ABLATION_TABLE}, {ABLATION_PLOT}"


def main(argv: list[str] | None = None) -> int:
    # OSError: a missing variant file or an unreachable artifact store; ValueError: an empty ablation list
    return run_stage("report", __doc__, report, argv, also_expected=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
