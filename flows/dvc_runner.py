"""Run ``dvc`` commands as subprocesses with clear errors, streamed output and a hard timeout.

Why a subprocess and not DVC's Python API: DVC's API is not a stable contract, holds global
state (repo lock, logging config) inside the caller's process, and cannot be killed cleanly
on a timeout.  A subprocess in its own session can: on timeout or cancellation the whole
process group (dvc and the stage commands it started) is interrupted, then killed.

DVC holds one lock per checkout, so two ``dvc`` commands in one checkout fail with
"Unable to acquire lock".  :func:`run_dvc` therefore takes an exclusive file lock in the
checkout first, so commands started from several flow runs or threads wait for each other
instead of failing.
"""
from __future__ import annotations

import collections
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fashion_edit.errors import FashionEditError

# Telemetry tries the network and logs errors on offline machines (DESIGN.md section 9). The one list in
# Python; the Makefile, .ci/run and the Dockerfile set the same (tests/test_flows.py checks them).
QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
# stages/python (every dvc.yaml stage command) runs the stage with this interpreter when set: the
# flows pass their own, so stages never fall back to whatever `python` the worker's PATH has
ENV_STAGE_PYTHON = "FASHION_EDIT_PYTHON"
LOCK_NAME = "fashion-edit-dvc.lock"
INTERRUPT_GRACE_SECONDS = 20.0
# `dvc exp run -n` names become git refs: keep them to a safe character set.
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_OVERRIDE_KEY = re.compile(r"^(?:[\w./-]+:)?[A-Za-z_][\w.\[\]-]*$")


class DvcError(FashionEditError, RuntimeError):
    """A dvc command failed; ``output_tail`` holds its last output lines (the stage's error)."""

    def __init__(self, message: str, command: Sequence[str] = (), returncode: int | None = None,
                 output_tail: str = "") -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.output_tail = output_tail


class DvcTimeout(DvcError):
    """A dvc command ran longer than its timeout and was stopped."""


@dataclass(frozen=True)
class DvcResult:
    command: list[str]
    output: str
    seconds: float


def dvc_command() -> list[str]:
    """The dvc executable next to this interpreter (the project's venv), else ``python -m dvc``."""
    beside = Path(sys.executable).with_name("dvc")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def require_dvc_repo(repo: Path) -> Path:
    """``repo`` resolved; a clear error when it is not a DVC checkout."""
    repo = Path(repo).resolve()
    if not (repo / ".dvc").is_dir():
        raise DvcError(f"{repo}: not a DVC repository (no .dvc folder); pass the repository root "
                       "or run `dvc init` there")
    return repo


@contextmanager
def checkout_lock(repo: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Exclusive lock on one checkout so dvc commands in it run one after another."""
    lock_dir = Path(repo) / ".dvc" / "tmp"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for another dvc command in {repo} to finish (DVC allows one per checkout)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_args(overrides: Sequence[str]) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run``; a malformed override fails naming it."""
    args: list[str] = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not _OVERRIDE_KEY.match(key.strip()) or value == "":
            raise ValueError(f"params override {item!r}: expected KEY=VALUE with a dotted params.yaml key, "
                             "e.g. train_inpainter.steps=600 (an empty string is written KEY='')")
        args += ["-S", f"{key.strip()}={value}"]
    return args


def check_experiment_name(name: str) -> str:
    if not _EXPERIMENT_NAME.match(name):
        raise ValueError(f"experiment name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(it becomes a git ref), at most 100 characters")
    return name


def _stop_group(process: subprocess.Popen) -> None:
    """SIGINT first (dvc then releases its lock and stage commands stop), SIGKILL after a grace."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def run_dvc(args: Sequence[str], repo: Path, *, env: Mapping[str, str] | None = None,
            timeout: float | None = None, on_line: Callable[[str], None] | None = None,
            tail_lines: int = 80) -> DvcResult:
    """Run ``dvc <args>`` in ``repo`` (serialised per checkout); raise :class:`DvcError` on failure.

    ``on_line`` receives every output line as it is printed (stdout and stderr merged), so a
    stage's traceback reaches the caller's log; the error message repeats the last lines.
    """
    repo = require_dvc_repo(repo)
    executable = dvc_command()
    command = executable + [str(a) for a in args]
    shown = "dvc " + shlex.join(command[len(executable):])
    full_env = {ENV_STAGE_PYTHON: sys.executable, **os.environ, **QUIET_ENV, **(env or {})}
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    with checkout_lock(repo, on_wait=on_line):
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=repo, env=full_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1,
                                   start_new_session=True)
        timed_out = threading.Event()
        watchdog = None
        if timeout is not None:
            def _expire() -> None:
                timed_out.set()
                _stop_group(process)
            watchdog = threading.Timer(timeout, _expire)
            watchdog.daemon = True
            watchdog.start()
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                tail.append(line)
                if on_line is not None:
                    on_line(line)
            returncode = process.wait()
        except BaseException:
            # cancelled (Ctrl-C, flow cancellation, task timeout): never leave dvc running
            _stop_group(process)
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
    seconds = time.monotonic() - start
    last = "\n".join(tail)
    if timed_out.is_set():
        raise DvcTimeout(f"`{shown}` in {repo} exceeded its timeout of {timeout:.0f} s and was stopped; "
                         f"training resumes from its last checkpoint on the next run.\n--- last output ---\n{last}",
                         command, returncode, last)
    if returncode != 0:
        raise DvcError(f"`{shown}` failed in {repo} with exit code {returncode}.\n--- last output ---\n{last}",
                       command, returncode, last)
    return DvcResult(command=command, output="\n".join(lines), seconds=seconds)


def repro(repo: Path, targets: Sequence[str] = (), *, force: bool = False, **kwargs) -> DvcResult:
    return run_dvc(["repro", *(["--force"] if force else []), *targets], repo, **kwargs)


def _params_files(repo: Path, overrides: Sequence[str]) -> list[Path]:
    files = {"params.yaml"}
    for item in overrides:
        key = str(item).partition("=")[0]
        if ":" in key:
            files.add(key.split(":", 1)[0])
    return [Path(repo) / f for f in sorted(files)]


def exp_run(repo: Path, name: str, overrides: Sequence[str] = (), targets: Sequence[str] = (), *,
            force: bool = False, **kwargs) -> DvcResult:
    """``dvc exp run -n NAME -S k=v ...``; the params files are left as they were before the run.

    DVC writes the ``-S`` edits into the workspace's params files and keeps them there, whether
    the run succeeds (its results are applied to the workspace) or fails. A one-off override
    must not become the next scheduled run's setting, so the files are restored here either
    way; the experiment itself keeps the override (``dvc exp show``, ``dvc exp apply NAME``).
    """
    args = ["exp", "run", "-n", check_experiment_name(name), *set_args(overrides),
            *(["--force"] if force else []), *targets]
    saved = {path: path.read_bytes() for path in _params_files(repo, overrides) if path.is_file()}
    try:
        return run_dvc(args, repo, **kwargs)
    finally:
        for path, content in saved.items():
            if path.read_bytes() != content:
                path.write_bytes(content)


def pull(repo: Path, remote: str | None = None, **kwargs) -> DvcResult:
    return run_dvc(["pull", *(["--remote", remote] if remote else [])], repo, **kwargs)


def push(repo: Path, remote: str | None = None, **kwargs) -> DvcResult:
    return run_dvc(["push", *(["--remote", remote] if remote else [])], repo, **kwargs)
