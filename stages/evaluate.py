"""DVC stage `evaluate`: the trained editor on the test split, beside the Telea and mean-fill baselines.

    python -m stages.evaluate [--params params.yaml]

Reads data/prepared/test, data/fid_reference (real FID features) and
artifacts/{parser,inpainter,segmenter}; writes
reports/metrics/evaluate/<method>.json (DVC metrics: the headline numbers of the model and of each
baseline), reports/evaluate.json (every number, with the headline metrics' standard errors),
reports/evaluate.md (the table),
reports/evaluate/samples.png (DVC plot: input, sketch + colour, completed parsing, output, ground
truth for evaluate.grid_items fixed test items) and one MLflow run. The metrics are documented in
fashion_edit/evaluation/evaluate.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.evaluate import run_evaluation
from fashion_edit.layout import EvaluatePaths
from fashion_edit.stage import run_stage


def evaluate(params: Params, root: Path, args: argparse.Namespace) -> str:
    paths = EvaluatePaths.default(root)
    metrics = run_evaluation(params, paths).metrics
    telea, mean_fill = metrics["baselines"]["telea"], metrics["baselines"]["mean_fill"]
    return (f"{metrics['test_images']} test images: FID {metrics['fid']:.2f} ± {metrics['fid_se']:.2f} "
            f"(Telea {telea['fid']:.2f}, mean fill {mean_fill['fid']:.2f}); KID {metrics['kid']:.4f} "
            f"(Telea {telea['kid']:.4f}, mean fill {mean_fill['kid']:.4f}); hole PSNR {metrics['psnr_hole']:.2f} "
            f"(Telea {telea['psnr_hole']:.2f}); parser mIoU {metrics['parser_miou']:.3f} "
            f"(hole {metrics['parser_miou_hole']:.3f}); seg consistency {metrics['seg_consistency_miou']:.3f} "
            f"(ceiling {metrics['segmenter_ceiling_miou']:.3f}) -> {paths.headlines}, {paths.metrics}, {paths.report}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", __doc__, evaluate, argv, also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
