"""The command line every DVC stage shares: ``python -m stages.<name> [--params params.yaml] ...``.

Not a dependency in dvc.yaml: it only parses arguments, so it cannot change what a stage computes.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def stage_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the stage's module docstring as help and ``--params`` (default params.yaml)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file; its folder is the repository root (inputs, outputs, MLflow store)")
    return parser
