"""DVC stage `train_parser`: train the free-form parsing network; resumes from its last checkpoint.

    python -m stages.train_parser [--params params.yaml]
    torchrun --nproc_per_node N -m stages.train_parser      # with train_parser.distributed: true

Reads data/prepared; writes checkpoints/parser/ (persistent), artifacts/parser/ (final weights),
reports/train_parser/ (curves, samples, metrics) and one MLflow run.
"""
from __future__ import annotations

import argparse
import sys

from fashion_edit.stage import stage_parser
from fashion_edit.training.parser_trainer import PARSER_SPEC
from fashion_edit.training.stage import run_training_stage


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_training_stage(PARSER_SPEC, args.params, "stages.train_parser", argv)


if __name__ == "__main__":
    sys.exit(main())
