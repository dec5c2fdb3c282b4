"""DVC stage `train_segmenter`: the human-parsing segmenter used by the evaluation and the editor.

    python -m stages.train_segmenter [--params params.yaml]

Trains ``FreeFormParser(in_channels=3)`` with cross-entropy on the real training images for
``evaluate.segmenter_steps`` steps (resumes from checkpoints/segmenter/), or - when
``evaluate.segmenter_checkpoint`` names a file - adopts that segmenter instead. Writes
artifacts/segmenter/ (weights + info.json), reports/train_segmenter/ and one MLflow run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.layout import TrainPaths
from fashion_edit.stage import run_stage
from fashion_edit.training.segmenter import train_segmenter, use_provided_segmenter, weights_file


def segmenter(params: Params, root: Path, args: argparse.Namespace) -> str:
    paths = TrainPaths.default(root, "segmenter")
    provided = params.evaluate.segmenter_checkpoint
    info = use_provided_segmenter(params, paths, root / provided) if provided else train_segmenter(params, paths)
    scores = ", ".join(f"{k} {v:.4g}" for k, v in info["metrics"].items() if k.startswith("val_"))
    return f"{info['source']} segmenter -> {weights_file(paths)} ({scores or 'no validation split'})"


def main(argv: list[str] | None = None) -> int:
    return run_stage("train_segmenter", __doc__, segmenter, argv, also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
