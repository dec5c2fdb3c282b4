"""DVC stage `swap_pairs`: each synthetic test figure before and after its lower garment changes category.

    python -m stages.swap_pairs [--params params.yaml]

Reads data/raw and data/prepared/test (params sections data, synthesize, preprocess); writes
data/swap_pairs/pairs.npz (the aligned before/after images and parsings: a skirt becomes trousers, trousers or
shorts a skirt, same texture) and data/swap_pairs/summary.json (pairs, figures considered, skipped by reason).
A photo dataset has no paired truth: its set is empty. See fashion_edit/data/swap_pairs.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.data.swap_pairs import make_swap_pairs
from fashion_edit.layout import PREPARED, RAW, SWAP_PAIRS
from fashion_edit.stage import run_stage


def swap_pairs(params: Params, root: Path, args: argparse.Namespace) -> str:
    summary = make_swap_pairs(params, root / RAW, root / PREPARED, root / SWAP_PAIRS)
    skipped = ", ".join(f"{reason} {n}" for reason, n in summary["skipped"].items()) or "none"
    return (f"{summary['pairs']} pairs of {summary['considered']} test figures (skipped: {skipped}) "
            f"-> {SWAP_PAIRS}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("swap_pairs", __doc__, swap_pairs, argv)


if __name__ == "__main__":
    sys.exit(main())
