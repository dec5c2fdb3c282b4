"""DVC stage `train_segmenter`: the human-parsing segmenter used by the evaluation and the editor.

    python -m stages.train_segmenter [--params params.yaml]

Trains ``FreeFormParser(in_channels=3)`` with cross-entropy on the real training images for
``evaluate.segmenter_steps`` steps (resumes from checkpoints/segmenter/), or - when
``evaluate.segmenter_checkpoint`` names a file - adopts that segmenter instead. Writes
artifacts/segmenter/ (weights + info.json), reports/train_segmenter/ and one MLflow run.
"""
from __future__ import annotations

import argparse
import logging
import sys

from fashion_edit.config import ParamsError, load_params
from fashion_edit.data.store import StoreError
from fashion_edit.layout import TrainPaths
from fashion_edit.stage_args import stage_parser
from fashion_edit.tracking.runs import TrackingError
from fashion_edit.training.checkpoints import CheckpointError
from fashion_edit.training.loop import NonFiniteLossError
from fashion_edit.training.segmenter import SegmenterError, train_segmenter, use_provided_segmenter, weights_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        root = args.params.resolve().parent
        paths = TrainPaths.default(root, "segmenter")
        provided = params.evaluate.segmenter_checkpoint
        if provided:
            info = use_provided_segmenter(params, paths, root / provided)
        else:
            info = train_segmenter(params, paths)
    except (ParamsError, StoreError, SegmenterError, TrackingError, CheckpointError, NonFiniteLossError,
            FileNotFoundError) as exc:
        print(f"train_segmenter: error: {exc}", file=sys.stderr)
        return 1
    scores = ", ".join(f"{k} {v:.4g}" for k, v in info["metrics"].items() if k.startswith("val_"))
    print(f"train_segmenter: {info['source']} segmenter -> {weights_file(paths)} ({scores or 'no validation split'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
