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

from fashion_edit.config import ParamsError, load_params
from fashion_edit.data.store import StoreError
from fashion_edit.evaluation.evaluate import EvaluationError, run_evaluation
from fashion_edit.evaluation.fid_reference import FidReferenceError
from fashion_edit.layout import EvaluatePaths
from fashion_edit.pretrained import WeightsError
from fashion_edit.serving.editor import EditorModelError
from fashion_edit.stage_args import stage_parser
from fashion_edit.tracking.runs import TrackingError
from fashion_edit.training.segmenter import SegmenterError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        paths = EvaluatePaths.default(args.params.resolve().parent)
        metrics = run_evaluation(params, paths).metrics
    except (ParamsError, StoreError, EditorModelError, SegmenterError, WeightsError, TrackingError,
            EvaluationError, FidReferenceError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    telea, mean_fill = metrics["baselines"]["telea"], metrics["baselines"]["mean_fill"]
    print(f"evaluate: {metrics['test_images']} test images: FID {metrics['fid']:.2f} ± {metrics['fid_se']:.2f} "
          f"(Telea {telea['fid']:.2f}, "
          f"mean fill {mean_fill['fid']:.2f}); KID {metrics['kid']:.4f} (Telea {telea['kid']:.4f}, mean fill "
          f"{mean_fill['kid']:.4f}); hole PSNR {metrics['psnr_hole']:.2f} (Telea {telea['psnr_hole']:.2f}); parser mIoU {metrics['parser_miou']:.3f} "
          f"(hole {metrics['parser_miou_hole']:.3f}); seg consistency {metrics['seg_consistency_miou']:.3f} "
          f"(ceiling {metrics['segmenter_ceiling_miou']:.3f}) -> {paths.headlines}, {paths.metrics}, {paths.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
