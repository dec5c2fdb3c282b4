"""The skeleton every DVC stage shares: ``python -m stages.<name> [--params params.yaml] ...``.

:func:`run_stage` parses the command line, loads the params, runs the stage's work and prints its one-line
summary. A :class:`~fashion_edit.errors.FashionEditError` (the message already names the file or key and the
fix) becomes one line on stderr and exit code 1, and so does a disk that is full or read-only; an interrupt
(Ctrl-C, SIGTERM) is one line and exit code 130. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path
from typing import Callable

from fashion_edit.config import Params, load_params
from fashion_edit.errors import FashionEditError
from fashion_edit.layout import PARAMS

# the stage's work: (params, repository root, parsed arguments) -> the summary line printed on success
Work = Callable[[Params, Path, argparse.Namespace], str]
# a write the disk refuses: the fix is the user's (space, permissions), not the code's
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
INTERRUPTED = 130  # the shell's exit code for a process stopped by SIGINT


def failure_line(label: str, exc: BaseException,
                 also_expected: tuple[type[BaseException], ...] = ()) -> tuple[str, int] | None:
    """The one line and exit code a stage prints for an error the user can act on; None for a bug."""
    if isinstance(exc, KeyboardInterrupt):
        return (f"{label}: stopped ({exc or 'Ctrl-C'}); its MLflow run is marked KILLED. Rerun it: a training "
                f"stage resumes from its last checkpoint"), INTERRUPTED
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return (f"{label}: error: cannot write {exc.filename or 'a file'}: {exc.strerror}. Free space or fix the "
                f"folder's permissions, then rerun"), 1
    if isinstance(exc, (FashionEditError, *also_expected)):
        return f"{label}: error: {exc}", 1
    return None


def exit_code_for(label: str, exc: BaseException, also_expected: tuple[type[BaseException], ...] = ()) -> int:
    """Print the one line of an error the user can act on and return the exit code; re-raise a bug."""
    failure = failure_line(label, exc, also_expected)
    if failure is None:
        raise exc
    print(failure[0], file=sys.stderr)
    return failure[1]


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
    except BaseException as exc:
        return exit_code_for(label, exc, also_expected)
    print(f"{label}: {summary}")
    return 0
