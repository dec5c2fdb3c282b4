"""DVC stage `category_swap`: the garment-category swap (a skirt becomes trousers, trousers a skirt) against the
synthetic before/after pairs, beside the plain editor on the old garment's hole.

    python -m stages.category_swap [--params params.yaml]

Reads data/swap_pairs/pairs.npz and artifacts/{parser,inpainter,segmenter}; writes reports/category_swap.json
(per method: target-class IoU, ST-LPIPS, L1, texture Gram distance, newly exposed skin's colour error, each with
its standard error; the truth's texture distance as the floor), reports/figures/category_swap.png (rows: before |
swap region | swap edit | plain edit | truth after) and one MLflow run. With no pairs (a photo dataset) the JSON
says so. The measures are documented in fashion_edit/evaluation/category_swap.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.category_swap import run_category_swap
from fashion_edit.stage import run_stage


def _mean(metric: dict) -> str:
    return "n/a" if metric["mean"] is None else f"{metric['mean']:.4g}"


def category_swap(params: Params, root: Path, args: argparse.Namespace) -> str:
    summary = run_category_swap(params, root)
    if not summary["pairs"]:
        return summary.get("note", "no pairs evaluated")
    return f"{summary['pairs']} pairs; " + "; ".join(
        f"{method}: target IoU {_mean(m['target_iou'])}, ST-LPIPS {_mean(m['st_lpips'])}, "
        f"texture {_mean(m['texture'])}" for method, m in summary["methods"].items())


def main(argv: list[str] | None = None) -> int:
    return run_stage("category_swap", __doc__, category_swap, argv, also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
