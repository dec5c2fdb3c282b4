"""DVC stage `train_parser`: train the free-form parsing network; resumes from its last checkpoint.

    python -m stages.train_parser [--params params.yaml]
    torchrun --nproc_per_node N -m stages.train_parser      # with train_parser.distributed: true

Reads data/prepared; writes checkpoints/parser/ (persistent), artifacts/parser/ (final weights),
reports/train_parser/ (curves, samples, metrics) and one MLflow run.
"""
from __future__ import annotations

import sys

from fashion_edit.training.parser_trainer import PARSER_SPEC
from fashion_edit.training.stage import training_stage_main


def main(argv: list[str] | None = None) -> int:
    return training_stage_main(PARSER_SPEC, "stages.train_parser", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
