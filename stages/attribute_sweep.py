"""DVC stage `attribute_sweep`: each attribute the parser learned, edited at several strengths on test figures.

    python -m stages.attribute_sweep [--params params.yaml]

Reads data/prepared/test and artifacts/{parser,inpainter,segmenter}; writes
reports/attribute_sweep.json (per attribute: Spearman of requested strength and measured change,
slope, how much the other attributes moved), reports/figures/attribute_sweep.png (measured against
requested), reports/figures/attribute_strips.png (one slider strip per attribute) and one MLflow run.
The measures are documented in fashion_edit/evaluation/attribute_sweep.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.evaluation.attribute_sweep import run_attribute_sweep
from fashion_edit.stage import run_stage


def attribute_sweep(params: Params, root: Path, args: argparse.Namespace) -> str:
    summary = run_attribute_sweep(params, root)
    if not summary["attributes"]:
        return "parser.attributes is empty: nothing to sweep"
    return "; ".join(f"{name}: Spearman {m['spearman']:.2f}, slope {m['slope']:.2f}, others {m['others_ratio']:.2f}"
                     f" ({m['figures']} figures)" for name, m in summary["attributes"].items())


def main(argv: list[str] | None = None) -> int:
    return run_stage("attribute_sweep", __doc__, attribute_sweep, argv, also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
