"""DVC stage `ablations@<variant>` (a foreach over params.yaml `ablations`): train and evaluate one variant.

    python -m stages.ablate --variant no_gan [--params params.yaml]

Reads data/prepared, data/fid_reference and artifacts/{parser,segmenter}; writes checkpoints/ablations/<variant>/
(persistent: resumes after a kill), reports/ablations/<variant>/ (one metrics JSON per seed, curves)
and one MLflow run per seed under the pipeline's parent run. See fashion_edit/evaluation/ablation.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.ablation import run_variant
from fashion_edit.stage import run_stage


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="a key of params.yaml `ablations`")


def ablate(params: Params, root: Path, args: argparse.Namespace) -> str:
    runs = run_variant(params, args.variant, root)
    return "; ".join(f"seed {m['seed']}: FID {m['fid']:.2f}, KID {m['kid']:.4f}, hole PSNR {m['psnr_hole']:.2f}, "
                     f"seg mIoU {m['seg_consistency_miou']:.3f}, {m['train_seconds']:.0f} s" for m in runs)


def main(argv: list[str] | None = None) -> int:
    return run_stage(lambda args: f"ablations@{args.variant}", __doc__, ablate, argv, arguments=arguments,
                     also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
