"""The skeleton every DVC stage shares: ``python -m stages.<name> [--params params.yaml] ...``.

:func:`run_stage` parses the command line, loads the params, runs the stage's work and prints its one-line
summary. A :class:`~fashion_edit.errors.FashionEditError` (the message already names the file or key and the
fix) becomes one line on stderr and exit code 1; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from fashion_edit.config import Params, load_params
from fashion_edit.errors import FashionEditError
from fashion_edit.layout import PARAMS

# the stage's work: (params, repository root, parsed arguments) -> the summary line printed on success
Work = Callable[[Params, Path, argparse.Namespace], str]


def stage_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the stage's module docstring as help and ``--params`` (default params.yaml)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=PARAMS,
                        help="params file; its folder is the repository root (inputs, outputs, MLflow store)")
    return parser


def run_stage(name: str | Callable[[argparse.Namespace], str], description: str | None, work: Work,
              argv: list[str] | None = None, *, arguments: Callable[[argparse.ArgumentParser], None] | None = None,
              also_expected: tuple[type[BaseException], ...] = ()) -> int:
    """Run one stage; returns its exit code. ``name`` may depend on the arguments (``ablations@<variant>``);
    ``also_expected``: built-in errors whose message is clear enough for this stage (e.g. ``OSError``)."""
    parser = stage_parser(description)
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    label = name(args) if callable(name) else name
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = work(load_params(args.params), args.params.resolve().parent, args)
    except (FashionEditError, *also_expected) as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{label}: {summary}")
    return 0
