"""DVC stage `ablations@<variant>` (a foreach over params.yaml `ablations`): train and evaluate one variant.

    python -m stages.ablate --variant no_gan [--params params.yaml]

Reads data/prepared, data/fid_reference and artifacts/{parser,segmenter}; writes checkpoints/ablations/<variant>/
(persistent: resumes after a kill), reports/ablations/<variant>/ (one metrics JSON per seed, curves)
and one MLflow run per seed under the pipeline's parent run. See fashion_edit/evaluation/ablation.py.
"""
from __future__ import annotations

import argparse
import logging
import sys

from fashion_edit.config import load_params
from fashion_edit.evaluation.ablation import run_variant
from fashion_edit.evaluation.evaluate import EvaluationError
from fashion_edit.evaluation.fid_reference import FidReferenceError
from fashion_edit.serving.editor import EditorModelError
from fashion_edit.stage_args import stage_parser
from fashion_edit.training.segmenter import SegmenterError
from fashion_edit.training.stage import EXPECTED_ERRORS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("--variant", required=True, help="a key of params.yaml `ablations`")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        params = load_params(args.params)
        runs = run_variant(params, args.variant, args.params.resolve().parent)
    except (*EXPECTED_ERRORS, EditorModelError, EvaluationError, FidReferenceError, SegmenterError) as exc:
        print(f"ablations@{args.variant}: error: {exc}", file=sys.stderr)
        return 1
    for m in runs:
        print(f"ablations@{args.variant} seed {m['seed']}: FID {m['fid']:.2f}, KID {m['kid']:.4f}, hole PSNR {m['psnr_hole']:.2f}, "
              f"seg mIoU {m['seg_consistency_miou']:.3f}, {m['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
