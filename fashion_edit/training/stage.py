"""Entry point shared by the training stages: launch mode, process group, training, error reporting.

``python -m stages.train_<name>`` with ``train_<name>.distributed: false`` trains in this process.
With ``distributed: true`` it re-runs itself under ``torchrun --standalone --nproc_per_node N``
(N = ``nproc_per_node``, or one per GPU), unless it already runs under torchrun or another
launcher that sets RANK/LOCAL_RANK/WORLD_SIZE (multi-node: run the same module under the cluster's launcher).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from fashion_edit.config import load_params
from fashion_edit.errors import FashionEditError
from fashion_edit.stage import exit_code_for, stage_parser
from fashion_edit.layout import TrainPaths
from fashion_edit.training.distributed import (default_nproc, launched_by_torchrun, setup_distributed,
                                               teardown_distributed, torchrun_command)
from fashion_edit.training.runner import TrainerSpec, train

# errors whose message already says what went wrong and what to do: no traceback
EXPECTED_ERRORS = (FashionEditError, FileNotFoundError)


def _env_finding(module: str) -> dict[str, str]:
    """This environment plus PYTHONPATH entry of the folder ``module`` was imported from, so the
    torchrun workers import the same code whatever their working directory."""
    root = Path(importlib.util.find_spec(module).origin).parents[module.count(".")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    return env


def training_stage_main(spec: TrainerSpec, module: str, description: str | None, argv: list[str] | None) -> int:
    """``main`` of ``stages.train_<name>``: parse ``--params`` and train (``argv`` is kept for a torchrun relaunch)."""
    argv = sys.argv[1:] if argv is None else argv
    args = stage_parser(description).parse_args(argv)
    return run_training_stage(spec, args.params, module, argv)


def run_training_stage(spec: TrainerSpec, params_path: Path, module: str, argv: list[str]) -> int:
    """Train ``spec`` with the params at ``params_path``; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    try:
        params = load_params(params_path)
        t = spec.train(params)
        if t.distributed and not launched_by_torchrun():
            command = torchrun_command(module, argv, t.nproc_per_node or default_nproc())
            print(f"{spec.stage}: launching {' '.join(command[1:])}", file=sys.stderr)
            return subprocess.call(command, env=_env_finding(module))
        ctx = setup_distributed(t.distributed, spec.stage)
        try:
            outcome = train(params, spec, TrainPaths.default(params_path.resolve().parent, spec.name), ctx)
        finally:
            teardown_distributed()
    except BaseException as exc:
        return exit_code_for(spec.stage, exc, EXPECTED_ERRORS)
    if ctx.is_main:
        resumed = f" (resumed at step {outcome.resumed_from})" if outcome.resumed_from is not None else ""
        print(f"{spec.stage}: {outcome.steps} steps{resumed} in {time.perf_counter() - started:.1f} s on "
              f"{ctx.world_size} process(es); MLflow run {outcome.run_id}")
    return 0
