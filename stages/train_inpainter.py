"""DVC stage `train_inpainter`: train the parsing-aware inpainter on ground-truth parsing (as FE-GAN);
resumes from its last checkpoint.

    python -m stages.train_inpainter [--params params.yaml]
    torchrun --nproc_per_node N -m stages.train_inpainter      # with train_inpainter.distributed: true

Reads data/prepared; writes checkpoints/inpainter/ (persistent), artifacts/inpainter/ (final weights),
reports/train_inpainter/ (curves, samples, metrics) and one MLflow run.
"""
from __future__ import annotations

import sys

from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.stage import training_stage_main


def main(argv: list[str] | None = None) -> int:
    return training_stage_main(INPAINTER_SPEC, "stages.train_inpainter", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
