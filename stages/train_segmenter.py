"""DVC stage `train_segmenter`: the human-parsing segmenter used by the evaluation and the editor.

    python -m stages.train_segmenter [--params params.yaml]

Trains the segmenter (``segmenter`` section) with cross-entropy on the real training images for
``train_segmenter.steps`` steps through the same runner as the GANs (resumes from
checkpoints/segmenter/, ``distributed: true`` for torchrun), or, when ``train_segmenter.pretrained``
names a file, adopts that segmenter instead. Writes artifacts/segmenter/ (segmenter.pt + info.json),
reports/train_segmenter/ (curves, samples, metrics with the validation mIoU) and one MLflow run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params, load_params
from fashion_edit.layout import TrainPaths
from fashion_edit.stage import run_stage, stage_parser
from fashion_edit.training.runner import adopt
from fashion_edit.training.segmenter_trainer import SEGMENTER_SPEC
from fashion_edit.training.stage import training_stage_main
from fashion_edit.weights import load_network

MODULE = "stages.train_segmenter"


def adopt_pretrained(params: Params, root: Path, args: argparse.Namespace) -> str:
    source = root / params.train_segmenter.pretrained
    how = ("set train_segmenter.pretrained to a segmenter.pt written by `dvc repro train_segmenter`, "
           "or empty it to train one")
    network, _ = load_network(source, "segmenter", how)
    return adopt(params, SEGMENTER_SPEC, TrainPaths.default(root, SEGMENTER_SPEC.name), network, source)


def _pretrained_set(argv: list[str]) -> bool:
    """Whether params name a segmenter to adopt; unreadable params go the training way, which reports them."""
    try:
        return bool(load_params(stage_parser(__doc__).parse_args(argv).params).train_segmenter.pretrained)
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _pretrained_set(argv):
        return run_stage(SEGMENTER_SPEC.stage, __doc__, adopt_pretrained, argv)
    return training_stage_main(SEGMENTER_SPEC, MODULE, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
