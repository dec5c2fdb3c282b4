"""DVC stage `train_inpainter`: train the parsing-aware inpainter on ground-truth parsing (as FE-GAN);
resumes from its last checkpoint.

    python -m stages.train_inpainter [--params params.yaml]
    torchrun --nproc_per_node N -m stages.train_inpainter      # with train_inpainter.distributed: true

Reads data/prepared; writes checkpoints/inpainter/ (persistent), artifacts/inpainter/ (final weights),
reports/train_inpainter/ (curves, samples, metrics) and one MLflow run.
"""
from __future__ import annotations

import argparse
import sys

from fashion_edit.stage import stage_parser
from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.stage import run_training_stage


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_training_stage(INPAINTER_SPEC, args.params, "stages.train_inpainter", argv)


if __name__ == "__main__":
    sys.exit(main())
