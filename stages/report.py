"""DVC stage `report`: gather every ablation variant's metrics into a table, the claims' verdicts and plots.

    python -m stages.report [--params params.yaml]

Reads reports/ablations/<variant>/seed<k>.json and seed<k>_curve.csv; writes reports/ablations.md (the
table and the verdicts on the published claims), reports/figures/ablations.png (bars with error bars)
and reports/figures/ablation_curves.png (FID/KID against training seconds, a point per
ablation.curve_points; both DVC plots), reports/metrics/ablations/<variant>.json (DVC metrics: the headline metrics'
means over seeds), reports/ablations.json (mean/std/n per variant and metric, the verdicts) and logs
them to MLflow under the pipeline's parent run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.ablation import read_curve, variant_metric_files
from fashion_edit.evaluation.ablation_report import build_report, load_variant_metrics
from fashion_edit.layout import (ABLATION_CURVES_PLOT, ABLATION_DETAIL, ABLATION_HEADLINES, ABLATION_PLOT, ABLATION_TABLE,
                                 ablation_curve_file)
from fashion_edit.stage import run_stage
from fashion_edit.tracking.runs import stage_run


def report(params: Params, root: Path, args: argparse.Namespace) -> str:
    metrics = load_variant_metrics(variant_metric_files(params, root))
    curves = {name: [read_curve(root / ablation_curve_file(name, k)) for k in range(params.ablation.seeds)]
              for name in metrics}
    build_report(metrics, root / ABLATION_TABLE, root / ABLATION_PLOT, root / ABLATION_DETAIL, root / ABLATION_HEADLINES,
                 z=params.ablation.verdict_z, curves=curves, curves_png=root / ABLATION_CURVES_PLOT)
    with stage_run(params, "report", ("ablation", "ablations"), root) as run:
        for path in (ABLATION_TABLE, ABLATION_PLOT, ABLATION_DETAIL, ABLATION_CURVES_PLOT):
            run.log_artifact(root / path, "ablations")
    return f"{len(metrics)} variants -> {ABLATION_TABLE}, {ABLATION_PLOT}"


def main(argv: list[str] | None = None) -> int:
    # OSError: a missing variant file or an unreachable artifact store; ValueError: an empty ablation list
    return run_stage("report", __doc__, report, argv, also_expected=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
