"""Fault-injection pass: bad input and faults, tried as a new user and an operator would.

    python -m tools.fault_pass [--only PATTERN] [--out reports/fault_pass.md] [--keep] [--baseline DIR]

Exit status 1 when any kind shows a defect. ``--list`` prints the kinds; ``--only`` takes a regular
expression on ``<number> <area> <kind>``.

One tiny project (the test suite's ``tiny_params`` in a ``copy_repo`` copy) is built and run through
``dvc repro`` once: the *baseline*. Every fault kind then works in its own copy of the baseline
(``.git``, the ``.dvc`` cache, ``dvc.lock``, data, checkpoints, artifacts, reports): it applies one
fault, runs the command a user or an operator would run (``dvc repro``, a stage module, the ``edit``
command, the editor pyfunc, a ``mlflow models serve`` request, the retraining flow) with a timeout,
and records the evidence. A copy starts without the baseline's MLflow store unless the kind needs it
(a copied store is refused by the stages on purpose, its experiment keeps the baseline's artifact
location), so the runs of one kind never mix with another's. Every command runs the copy's code:
``PYTHONPATH`` and the working directory are the copy (checked once on the baseline).

Classification (automatic; the evidence column says why). Defects, in this order of harm; the first
one found is the outcome, the others are listed in the evidence:

- ``lost work``: an output that existed before the command (under ``reports/``, ``checkpoints/``,
  ``artifacts/``, ``data/``) is gone afterwards and cannot be restored (a ``cache: false`` or
  ``persist`` DVC output), or the kind's own check found work destroyed (a checkpoint that went back,
  a tracked output rewritten by a command that failed). Kinds marked *unchanged* require every earlier
  output to be untouched (same size and modification time).
- ``silent wrong result``: exit 0 although the fault should have been reported (the kind expects a
  clear error), or the kind's own check found the success wrong (a skip not counted or not listed, a
  file ignored without a word, a picture decoded wrongly, a mixed champion).
- ``hang``: no answer within the kind's timeout (the process group is killed).
- ``deep traceback``: a Python traceback in any output of the kind's commands, including the
  ``stack_trace`` of an HTTP error body: the user gets a stack instead of a sentence.
- ``orphan run``: an MLflow run still RUNNING in the kind's store after every command has ended.
- ``misleading message``: a failure whose message (traceback frames aside) does not name what the
  kind expects it to name (the key, the file, the fix).

Without a defect: ``clear error`` (non-zero exit, a short message naming the problem), ``counted
skip`` (exit 0, the bad item skipped, counted in the summary and listed in the report) or
``handled`` (exit 0 and the kind's own check confirms the result despite the fault, e.g. a resume
after SIGKILL). ``skipped`` (with the reason) where this machine cannot stage the fault; ``harness
error`` where the pass itself broke (no verdict on the project).
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

HARNESS_FILE = Path(__file__).resolve()
REPO_ROOT = HARNESS_FILE.parents[1]
DEFAULT_WORK = Path("/tmp/fault_pass")
DEFAULT_TIMEOUT_S = 300.0
PROTECTED_DIRS = ("reports", "checkpoints", "artifacts", "data")
# outputs whose loss costs nothing: check_params writes the same constant text whenever params.yaml is valid
NOT_WORK = ("reports/params_check.txt",)
TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")  # an atomic writer's temporary file, never an output
TRACEBACK_HEAD = "Traceback (most recent call last)"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # tiny networks; the CPU is shared
# where the `fashion-edit` command and the pyfunc loader live (the library was regrouped by phase; newest first)
CLI_MODULES = ("fashion_edit.serving.cli", "fashion_edit.cli")
PYFUNC_MODULES = ("fashion_edit.serving.pyfunc", "fashion_edit.editor_model")


# ============================================================================ outcomes and records
class Outcome(Enum):
    LOST_WORK = "lost work"
    SILENT_WRONG = "silent wrong result"
    HANG = "hang"
    DEEP_TRACEBACK = "deep traceback"
    ORPHAN_RUN = "orphan run"
    MISLEADING = "misleading message"
    CLEAR_ERROR = "clear error"
    COUNTED_SKIP = "counted skip"
    HANDLED = "handled"
    SKIPPED = "skipped"
    HARNESS_ERROR = "harness error"


DEFECTS = (Outcome.LOST_WORK, Outcome.SILENT_WRONG, Outcome.HANG, Outcome.DEEP_TRACEBACK, Outcome.ORPHAN_RUN,
           Outcome.MISLEADING)  # in order of harm


class HarnessError(RuntimeError):
    """The pass itself failed (a setup step, a missing file); no verdict on the project."""


class Unavailable(RuntimeError):
    """This machine cannot stage the fault; the message says why."""


@dataclass(frozen=True)
class Result:
    """One finished command; ``code`` is None when it was killed at its timeout."""

    command: str
    code: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return f"{self.stdout}\n{self.stderr}"

    @property
    def timed_out(self) -> bool:
        return self.code is None


@dataclass
class Trial:
    """What a kind observed: the judged command (``result``), the user commands before it, and the kind's
    own findings (``wrong``: the success is wrong; ``lost``: work destroyed; ``notes``: evidence)."""

    result: Result
    earlier: list[Result] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def results(self) -> list[Result]:
        return [*self.earlier, self.result]


@dataclass(frozen=True)
class Kind:
    """One kind of bad input or fault. ``mentions``: what a failure message must name (``a|b``: either)."""

    area: str
    name: str
    command: str
    expected: Outcome
    run: Callable[["Sandbox"], Trial]
    mentions: tuple[str, ...] = ()
    store: str = "fresh"        # "fresh": no MLflow store in the copy; "copied": the baseline's store
    unchanged: bool = False     # every earlier output must be untouched afterwards

    @property
    def expectation(self) -> str:
        named = f" naming {' + '.join(m.replace('|', ' or ') for m in self.mentions)}" if self.mentions else ""
        return f"{self.expected.value}{named}{', outputs untouched' if self.unchanged else ''}"


KINDS: list[Kind] = []


def kind(area: str, name: str, command: str, expected: Outcome, *, mentions: tuple[str, ...] = (),
         store: str = "fresh", unchanged: bool = False) -> Callable[[Callable[["Sandbox"], Trial]], Callable]:
    """Register a kind (the decorated function applies the fault and runs the user's command)."""
    def register(run: Callable[["Sandbox"], Trial]) -> Callable[["Sandbox"], Trial]:
        KINDS.append(Kind(area, name, command, expected, run, mentions, store, unchanged))
        return run
    return register


# ============================================================================ running commands
def _display(argv: Sequence[str], root: Path) -> str:
    return shlex.join(argv).replace(f"{root}/", "").replace(str(root), ".").replace(sys.executable, "python")


def run_process(argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float, shown: str) -> Result:
    """Run ``argv`` in its own session; on timeout the whole process group is killed."""
    started = time.monotonic()
    process = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = None
    return Result(shown, code, stdout, stderr, time.monotonic() - started)


@dataclass
class Spawned:
    """A command running in the background (own session), its output going to files."""

    process: subprocess.Popen
    shown: str
    log: Path
    started: float

    def signal(self, signum: int, group: bool = True) -> None:
        if self.process.poll() is None:
            (os.killpg if group else os.kill)(self.process.pid, signum)

    def finish(self, timeout: float = DEFAULT_TIMEOUT_S) -> Result:
        try:
            code: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
            code = None
        out = self.log.with_suffix(".out").read_text(errors="replace")
        err = self.log.with_suffix(".err").read_text(errors="replace")
        return Result(self.shown, code, out, err, time.monotonic() - self.started)


def wait_until(condition: Callable[[], bool], timeout: float, process: Spawned | None = None,
               poll: float = 0.02) -> bool:
    """True once ``condition`` holds; False at the timeout or when ``process`` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.process.poll() is not None:
            return condition()
        time.sleep(poll)
    return False


# ============================================================================ one copy per kind
def base_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test suite's environment (venv first on PATH, telemetry off, no inherited tracking URI) with the
    copy's code first on PYTHONPATH and the stages' interpreter pinned to this one."""
    from tests.conftest import repo_env

    env = repo_env({**THREAD_ENV, "PYTHONPATH": str(root), "FASHION_EDIT_PYTHON": sys.executable,
                    "PREFECT_HOME": str(root / ".prefect_home"),
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"})
    env.pop("VIRTUAL_ENV", None)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Layout:
    """Modules of the code under test that the kinds call: the ``fashion-edit`` command and the module with
    ``load_registered_model``."""

    cli: str = CLI_MODULES[-1]
    pyfunc: str = PYFUNC_MODULES[-1]


@dataclass
class Sandbox:
    """A copy of the baseline where one fault is applied and the user's commands run.

    The first user command (``run``/``spawn``) takes the snapshot of the outputs that later proves
    lost work; ``setup`` commands (the harness staging the fault) do not."""

    root: Path
    baseline: Path
    env: dict[str, str]
    store: Path
    layout: Layout = Layout()
    before: dict[str, tuple[int, int]] | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def p(self, relative: str) -> Path:
        return self.root / relative

    # ------------------------------------------------------------------ commands
    def run(self, *argv: str, timeout: float = DEFAULT_TIMEOUT_S, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Result:
        self._snapshot_once()
        cwd = cwd or self.root
        return run_process(argv, cwd, {**self.env, **(env or {})}, timeout, _display(argv, cwd))

    def stage(self, name: str, *args: str, **options: Any) -> Result:
        return self.run("stages/python", "-m", f"stages.{name}", *args, **options)

    def dvc(self, *args: str, **options: Any) -> Result:
        return self.run("dvc", *args, **options)

    def cli(self, *args: str, **options: Any) -> Result:
        """The ``fashion-edit`` command (``edit``, ``compare``) of the code under test."""
        return self.run("stages/python", "-m", self.layout.cli, *args, **options)

    def spawn(self, *argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Spawned:
        self._snapshot_once()
        cwd = cwd or self.root
        log = self.root / f".fault_pass_{len(list(self.root.glob('.fault_pass_*.out')))}"
        with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
            process = subprocess.Popen(list(argv), cwd=cwd, env={**self.env, **(env or {})}, stdout=out, stderr=err,
                                       start_new_session=True)
        return Spawned(process, _display(argv, cwd), log, time.monotonic())

    def setup(self, *argv: str, env: Mapping[str, str] | None = None) -> Result:
        """A harness step (not judged); HarnessError if it fails."""
        result = run_process(argv, self.root, {**self.env, **(env or {})}, DEFAULT_TIMEOUT_S, _display(argv, self.root))
        if result.code != 0:
            raise HarnessError(f"setup `{result.command}` exited {result.code}: {result.stderr.strip()[-400:]}")
        return result

    def python_setup(self, code: str) -> Result:
        return self.setup(sys.executable, "-c", code)

    def _snapshot_once(self) -> None:
        if self.before is None:
            self.before = snapshot(self.root)

    # ------------------------------------------------------------------ params.yaml
    def read_params(self) -> dict[str, Any]:
        return yaml.safe_load(self.p("params.yaml").read_text())

    def write_params(self, data: Any) -> None:
        self.p("params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def set_params(self, values: Mapping[str, Any]) -> None:
        """Set dotted keys (``train_parser.steps``) in params.yaml."""
        data = self.read_params()
        for dotted, value in values.items():
            *sections, key = dotted.split(".")
            node = data
            for section in sections:
                node = node.setdefault(section, {})
            node[key] = value
        self.write_params(data)

    def drop_param(self, dotted: str) -> None:
        data = self.read_params()
        *sections, key = dotted.split(".")
        node = data
        for section in sections:
            node = node[section]
        del node[key]
        self.write_params(data)


def copy_baseline(baseline: Path, destination: Path, with_store: bool) -> None:
    """The baseline folder (symlinks kept); without its MLflow store unless ``with_store``."""
    def leave_out(folder: str, names: list[str]) -> set[str]:
        if with_store or Path(folder) != baseline:
            return set()
        return {n for n in names if n.startswith("mlflow.db") or n == "mlartifacts"}

    shutil.copytree(baseline, destination, symlinks=True, ignore=leave_out)


# ============================================================================ evidence
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under the protected folders."""
    found = {}
    for top in PROTECTED_DIRS:
        for path in (root / top).rglob("*") if (root / top).is_dir() else ():
            if path.is_file() and not path.is_symlink() and not TEMPORARY.match(path.name):
                stat = path.stat()
                found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def unrestorable_outputs(root: Path) -> list[str]:
    """Patterns of the DVC outputs `dvc checkout` cannot bring back (``cache: false``, ``persist``)."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    patterns = []
    for stage in spec.get("stages", {}).values():
        body = stage.get("do", stage)
        for section in ("outs", "metrics", "plots"):
            for entry in body.get(section) or []:
                for path, flags in (entry.items() if isinstance(entry, dict) else ()):
                    if isinstance(flags, dict) and (flags.get("cache") is False or flags.get("persist")):
                        patterns.append(re.sub(r"\$\{[^}]+\}", "*", path))
    return patterns


def _is_unrestorable(relative: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative, f"{p}/*") for p in patterns)


def lost_outputs(box: Sandbox, unchanged: bool) -> tuple[list[str], list[str]]:
    """(lost-work notes, other notes) from the snapshot before the first user command and now."""
    before, after = box.before or {}, snapshot(box.root)
    patterns = unrestorable_outputs(box.root)
    gone = sorted(set(before) - set(after))
    lost = [p for p in gone if _is_unrestorable(p, patterns) and p not in NOT_WORK]
    restorable = [p for p in gone if p not in lost and p not in NOT_WORK]
    notes = [f"{len(restorable)} cached output file(s) removed (restorable: `dvc checkout`)"] if restorable else []
    problems = [f"gone for good: {_listing(lost)}"] if lost else []
    if unchanged:
        rewritten = sorted(p for p in before if p in after and after[p] != before[p] and p not in NOT_WORK)
        if rewritten:
            problems.append(f"rewritten although the command should change nothing: {_listing(rewritten)}")
    return problems, notes


def _listing(paths: Sequence[str], limit: int = 3) -> str:
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def running_runs(store: Path) -> list[str]:
    """``name (id)`` of every MLflow run left RUNNING in the SQLite store (none if there is no store)."""
    if not store.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT name, run_uuid FROM runs WHERE status = 'RUNNING'").fetchall()
    except sqlite3.Error:
        return []
    return [f"{name} ({run_id[:8]})" for name, run_id in rows]


def run_status(store: Path, run_id: str) -> str | None:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        row = db.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    return row[0] if row else None


def runs_of_stage(store: Path, stage: str) -> list[tuple[str, str]]:
    """(run id, status) of the runs named ``stage``, oldest first."""
    if not store.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT run_uuid, status FROM runs WHERE name = ? ORDER BY start_time",
                              (stage,)).fetchall()
    except sqlite3.Error:  # not created yet, or being migrated by the process under test
        return []


def traceback_frames(text: str) -> int:
    return len(re.findall(r'^\s*File "', text, re.MULTILINE))


def without_frames(text: str) -> str:
    """``text`` without traceback headers and frames (each exception's last line stays)."""
    kept, inside = [], False
    for line in text.splitlines():
        if TRACEBACK_HEAD in line:
            inside = True
            continue
        if inside and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        inside = False
        kept.append(line)
    return "\n".join(kept)


def exception_line(text: str) -> str:
    """The exception line (``Type: message``) of the last traceback in ``text``."""
    lines = text.splitlines()
    head = max(i for i, line in enumerate(lines) if TRACEBACK_HEAD in line)
    after = [line.strip() for line in lines[head + 1:] if line.strip() and not line.startswith((" ", "\t"))]
    return _short(after[0] if after else "?")


def message_line(result: Result) -> str:
    """The line a user reads as the outcome: on failure the stage's ``error:`` line (with its first detail
    line when the message goes on indented), else an error line, else the last line; on success the
    stage's summary line (``<stage>: ...``)."""
    raw = [line for line in without_frames(f"{result.stderr}\n{result.stdout}").splitlines() if line.strip()]
    patterns = (r": error: ", r"\berror\b|HTTP \d{3}", r".") if result.code else (r"^[a-z_]+(@\w+)?: ", r".")
    for pattern in patterns:
        hits = [i for i, line in enumerate(raw) if re.search(pattern, line, re.IGNORECASE)]
        if hits:
            at = hits[0] if pattern != r"." else hits[-1]
            detail = raw[at + 1].strip() if at + 1 < len(raw) and raw[at + 1].startswith((" ", "\t")) else ""
            return _short(f"{raw[at].strip()} {detail}".strip())
    return "(no output)"


def _short(text: str, limit: int = 170) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def unmentioned(mentions: Sequence[str], text: str) -> list[str]:
    lowered = text.lower()
    return [m for m in mentions if not any(alt.lower() in lowered for alt in m.split("|"))]


# ============================================================================ classification
@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    evidence: str
    defects: tuple[Outcome, ...] = ()


def classify(kind: Kind, trial: Trial, lost: Sequence[str], orphans: Sequence[str],
             notes: Sequence[str] = ()) -> Verdict:
    """The outcome of one kind (rules in the module docstring)."""
    final, text = trial.result, "\n".join(r.output for r in trial.results)
    found: list[tuple[Outcome, str]] = []
    if lost or trial.lost:
        found.append((Outcome.LOST_WORK, "; ".join([*lost, *trial.lost])))
    if final.code == 0 and kind.expected is Outcome.CLEAR_ERROR:
        found.append((Outcome.SILENT_WRONG, f"exit 0, fault not reported: `{message_line(final)}`"))
    if trial.wrong:
        found.append((Outcome.SILENT_WRONG, "; ".join(trial.wrong)))
    hung = [r for r in trial.results if r.timed_out]
    if hung:
        found.append((Outcome.HANG, f"`{hung[0].command}` killed after {hung[0].seconds:.0f} s"))
    if TRACEBACK_HEAD in text:
        reads = f" after `{message_line(final)}`" if final.code and TRACEBACK_HEAD not in message_line(final) \
            and message_line(final) != exception_line(text) else ""
        found.append((Outcome.DEEP_TRACEBACK, f"traceback of {traceback_frames(text)} frames ending "
                                              f"`{exception_line(text)}`{reads}"))
    if orphans:
        found.append((Outcome.ORPHAN_RUN, f"left RUNNING: {', '.join(orphans)}"))
    if final.code not in (0, None):
        missing = unmentioned(kind.mentions, without_frames(final.output))
        if missing:
            found.append((Outcome.MISLEADING, f"does not name {' + '.join(missing)}: `{message_line(final)}`"))
    extra = [*trial.notes, *notes]
    if found:
        found.sort(key=lambda item: DEFECTS.index(item[0]))
        evidence = " · ".join(note for _, note in found)
        return Verdict(found[0][0], _with_notes(evidence, extra), tuple(dict.fromkeys(o for o, _ in found)))
    if final.code == 0:
        outcome = Outcome.COUNTED_SKIP if kind.expected is Outcome.COUNTED_SKIP else Outcome.HANDLED
        return Verdict(outcome, _with_notes(f"exit 0 in {final.seconds:.0f} s", extra))
    return Verdict(Outcome.CLEAR_ERROR, _with_notes(f"exit {final.code} in {final.seconds:.0f} s: "
                                                    f"`{message_line(final)}`", extra))


def _with_notes(evidence: str, notes: Sequence[str]) -> str:
    return "; ".join([evidence, *notes])


# ============================================================================ staging faults
STEM = "fig000000"         # the synthetic item a data fault damages
TEST_STEM = "fig000003"    # a test item: the photo of the edit faults
PARSER_CHECKPOINT = "checkpoints/parser/checkpoint.pt"


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    picture = cv2.imread(str(path), flags)
    if picture is None:
        raise HarnessError(f"cannot read {path}")
    return picture


def write_image(path: Path, picture: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise HarnessError(f"cannot write {path}")
    return path


def png_bytes(picture: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:
        raise HarnessError("cannot encode a PNG")
    return encoded.tobytes()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mount(box: Sandbox, folder: Path, *options: str, new: bool = True) -> None:
    """``mount`` with ``options`` at ``folder``; a ``new`` mount is undone when the kind ends. Unavailable
    where this process may not mount."""
    done = subprocess.run(["mount", *options, str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"cannot mount here ({done.stderr.strip()[:120]})")
    if new:
        box.cleanups.append(lambda: subprocess.run(["umount", "-l", str(folder)], capture_output=True))


def small_disk(box: Sandbox, folder: Path, free_kib: int) -> None:
    """Replace ``folder`` by a tmpfs holding the same files with ``free_kib`` KiB to spare."""
    keep = folder.with_name(folder.name + ".before_mount")
    folder.rename(keep)
    folder.mkdir()
    pages = sum(-(-p.stat().st_size // 4096) for p in keep.rglob("*") if p.is_file())  # tmpfs stores 4 KiB pages
    mount(box, folder, "-t", "tmpfs", "-o", f"size={pages * 4 + free_kib}k", "tmpfs")
    shutil.copytree(keep, folder, dirs_exist_ok=True)
    shutil.rmtree(keep)


def read_only(box: Sandbox, folder: Path) -> None:
    mount(box, folder, "--bind", str(folder))
    mount(box, folder, "-o", "remount,bind,ro", new=False)


def torch_module() -> Any:
    import torch  # only the checkpoint kinds need it (seconds to import)

    return torch


def checkpoint_step(path: Path) -> int | None:
    try:
        return int(torch_module().load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - any unreadable file counts as no step
        return None


def same_weights(first: Path, second: Path) -> bool:
    torch = torch_module()
    a, b = (torch.load(path, map_location="cpu", weights_only=True) for path in (first, second))
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def file_version(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``: an atomic replace changes it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def wait_for_rewrites(path: Path, count: int, timeout: float, process: Spawned) -> int:
    """Wait until ``path`` was replaced ``count`` times (or ``process`` ended); returns how many it saw."""
    seen, last = 0, file_version(path)
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline and process.process.poll() is None:
        now = file_version(path)
        if now is not None and now != last:
            seen, last = seen + 1, now
        time.sleep(0.005)
    return seen


# ---------------------------------------------------------------------------- data faults
def folder_dataset(box: Sandbox) -> Path:
    """The synthetic raw data as a user's folder dataset (``userdata/``), selected in params.yaml."""
    data = box.p("userdata")
    for name in ("images", "parsing", "keypoints"):
        shutil.copytree(box.p(f"data/raw/{name}"), data / name)
    shutil.copy2(box.p("data/raw/label_map.yaml"), data / "label_map.yaml")
    box.set_params({"data.source": "folder", "data.root": "userdata", "data.label_map": ""})
    return data


def preprocess_report(box: Sandbox) -> dict[str, Any]:
    path = box.p("reports/preprocess.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def counted_skip(box: Sandbox, result: Result, fragment: str, reason: str) -> Trial:
    """Trial of a preprocess run that must skip the file matching ``fragment`` with ``reason`` (``a|b``: a reason
    starting with either), and say so."""
    trial = Trial(result)
    if result.code != 0:
        return trial
    report = preprocess_report(box)
    entries = [e for e in report.get("skipped_files", []) if fragment in e["file"]]
    if not entries:
        trial.wrong.append(f"{fragment} not listed as skipped (kept {report.get('kept')} of {report.get('read')})")
    elif not entries[0]["reason"].startswith(tuple(reason.split("|"))):
        trial.wrong.append(f"{fragment} skipped as `{entries[0]['reason']}`, expected `{reason}`")
    else:
        trial.notes.append(f"skipped `{entries[0]['reason'][:80]}`")
    if not re.search(r"skipped [1-9]", result.stdout):
        trial.wrong.append(f"the summary does not count the skip: `{message_line(result)}`")
    return trial


def prepared_row(box: Sandbox, stem: str) -> np.ndarray | None:
    """The stored RGB image of ``stem`` in data/prepared, or None if it was not kept."""
    for split in ("train", "val", "test"):
        folder = box.p(f"data/prepared/{split}")
        stems = json.loads((folder / "stems.json").read_text()) if (folder / "stems.json").is_file() else []
        if stem in stems:
            return np.load(folder / "images.npy", mmap_mode="r")[stems.index(stem)]
    return None


def kept_faithfully(box: Sandbox, result: Result, stem: str, expected_rgb: np.ndarray) -> Trial:
    """Trial of a preprocess run that must keep ``stem`` with these pixels (at most one level off)."""
    trial = Trial(result)
    if result.code != 0:
        return trial
    report, row = preprocess_report(box), prepared_row(box, stem)
    if row is None:
        trial.wrong.append(f"{stem} not kept ({report.get('skipped_by_reason')})")
        return trial
    error = float(np.abs(row.astype(int) - expected_rgb.astype(int)).max())
    if error > 1:
        trial.wrong.append(f"{stem} stored with pixels off by up to {error:.0f} levels")
    else:
        trial.notes.append(f"kept {report['kept']} of {report['read']}; {stem} pixels exact (max diff {error:.0f})")
    return trial


def item_rgb(box: Sandbox, stem: str = STEM) -> np.ndarray:
    return cv2.cvtColor(read_image(box.p(f"data/raw/images/{stem}.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------- editor inputs
@dataclass(frozen=True)
class EditFiles:
    image: Path
    mask: Path
    out: Path

    def pictures(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB photo, mask) as arrays."""
        return (cv2.cvtColor(read_image(self.image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
                read_image(self.mask, cv2.IMREAD_GRAYSCALE))


def edit_files(box: Sandbox) -> EditFiles:
    """A test photo of the baseline and a centred rectangular hole."""
    folder = box.p("edit_inputs")
    image = write_image(folder / "photo.png", read_image(box.p(f"data/raw/images/{TEST_STEM}.png"), cv2.IMREAD_COLOR))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 20:44] = 255
    return EditFiles(image, write_image(folder / "mask.png", mask), folder / "edited.png")


def edit(box: Sandbox, files: EditFiles, *options: str, image: Path | None = None, mask: Path | None = None,
         model: Sequence[str] = ("--checkpoint", "artifacts/editor")) -> Result:
    return box.cli("edit", "--image", str(image or files.image),
                   "--mask", str(mask or files.mask), "--out", str(files.out), *model, *options)


def edited_faithfully(result: Result, edited: np.ndarray | None, photo: np.ndarray, hole: np.ndarray) -> Trial:
    """Trial of an edit that must return the photo's size with every pixel outside the hole untouched."""
    trial = Trial(result)
    if result.code != 0:
        return trial
    if edited is None or edited.shape != photo.shape:
        trial.wrong.append(f"edited image {None if edited is None else edited.shape}, photo {photo.shape}")
        return trial
    outside = hole < 128
    changed = int((edited[outside] != photo[outside]).any(axis=-1).sum())
    if changed:
        trial.wrong.append(f"{changed} pixels outside the hole changed")
    else:
        trial.notes.append(f"{edited.shape[1]}x{edited.shape[0]} edit, outside the hole bit-identical")
    return trial


def pyfunc(box: Sandbox, request: Mapping[str, Any], mode: str) -> tuple[Result, np.ndarray | None]:
    """The registered editor (``models:/editor@champion``) fed ``request``: ``predict`` (the Python API) or
    ``serve`` (a JSON body handled as `mlflow models serve` handles /invocations)."""
    folder = box.p("pyfunc")
    folder.mkdir(exist_ok=True)
    request_file, result_file = folder / f"{mode}.json", folder / f"{mode}.npy"
    request_file.write_text(json.dumps(request))
    result = box.run(sys.executable, str(HARNESS_FILE), "--pyfunc", str(request_file), "--mode", mode,
                     "--result", str(result_file), "--store", f"sqlite:///{box.store}", "--loader", box.layout.pyfunc)
    return result, (np.load(result_file) if result.code == 0 and result_file.is_file() else None)


# ============================================================================ the kinds
CLEAR, SKIP, HANDLED = Outcome.CLEAR_ERROR, Outcome.COUNTED_SKIP, Outcome.HANDLED


# ---------------------------------------------------------------------------- params
@kind("params", "missing section `train_inpainter`", "dvc repro train_inpainter", CLEAR,
      mentions=("train_inpainter",), unchanged=True)
def _missing_section(box: Sandbox) -> Trial:
    box.set_params({"train_inpainter.steps": 8})  # a change DVC must act on
    box.drop_param("train_inpainter")
    return Trial(box.dvc("repro", "train_inpainter"))


def _missing_key_kind(key: str, stage: str, *args: str) -> None:
    """A key of one section deleted; the stage that reads the section runs (no silent code default)."""
    @kind("params", f"missing key `{key}`", shlex.join(["stages/python", "-m", f"stages.{stage}", *args]), CLEAR,
          mentions=(key,), unchanged=True)
    def run(box: Sandbox) -> Trial:
        box.drop_param(key)
        return Trial(box.stage(stage, *args))


for _key, _stage, *_args in (("data.source", "preprocess"), ("synthesize.count", "synthesize"),
                             ("preprocess.height", "preprocess"), ("masks.max_strokes", "train_parser"),
                             ("parser.base_channels", "train_parser"), ("parser_loss.ce", "train_parser"),
                             ("inpainter.norm", "train_inpainter"), ("inpainter_loss.hole", "train_inpainter"),
                             ("vgg.blocks", "train_inpainter"), ("train_parser.steps", "train_parser"),
                             ("train_inpainter.batch_size", "train_inpainter"),
                             ("train_segmenter.steps", "train_segmenter"), ("registry.noise_z", "register"),
                             ("mlflow.experiment", "train_parser"), ("ablation.steps", "ablate", "--variant", "full")):
    _missing_key_kind(_key, _stage, *_args)


@kind("params", "misspelt key `preprocess.heigth` (typo)", "dvc repro preprocess", CLEAR,
      mentions=("heigth",), unchanged=True)
def _typo_preprocess(box: Sandbox) -> Trial:
    data = box.read_params()
    data["preprocess"]["heigth"] = data["preprocess"].pop("height")
    box.write_params(data)
    return Trial(box.dvc("repro", "preprocess"))


@kind("params", "misspelt key `train_inpainter.stesp`, whole pipeline", "dvc repro", CLEAR,
      mentions=("stesp",), unchanged=True)
def _typo_pipeline(box: Sandbox) -> Trial:
    data = box.read_params()
    data["train_inpainter"]["stesp"] = data["train_inpainter"].pop("steps")
    box.write_params(data)
    return Trial(box.dvc("repro"))


@kind("params", "unknown section `trainer:`", "stages/python -m stages.train_parser", CLEAR,
      mentions=("trainer",), unchanged=True)
def _unknown_section(box: Sandbox) -> Trial:
    box.set_params({"trainer.steps": 10})
    return Trial(box.stage("train_parser"))


@kind("params", "wrong type `train_parser.steps: ten`", "dvc repro train_parser", CLEAR,
      mentions=("train_parser.steps",), unchanged=True)
def _wrong_type(box: Sandbox) -> Trial:
    box.set_params({"train_parser.steps": "ten"})
    return Trial(box.dvc("repro", "train_parser"))


@kind("params", "wrong value `vgg.bf16: maybe`", "stages/python -m stages.train_inpainter", CLEAR,
      mentions=("vgg.bf16",), unchanged=True)
def _wrong_literal(box: Sandbox) -> Trial:
    box.set_params({"vgg.bf16": "maybe"})
    return Trial(box.stage("train_inpainter"))


@kind("params", "negative `train_inpainter.steps: -5`", "stages/python -m stages.train_inpainter", CLEAR,
      mentions=("train_inpainter.steps",), unchanged=True)
def _negative_steps(box: Sandbox) -> Trial:
    box.set_params({"train_inpainter.steps": -5})
    return Trial(box.stage("train_inpainter"))


@kind("params", "split val + test >= 1 (0.5 + 0.5)", "dvc repro preprocess", CLEAR,
      mentions=("preprocess.split",), unchanged=True)
def _split_sum(box: Sandbox) -> Trial:
    box.set_params({"preprocess.split.val": 0.5, "preprocess.split.test": 0.5})
    return Trial(box.dvc("repro", "preprocess"))


@kind("params", "`masks.min_width` > `masks.max_width`", "stages/python -m stages.preprocess", CLEAR,
      mentions=("min_width",), unchanged=True)
def _mask_order(box: Sandbox) -> Trial:
    box.set_params({"masks.min_width": 50.0, "masks.max_width": 10.0})
    return Trial(box.stage("preprocess"))


@kind("params", "`ablations` written as a list", "dvc repro", CLEAR, mentions=("ablations",), unchanged=True)
def _ablations_list(box: Sandbox) -> Trial:
    box.set_params({"ablations": [{"full": {}}, {"no_gan": {"inpainter_loss": {"gan": 0.0}}}]})
    return Trial(box.dvc("repro"))


@kind("params", "`ablation.variants` names an undefined variant", "dvc repro", CLEAR, mentions=("nope",),
      unchanged=True)
def _unknown_variant(box: Sandbox) -> Trial:
    box.set_params({"ablation.variants": ["full", "nope"]})
    return Trial(box.dvc("repro"))


@kind("params", "invalid YAML (unclosed bracket)", "dvc repro", CLEAR, mentions=("params.yaml",), unchanged=True)
def _invalid_yaml(box: Sandbox) -> Trial:
    text = box.p("params.yaml").read_text()
    box.p("params.yaml").write_text(text.replace("synthesize:\n", "synthesize: [\n", 1))
    return Trial(box.dvc("repro"))


@kind("params", "empty params.yaml", "dvc repro", CLEAR, mentions=("params.yaml|ablation.variants",),
      unchanged=True)
def _empty_params_dvc(box: Sandbox) -> Trial:
    box.p("params.yaml").write_text("")
    return Trial(box.dvc("repro"))


@kind("params", "empty params.yaml", "stages/python -m stages.train_parser", CLEAR, mentions=("missing",),
      unchanged=True)
def _empty_params_stage(box: Sandbox) -> Trial:
    box.p("params.yaml").write_text("")
    return Trial(box.stage("train_parser"))


@kind("params", "params.yaml deleted", "stages/python -m stages.train_parser", CLEAR, mentions=("params.yaml",),
      unchanged=True)
def _no_params(box: Sandbox) -> Trial:
    box.p("params.yaml").unlink()
    return Trial(box.stage("train_parser"))


@kind("params", "`vgg.weights: torchvision_vgg19` without `vgg.path`", "stages/python -m stages.train_inpainter",
      CLEAR, mentions=("vgg",))
def _vgg_without_path(box: Sandbox) -> Trial:
    box.set_params({"vgg.weights": "torchvision_vgg19", "vgg.path": ""})
    return Trial(box.stage("train_inpainter"))


@kind("params", "`data.root` set while `data.source` stays synthetic", "dvc repro preprocess", CLEAR,
      mentions=("data.root|data.source",))
def _root_ignored(box: Sandbox) -> Trial:
    folder_dataset(box)
    box.set_params({"data.source": "synthetic"})  # the user forgot the source: only the root is set
    return Trial(box.dvc("repro", "preprocess"))


@kind("params", "`train_segmenter.pretrained` names a missing file", "stages/python -m stages.train_segmenter",
      CLEAR, mentions=("no_such_segmenter.pt",))
def _missing_segmenter_file(box: Sandbox) -> Trial:
    box.set_params({"train_segmenter.pretrained": "no_such_segmenter.pt"})
    return Trial(box.stage("train_segmenter"))


@kind("params", "`FASHION_EDIT_PIPELINE_RUN` with spaces and `;`", "stages/python -m stages.train_parser", CLEAR,
      mentions=("FASHION_EDIT_PIPELINE_RUN",), unchanged=True)
def _unsafe_group(box: Sandbox) -> Trial:
    return Trial(box.stage("train_parser", env={"FASHION_EDIT_PIPELINE_RUN": "nightly run; rm -rf x"}))


# ---------------------------------------------------------------------------- data
def _preprocess_after(box: Sandbox, damage: Callable[[Path], None]) -> Result:
    damage(folder_dataset(box))
    return box.stage("preprocess")


@kind("data", "`data.root` does not exist", "stages/python -m stages.preprocess", CLEAR,
      mentions=("does not exist",), unchanged=True)
def _root_missing(box: Sandbox) -> Trial:
    box.set_params({"data.source": "folder", "data.root": "no_such_dataset"})
    return Trial(box.stage("preprocess"))


@kind("data", "`data.root` is a file (an unpacked .zip)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("not a folder",), unchanged=True)
def _root_is_file(box: Sandbox) -> Trial:
    box.p("dataset.zip").write_bytes(b"PK\x03\x04" + bytes(100))
    box.set_params({"data.source": "folder", "data.root": "dataset.zip"})
    return Trial(box.stage("preprocess"))


@kind("data", "empty dataset folder (images/, parsing/ empty)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("no items|no usable|empty",))
def _empty_folder(box: Sandbox) -> Trial:
    def empty(data: Path) -> None:
        for name in ("images", "parsing", "keypoints"):
            shutil.rmtree(data / name)
            (data / name).mkdir()
    return Trial(_preprocess_after(box, empty))


@kind("data", "corrupt PNG (valid header, scrambled data)", "stages/python -m stages.preprocess", SKIP)
def _corrupt_png(box: Sandbox) -> Trial:
    def scramble(data: Path) -> None:
        path = data / f"images/{STEM}.png"
        raw = bytearray(path.read_bytes())
        raw[60:] = np.random.default_rng(0).integers(0, 256, len(raw) - 60, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(raw))
    return counted_skip(box, _preprocess_after(box, scramble), f"{STEM}.png", "unreadable image")


@kind("data", "truncated PNG (first 60 % of the file)", "stages/python -m stages.preprocess", SKIP)
def _truncated_png(box: Sandbox) -> Trial:
    def truncate(data: Path) -> None:
        path = data / f"images/{STEM}.png"
        raw = path.read_bytes()
        path.write_bytes(raw[: int(len(raw) * 0.6)])
    return counted_skip(box, _preprocess_after(box, truncate), f"{STEM}.png", "unreadable image")


@kind("data", "zero-byte image file", "stages/python -m stages.preprocess", SKIP)
def _zero_byte(box: Sandbox) -> Trial:
    return counted_skip(box, _preprocess_after(box, lambda d: (d / f"images/{STEM}.png").write_bytes(b"")),
                        f"{STEM}.png", "empty file")


@kind("data", "grayscale photo", "stages/python -m stages.preprocess", HANDLED)
def _grayscale(box: Sandbox) -> Trial:
    grey = cv2.cvtColor(read_image(box.p(f"data/raw/images/{STEM}.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    result = _preprocess_after(box, lambda d: write_image(d / f"images/{STEM}.png", grey))
    return kept_faithfully(box, result, STEM, np.repeat(grey[..., None], 3, axis=2))


@kind("data", "RGBA photo", "stages/python -m stages.preprocess", HANDLED)
def _rgba(box: Sandbox) -> Trial:
    bgr = read_image(box.p(f"data/raw/images/{STEM}.png"), cv2.IMREAD_COLOR)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)])
    result = _preprocess_after(box, lambda d: write_image(d / f"images/{STEM}.png", bgra))
    return kept_faithfully(box, result, STEM, item_rgb(box))


@kind("data", "16-bit PNG photo", "stages/python -m stages.preprocess", HANDLED)
def _sixteen_bit(box: Sandbox) -> Trial:
    bgr16 = read_image(box.p(f"data/raw/images/{STEM}.png"), cv2.IMREAD_COLOR).astype(np.uint16) * 257
    result = _preprocess_after(box, lambda d: write_image(d / f"images/{STEM}.png", bgr16))
    return kept_faithfully(box, result, STEM, item_rgb(box))


@kind("data", "photo without a parsing map", "stages/python -m stages.preprocess", SKIP)
def _no_parsing(box: Sandbox) -> Trial:
    return counted_skip(box, _preprocess_after(box, lambda d: (d / f"parsing/{STEM}.png").unlink()),
                        STEM, "missing file")


@kind("data", "parsing map with an unknown label id (200)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("200",))
def _unknown_label(box: Sandbox) -> Trial:
    def add_id(data: Path) -> None:
        parsing = read_image(data / f"parsing/{STEM}.png")
        parsing[:4, :4] = 200
        write_image(data / f"parsing/{STEM}.png", parsing)
    return Trial(_preprocess_after(box, add_id))


@kind("data", "label map lacks an id (5, upper-clothes)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("id 5",))
def _label_map_gap(box: Sandbox) -> Trial:
    def drop(data: Path) -> None:
        spec = yaml.safe_load((data / "label_map.yaml").read_text())
        del spec["map"][5]
        (data / "label_map.yaml").write_text(yaml.safe_dump(spec))
    return Trial(_preprocess_after(box, drop))


@kind("data", "label map is invalid YAML", "stages/python -m stages.preprocess", CLEAR,
      mentions=("label_map.yaml",))
def _label_map_yaml(box: Sandbox) -> Trial:
    return Trial(_preprocess_after(box, lambda d: (d / "label_map.yaml").write_text("map: {0: 0, 1: [\n")))


@kind("data", "label map sends an id to 25 (no LIP-20 class)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("25",))
def _label_map_target(box: Sandbox) -> Trial:
    def retarget(data: Path) -> None:
        spec = yaml.safe_load((data / "label_map.yaml").read_text())
        spec["map"][19] = 25
        (data / "label_map.yaml").write_text(yaml.safe_dump(spec))
    return Trial(_preprocess_after(box, retarget))


@kind("data", "image and parsing of different sizes (64x64 vs 32x32)", "stages/python -m stages.preprocess", SKIP)
def _size_mismatch(box: Sandbox) -> Trial:
    def shrink(data: Path) -> None:
        parsing = read_image(data / f"parsing/{STEM}.png")
        write_image(data / f"parsing/{STEM}.png", cv2.resize(parsing, (32, 32), interpolation=cv2.INTER_NEAREST))
    return counted_skip(box, _preprocess_after(box, shrink), STEM, "size mismatch")


def _resized_item(data: Path, width: int, height: int) -> None:
    for folder, interpolation in (("images", cv2.INTER_AREA), ("parsing", cv2.INTER_NEAREST)):
        picture = read_image(data / f"{folder}/{STEM}.png")
        write_image(data / f"{folder}/{STEM}.png", cv2.resize(picture, (width, height), interpolation=interpolation))


@kind("data", "tiny 8x8 photo", "stages/python -m stages.preprocess", SKIP)
def _tiny(box: Sandbox) -> Trial:
    return counted_skip(box, _preprocess_after(box, lambda d: _resized_item(d, 8, 8)), STEM, "too small")


@kind("data", "extreme aspect ratio (512x16 photo)", "stages/python -m stages.preprocess", SKIP)
def _aspect(box: Sandbox) -> Trial:
    trial = counted_skip(box, _preprocess_after(box, lambda d: _resized_item(d, 512, 16)), STEM, "")
    row = prepared_row(box, STEM)
    if row is not None:
        content = int((row.astype(int) - row[0, 0].astype(int)).any(axis=(1, 2)).sum())
        trial.wrong = [f"{STEM} kept without a word: fitted to 64x64 it keeps {content} rows of picture"]
    return trial


@kind("data", "duplicate names (fig000000.png and fig000000.jpg)", "stages/python -m stages.preprocess", SKIP)
def _duplicate(box: Sandbox) -> Trial:
    other = read_image(box.p("data/raw/images/fig000001.png"), cv2.IMREAD_COLOR)
    result = _preprocess_after(box, lambda d: write_image(d / f"images/{STEM}.jpg", other))
    trial = counted_skip(box, result, f"{STEM}.jpg", "duplicate|ambiguous")
    row = prepared_row(box, STEM)
    if row is not None and np.abs(row.astype(int) - item_rgb(box).astype(int)).mean() > 8:
        trial.wrong.append(f"{STEM} was kept with the photo of {STEM}.jpg (another picture) and the parsing "
                           f"of {STEM}.png; {STEM}.png was ignored")
    return trial


@kind("data", "non-image file (notes.txt) in images/", "stages/python -m stages.preprocess", HANDLED)
def _notes_file(box: Sandbox) -> Trial:
    result = _preprocess_after(box, lambda d: (d / "images/notes.txt").write_text("shot on 2024-05-01\n"))
    return kept_faithfully(box, result, STEM, item_rgb(box))


@kind("data", "text file named .png", "stages/python -m stages.preprocess", SKIP)
def _text_as_png(box: Sandbox) -> Trial:
    return counted_skip(box, _preprocess_after(box, lambda d: (d / f"images/{STEM}.png").write_text("not a png\n")),
                        f"{STEM}.png", "unreadable image")


@kind("data", "unreadable photo (dangling symlink; chmod 000 cannot deny root)", "stages/python -m stages.preprocess",
      SKIP)
def _unreadable(box: Sandbox) -> Trial:
    def dangle(data: Path) -> None:
        (data / f"images/{STEM}.png").unlink()
        (data / f"images/{STEM}.png").symlink_to("/nonexistent/photo.png")
    return counted_skip(box, _preprocess_after(box, dangle), f"{STEM}.png", "missing file")


@kind("data", "parsing map saved as a colour image", "stages/python -m stages.preprocess", SKIP)
def _colour_parsing(box: Sandbox) -> Trial:
    colour = read_image(box.p(f"data/raw/images/{STEM}.png"), cv2.IMREAD_COLOR)
    return counted_skip(box, _preprocess_after(box, lambda d: write_image(d / f"parsing/{STEM}.png", colour)),
                        STEM, "bad parsing")


@kind("data", "malformed keypoints JSON", "stages/python -m stages.preprocess", SKIP)
def _bad_keypoints(box: Sandbox) -> Trial:
    return counted_skip(box, _preprocess_after(box, lambda d: (d / f"keypoints/{STEM}.json").write_text("{oops")),
                        f"{STEM}.json", "bad keypoints")


def _corrupt_every_image(data: Path) -> None:
    for path in (data / "images").iterdir():
        path.write_text("not an image\n")


@kind("data", "every photo corrupt", "stages/python -m stages.preprocess", CLEAR, mentions=("no usable items",))
def _all_corrupt(box: Sandbox) -> Trial:
    return Trial(_preprocess_after(box, _corrupt_every_image))


@kind("data", "every photo corrupt, through DVC", "dvc repro preprocess", CLEAR, mentions=("no usable items",))
def _all_corrupt_dvc(box: Sandbox) -> Trial:
    _corrupt_every_image(folder_dataset(box))
    return Trial(box.dvc("repro", "preprocess"))


@kind("data", "dataset of 2 items (a split ends up empty)", "stages/python -m stages.preprocess", CLEAR,
      mentions=("split",))
def _two_items(box: Sandbox) -> Trial:
    def keep_two(data: Path) -> None:
        for folder in ("images", "parsing", "keypoints"):
            for path in sorted((data / folder).iterdir())[2:]:
                path.unlink()
    return Trial(_preprocess_after(box, keep_two))


@kind("data", "full disk while preprocess writes data/prepared", "stages/python -m stages.preprocess", CLEAR,
      mentions=("space|disk",))
def _full_disk_preprocess(box: Sandbox) -> Trial:
    manifest = box.p("data/prepared/manifest.json").read_bytes()
    small_disk(box, box.p("data"), free_kib=256)
    trial = Trial(box.stage("preprocess"))
    if box.p("data/prepared/manifest.json").read_bytes() != manifest:
        trial.lost.append("data/prepared was replaced by a failed run")
    return trial


# ---------------------------------------------------------------------------- checkpoints
def _more_parser_steps(box: Sandbox, steps: int, every: int = 2) -> None:
    box.set_params({"train_parser.steps": steps, "train_parser.checkpoint_every": every,
                    "train_parser.log_every": every, "train_parser.sample_every": max(steps // 2, 1)})


def _losses_steps(box: Sandbox, name: str = "parser") -> list[int]:
    path = box.p(f"reports/train_{name}/losses.csv")
    lines = path.read_text().splitlines()[1:] if path.is_file() else []
    return [int(line.split(",", 1)[0]) for line in lines]


def _resumed_training(box: Sandbox, trial: Trial, steps: int, killed_at: int) -> Trial:
    """Checks of a training rerun after a kill: resumed (not restarted), every step once, final step reached."""
    if trial.result.code != 0:
        return trial
    final = checkpoint_step(box.p(PARSER_CHECKPOINT))
    logged = _losses_steps(box)
    if "resuming from" not in trial.result.output:
        trial.wrong.append("the rerun did not say it resumed")
    if final != steps or logged != list(range(1, steps + 1)):
        trial.wrong.append(f"final checkpoint step {final}, loss curve steps {logged[:2]}..{logged[-2:]}")
    else:
        trial.notes.append(f"killed at checkpoint step {killed_at}, resumed to {steps}, curve steps 1..{steps} once")
    return trial


@kind("checkpoints", "SIGKILL (dvc and stage) mid-training, then rerun", "dvc repro train_parser (twice)", HANDLED)
def _sigkill_resume(box: Sandbox) -> Trial:
    steps, checkpoint = 300, box.p(PARSER_CHECKPOINT)
    _more_parser_steps(box, steps)
    twin = box.root.with_name(box.root.name + "-uninterrupted")  # the same start, trained without a kill
    shutil.copytree(box.root, twin, symlinks=True)
    box.cleanups.append(lambda: shutil.rmtree(twin, ignore_errors=True))
    victim = box.spawn("dvc", "repro", "train_parser")
    wait_for_rewrites(checkpoint, 4, 240, victim)
    victim.signal(signal.SIGKILL)
    killed = victim.finish(30)
    killed_at = checkpoint_step(checkpoint) or 0
    if not 6 < killed_at < steps:
        raise HarnessError(f"the kill did not land mid-training (checkpoint step {killed_at})")
    trial = _resumed_training(box, Trial(box.dvc("repro", "train_parser"), earlier=[killed]), steps, killed_at)
    reference = run_process(["dvc", "repro", "train_parser"], twin, base_env(twin), DEFAULT_TIMEOUT_S, "reference")
    weights = "artifacts/parser/generator.pt"
    if trial.result.code == 0 and reference.code == 0:
        if same_weights(box.p(weights), twin / weights):
            trial.notes.append("final weights bit-identical to an uninterrupted run")
        else:
            trial.wrong.append("final weights differ from an uninterrupted run's")
    return trial


@kind("checkpoints", "SIGTERM mid-training (a CI or Prefect cancellation)", "stages/python -m stages.train_parser",
      CLEAR, mentions=("SIGTERM|interrupt|killed|terminated",))
def _sigterm(box: Sandbox) -> Trial:
    steps, checkpoint = 300, box.p(PARSER_CHECKPOINT)
    _more_parser_steps(box, steps)
    victim = box.spawn("stages/python", "-m", "stages.train_parser")
    wait_for_rewrites(checkpoint, 2, 240, victim)
    victim.signal(signal.SIGTERM, group=False)
    trial = Trial(victim.finish(60))
    statuses = [status for _, status in runs_of_stage(box.store, "train_parser")]
    step = checkpoint_step(checkpoint)
    trial.notes.append(f"MLflow run {statuses[-1] if statuses else 'missing'}; checkpoint loads at step {step}")
    if statuses and statuses[-1] != "KILLED":
        trial.wrong.append(f"the stage's MLflow run ended {statuses[-1]}, not KILLED")
    if step is None:
        trial.lost.append("the checkpoint no longer loads")
    return trial


def _checkpoint_fault(box: Sandbox, damage: Callable[[Path], None]) -> Trial:
    damage(box.p(PARSER_CHECKPOINT))
    return Trial(box.stage("train_parser"))


@kind("checkpoints", "corrupt checkpoint (random bytes)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("checkpoint.pt",))
def _corrupt_checkpoint(box: Sandbox) -> Trial:
    return _checkpoint_fault(box, lambda p: p.write_bytes(np.random.default_rng(1).bytes(p.stat().st_size)))


@kind("checkpoints", "truncated checkpoint (first half)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("checkpoint.pt",))
def _truncated_checkpoint(box: Sandbox) -> Trial:
    return _checkpoint_fault(box, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]))


@kind("checkpoints", "foreign pickle (not weights-only) as checkpoint", "stages/python -m stages.train_parser", CLEAR,
      mentions=("checkpoint.pt",))
def _pickle_checkpoint(box: Sandbox) -> Trial:
    return _checkpoint_fault(box, lambda p: torch_module().save(argparse.Namespace(step=6, note="pickled"), p))


@kind("checkpoints", "weights file that is not a training checkpoint", "stages/python -m stages.train_parser", CLEAR,
      mentions=("not a training checkpoint",))
def _foreign_checkpoint(box: Sandbox) -> Trial:
    return _checkpoint_fault(box, lambda p: torch_module().save({"weights": torch_module().zeros(3)}, p))


@kind("checkpoints", "checkpoint from other params (parser.base_channels 8 -> 12)",
      "stages/python -m stages.train_parser", HANDLED)
def _other_params(box: Sandbox) -> Trial:
    box.set_params({"parser.base_channels": 12})
    trial = Trial(box.stage("train_parser"))
    if trial.result.code == 0:
        if "other params" not in trial.result.output:
            trial.wrong.append("retrained from scratch without saying why")
        info = json.loads(box.p("artifacts/parser/info.json").read_text())
        trial.notes.append(f"said `other params/data`, trained {info['steps']} steps from scratch")
    return trial


@kind("checkpoints", "checkpoint whose tensors no longer fit the network", "stages/python -m stages.train_parser",
      HANDLED)
def _misfit(box: Sandbox) -> Trial:
    torch = torch_module()
    path = box.p(PARSER_CHECKPOINT)
    state = torch.load(path, map_location="cpu", weights_only=True)
    first = next(iter(state["modules"]["generator"]))
    state["modules"]["generator"][first] = torch.zeros(3, 3)
    torch.save(state, path)
    trial = Trial(box.stage("train_parser"))
    if trial.result.code == 0 and "does not fit" not in trial.result.output:
        trial.wrong.append("a misfit checkpoint was not named")
    elif trial.result.code == 0:
        trial.notes.append("said `does not fit the network`, trained from scratch")
    return trial


@kind("checkpoints", "stale temporary file from a killed write", "stages/python -m stages.train_parser", HANDLED)
def _stale_temp(box: Sandbox) -> Trial:
    stale = box.p("checkpoints/parser/.checkpoint.pt.tmp-99999")
    stale.write_bytes(b"half a checkpoint")
    _more_parser_steps(box, 8)
    trial = Trial(box.stage("train_parser"))
    if trial.result.code == 0:
        step = checkpoint_step(box.p(PARSER_CHECKPOINT))
        if stale.exists() or step != 8:
            trial.wrong.append(f"temp file still there: {stale.exists()}, checkpoint step {step}")
        else:
            trial.notes.append("temp file removed, resumed 6 -> 8")
    return trial


@kind("checkpoints", "full disk at a checkpoint write (tmpfs)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("checkpoint.pt", "intact"))
def _full_disk_checkpoint(box: Sandbox) -> Trial:
    small_disk(box, box.p("checkpoints/parser"), free_kib=200)
    _more_parser_steps(box, 12)
    trial = Trial(box.stage("train_parser"))
    step = checkpoint_step(box.p(PARSER_CHECKPOINT))
    if step != 6:
        trial.lost.append(f"previous checkpoint (step 6) now loads as step {step}")
    else:
        trial.notes.append("previous checkpoint intact (step 6)")
    return trial


@kind("checkpoints", "steps lowered below the checkpoint's (6 -> 4)", "stages/python -m stages.train_parser",
      HANDLED)
def _fewer_steps(box: Sandbox) -> Trial:
    _more_parser_steps(box, 4)
    trial = Trial(box.stage("train_parser"))
    if trial.result.code == 0:
        step = checkpoint_step(box.p(PARSER_CHECKPOINT))
        said = "beyond" in trial.result.output
        if step != 4 or not said:
            trial.wrong.append(f"checkpoint step {step}, explained: {said}")
        else:
            trial.notes.append("said the checkpoint is beyond the steps, trained 4 from scratch")
    return trial


@kind("checkpoints", "corrupt segmenter checkpoint", "stages/python -m stages.train_segmenter", CLEAR,
      mentions=("checkpoint",))
def _corrupt_segmenter(box: Sandbox) -> Trial:
    box.set_params({"train_segmenter.steps": 8})  # a resume must read the checkpoint
    path = next(box.p("checkpoints/segmenter").glob("*.pt"))
    path.write_bytes(np.random.default_rng(2).bytes(4096))
    return Trial(box.stage("train_segmenter"))


# ---------------------------------------------------------------------------- tracking
def _unreachable(port: int) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}


@kind("tracking", "unreachable tracking server", "MLFLOW_TRACKING_URI=http://127.0.0.1:<closed> stages/python -m "
      "stages.train_parser", CLEAR, mentions=("unreachable",), unchanged=True)
def _server_down(box: Sandbox) -> Trial:
    trial = Trial(box.stage("train_parser", env=_unreachable(closed_port())))
    trial.notes.append(f"{trial.result.seconds:.1f} s")
    return trial


@kind("tracking", "unreachable tracking server, after a steps change", "MLFLOW_TRACKING_URI=<closed> dvc repro "
      "train_parser", CLEAR, mentions=("unreachable",))
def _server_down_dvc(box: Sandbox) -> Trial:
    _more_parser_steps(box, 8)
    return Trial(box.dvc("repro", "train_parser", env=_unreachable(closed_port())))


@kind("tracking", "server: /health answers, API returns 503", "MLFLOW_TRACKING_URI=<503 server> stages/python -m "
      "stages.train_parser", CLEAR, mentions=("503",), unchanged=True)
def _server_503(box: Sandbox) -> Trial:
    from tests.conftest import tracking_server_stub

    with tracking_server_stub(503) as uri:  # /health answers, the API fails: its database is down
        trial = Trial(box.stage("train_parser", env={"MLFLOW_TRACKING_URI": uri}, timeout=360))
    trial.notes.append(f"{trial.result.seconds:.1f} s")
    return trial


@kind("tracking", "read-only tracking store (mount --bind -o ro)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("read-only",), unchanged=True)
def _read_only_store(box: Sandbox) -> Trial:
    store = box.p("store")
    store.mkdir()
    shutil.copy2(box.baseline / "mlflow.db", store / "mlflow.db")
    box.set_params({"mlflow.tracking_uri": f"sqlite:///{store / 'mlflow.db'}"})
    read_only(box, store)
    box.store = store / "mlflow.db"
    return Trial(box.stage("train_parser"))


@kind("tracking", "checkout copied with its mlflow.db", "stages/python -m stages.train_parser", CLEAR,
      mentions=("copied or moved",), store="copied", unchanged=True)
def _copied_store(box: Sandbox) -> Trial:
    return Trial(box.stage("train_parser"))


@kind("tracking", "experiment deleted in the store", "stages/python -m stages.train_parser", CLEAR,
      mentions=("deleted", "restore"), unchanged=True)
def _deleted_experiment(box: Sandbox) -> Trial:
    location = box.p("mlartifacts").as_uri()
    box.python_setup("from mlflow.tracking import MlflowClient\n"
                     f"c = MlflowClient('sqlite:///{box.store}')\n"
                     f"c.delete_experiment(c.create_experiment('fashion-edit', artifact_location='{location}'))")
    return Trial(box.stage("train_parser"))


@kind("tracking", "tracking URI with a misspelt scheme (`sqllite:///`)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("sqllite",), unchanged=True)
def _bad_scheme(box: Sandbox) -> Trial:
    box.set_params({"mlflow.tracking_uri": f"sqllite:///{box.p('mlflow.db')}"})
    return Trial(box.stage("train_parser"))


@kind("tracking", "tracking store in a folder that does not exist yet", "stages/python -m stages.train_parser",
      HANDLED)
def _store_folder_missing(box: Sandbox) -> Trial:
    box.store = box.p("new_folder/mlflow.db")
    box.set_params({"mlflow.tracking_uri": f"sqlite:///{box.store}"})
    trial = Trial(box.stage("train_parser"))
    runs = runs_of_stage(box.store, "train_parser")
    if trial.result.code == 0:
        if runs and runs[-1][1] == "FINISHED":
            trial.notes.append("the store was created in the new folder; the run is FINISHED there")
        else:
            trial.wrong.append(f"exit 0 but the named store holds {runs}")
    return trial


@kind("tracking", "empty experiment name (`mlflow.experiment: ''`)", "stages/python -m stages.train_parser", CLEAR,
      mentions=("experiment",), unchanged=True)
def _empty_experiment(box: Sandbox) -> Trial:
    box.set_params({"mlflow.experiment": ""})
    return Trial(box.stage("train_parser"))


@kind("tracking", "register with an unreachable server", "MLFLOW_TRACKING_URI=<closed> stages/python -m "
      "stages.register", CLEAR, mentions=("unreachable",), unchanged=True)
def _register_server_down(box: Sandbox) -> Trial:
    return Trial(box.stage("register", env=_unreachable(closed_port())))


def _better_evaluation(path: Path) -> None:
    """reports/evaluate.json of a clearly better model (so a promotion is at stake)."""
    metrics = json.loads(path.read_text())
    metrics.update(fid=metrics["fid"] * 0.3, kid=metrics["kid"] - 1.0, st_lpips=metrics["st_lpips"] * 0.3,
                   psnr_hole=metrics["psnr_hole"] + 10.0, parser_miou=min(1.0, metrics["parser_miou"] + 0.2))
    path.write_text(json.dumps(metrics, indent=2))


def _champions(store: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'").fetchall()
    return {name: str(version) for name, version in rows}


@kind("tracking", "two `register` runs at once (two checkouts, one store)", "stages/python -m stages.register (x2)",
      HANDLED)
def _concurrent_register(box: Sandbox) -> Trial:
    shared = box.p("shared")
    shared.mkdir()
    box.store = shared / "mlflow.db"
    box.python_setup("from mlflow.tracking import MlflowClient\n"
                     f"MlflowClient('sqlite:///{box.store}').create_experiment('fashion-edit', "
                     f"artifact_location='{(shared / 'mlartifacts').as_uri()}')")
    box.set_params({"mlflow.tracking_uri": f"sqlite:///{box.store}"})
    _better_evaluation(box.p("reports/evaluate.json"))
    twin = box.root.with_name(box.root.name + "-twin")
    shutil.copytree(box.root, twin, symlinks=True)
    box.cleanups.append(lambda: shutil.rmtree(twin, ignore_errors=True))
    runs = [box.spawn("stages/python", "-m", "stages.register"),
            box.spawn("stages/python", "-m", "stages.register", cwd=twin, env={"PYTHONPATH": str(twin)})]
    twin_result, result = runs[1].finish(600), runs[0].finish(600)
    trial = Trial(result, earlier=[twin_result])
    if result.code or twin_result.code:
        return trial
    reports = [json.loads((root / "reports/register.json").read_text()) for root in (box.root, twin)]
    champions = _champions(box.store)
    owners = [r["versions"] for r in reports if all(champions.get(n) == v for n, v in r["versions"].items())]
    promoted = [r["promoted"] for r in reports]
    if len(owners) != 1:
        trial.wrong.append(f"mixed champion {champions}; runs registered {[r['versions'] for r in reports]}")
    elif any(r["champion"] != champions for r in reports):
        trial.wrong.append(f"a register.json names another champion than the registry's {champions}")
    elif promoted.count(True) != 1:
        trial.wrong.append(f"promoted flags {promoted}")
    else:
        trial.notes.append(f"one consistent champion {champions}; promoted {promoted}; both reports agree")
    return trial


@kind("tracking", "SIGKILL before the first checkpoint, then rerun", "stages/python -m stages.train_parser (twice)",
      HANDLED)
def _orphan_closed(box: Sandbox) -> Trial:
    shutil.rmtree(box.p("checkpoints/parser"))
    _more_parser_steps(box, 40, every=1000)
    victim = box.spawn("stages/python", "-m", "stages.train_parser")
    if not wait_until(lambda: any(s == "RUNNING" for _, s in runs_of_stage(box.store, "train_parser")), 120, victim):
        raise HarnessError("the stage never opened its MLflow run")
    victim.signal(signal.SIGKILL)
    killed = victim.finish(30)
    orphan = runs_of_stage(box.store, "train_parser")[-1][0]
    trial = Trial(box.stage("train_parser"), earlier=[killed])
    status = run_status(box.store, orphan)
    if status == "KILLED":
        trial.notes.append("the rerun closed the killed run as KILLED")
    return trial


@kind("tracking", "SIGKILL mid-evaluate, then rerun", "stages/python -m stages.evaluate (twice)", HANDLED)
def _evaluate_killed(box: Sandbox) -> Trial:
    victim = box.spawn("stages/python", "-m", "stages.evaluate")
    if not wait_until(lambda: any(s == "RUNNING" for _, s in runs_of_stage(box.store, "evaluate")), 180, victim):
        raise HarnessError("evaluate never opened its MLflow run")
    victim.signal(signal.SIGKILL)
    killed = victim.finish(30)
    orphan = runs_of_stage(box.store, "evaluate")[-1][0]
    trial = Trial(box.stage("evaluate"), earlier=[killed])
    if run_status(box.store, orphan) == "KILLED":
        trial.notes.append("the rerun closed the killed run as KILLED")
    return trial


# ---------------------------------------------------------------------------- editor (command line)
@kind("editor", "control: a valid edit through the registry's champion", "fashion-edit edit", HANDLED,
      store="copied")
def _edit_control(box: Sandbox) -> Trial:
    files = edit_files(box)
    result = edit(box, files, model=())
    edited = cv2.cvtColor(read_image(files.out, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if files.out.is_file() else None
    return edited_faithfully(result, edited, *files.pictures())


@kind("editor", "mask file missing", "fashion-edit edit --checkpoint artifacts/editor", CLEAR,
      mentions=("--mask", "not found"))
def _edit_no_mask(box: Sandbox) -> Trial:
    files = edit_files(box)
    return Trial(edit(box, files, mask=files.mask.with_name("nomask.png")))


def _edit_with_mask(box: Sandbox, mask: np.ndarray) -> Trial:
    files = edit_files(box)
    return Trial(edit(box, files, mask=write_image(files.mask.with_name("bad_mask.png"), mask)))


@kind("editor", "mask of another size (32x32 for a 64x64 photo)", "fashion-edit edit --checkpoint ...",
      CLEAR, mentions=("mask", "32x32"))
def _edit_mask_size(box: Sandbox) -> Trial:
    return _edit_with_mask(box, np.full((32, 32), 255, np.uint8))


@kind("editor", "mask all zeros (no hole)", "fashion-edit edit --checkpoint ...", CLEAR,
      mentions=("mask",))
def _edit_mask_empty(box: Sandbox) -> Trial:
    return _edit_with_mask(box, np.zeros((64, 64), np.uint8))


@kind("editor", "mask all ones (whole photo erased)", "fashion-edit edit --checkpoint ...", CLEAR,
      mentions=("mask",))
def _edit_mask_full(box: Sandbox) -> Trial:
    return _edit_with_mask(box, np.full((64, 64), 255, np.uint8))


@kind("editor", "16-bit mask PNG (wrong dtype)", "fashion-edit edit --checkpoint ...", CLEAR,
      mentions=("mask", "uint16"))
def _edit_mask_dtype(box: Sandbox) -> Trial:
    mask = np.zeros((64, 64), np.uint16)
    mask[16:40, 20:44] = 65535
    return _edit_with_mask(box, mask)


@kind("editor", "photo is not an image (text file named .png)", "fashion-edit edit --checkpoint ...",
      CLEAR, mentions=("image", "decode"))
def _edit_not_png(box: Sandbox) -> Trial:
    files = edit_files(box)
    fake = files.image.with_name("fake.png")
    fake.write_text("this is not a photo\n")
    return Trial(edit(box, files, image=fake))


@kind("editor", "photo of 4x4 pixels", "fashion-edit edit --checkpoint ...", CLEAR,
      mentions=("too small",))
def _edit_tiny(box: Sandbox) -> Trial:
    files = edit_files(box)
    tiny = write_image(files.image.with_name("tiny.png"), np.full((4, 4, 3), 120, np.uint8))
    return Trial(edit(box, files, image=tiny, mask=write_image(files.mask.with_name("tiny_mask.png"),
                                                                np.full((4, 4), 255, np.uint8))))


@kind("editor", "grayscale photo", "fashion-edit edit --checkpoint ...", HANDLED)
def _edit_grey(box: Sandbox) -> Trial:
    files = edit_files(box)
    grey = cv2.cvtColor(read_image(files.image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    grey_file = write_image(files.image.with_name("grey.png"), grey)
    result = edit(box, files, image=grey_file)
    edited = cv2.cvtColor(read_image(files.out, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if files.out.is_file() else None
    return edited_faithfully(result, edited, np.repeat(grey[..., None], 3, axis=2), files.pictures()[1])


@kind("editor", "unsupported output type (`--out edited.gif`)", "fashion-edit edit --checkpoint ...",
      CLEAR, mentions=("--out",))
def _edit_gif(box: Sandbox) -> Trial:
    files = edit_files(box)
    return Trial(edit(box, EditFiles(files.image, files.mask, files.out.with_suffix(".gif"))))


@kind("editor", "model folder missing (`--checkpoint no_such_editor`)", "fashion-edit edit", CLEAR,
      mentions=("no_such_editor",))
def _edit_no_model(box: Sandbox) -> Trial:
    return Trial(edit(box, edit_files(box), model=("--checkpoint", "no_such_editor")))


@kind("editor", "corrupted model weights (inpainter.pt)", "fashion-edit edit --checkpoint "
      "artifacts/editor", CLEAR, mentions=("inpainter.pt",))
def _edit_corrupt_weights(box: Sandbox) -> Trial:
    weights = box.p("artifacts/editor/inpainter.pt")
    weights.write_bytes(np.random.default_rng(3).bytes(weights.stat().st_size))
    return Trial(edit(box, edit_files(box)))


@kind("editor", "parser.pt describes another architecture than its weights", "fashion-edit edit --checkpoint "
      "artifacts/editor", CLEAR, mentions=("parser.pt",))
def _edit_architecture(box: Sandbox) -> Trial:
    import torch

    weights = box.p("artifacts/editor/parser.pt")
    saved = torch.load(weights, weights_only=True)
    saved["architecture"]["base_channels"] = 12
    torch.save(saved, weights)
    return Trial(edit(box, edit_files(box)))


@kind("editor", "no MLflow store yet (default model)", "fashion-edit edit", CLEAR,
      mentions=("mlflow.db", "--checkpoint"))
def _edit_no_store(box: Sandbox) -> Trial:
    return Trial(edit(box, edit_files(box), model=()))


@kind("editor", "unknown model alias (`models:/editor@nope`)", "fashion-edit edit --model ...", CLEAR,
      mentions=("editor@nope",), store="copied")
def _edit_alias(box: Sandbox) -> Trial:
    return Trial(edit(box, edit_files(box), model=("--model", "models:/editor@nope")))


# ---------------------------------------------------------------------------- editor (pyfunc, REST)
def _lists_request(box: Sandbox, **changes: Any) -> dict[str, Any]:
    photo, mask = edit_files(box).pictures()
    return {"input": {"image": photo.tolist(), "mask": mask.tolist(), **changes}}


@kind("pyfunc", "nested lists (a decoded JSON request)", "model.predict({image: [[...]], mask: [[...]]})", HANDLED,
      store="copied")
def _pyfunc_lists(box: Sandbox) -> Trial:
    result, edited = pyfunc(box, _lists_request(box), "predict")
    return edited_faithfully(result, edited, *edit_files(box).pictures())


@kind("pyfunc", "base64 PNG strings in a REST request", "POST /invocations {inputs: {image: <b64>, mask: <b64>}}",
      HANDLED, store="copied")
def _serve_base64(box: Sandbox) -> Trial:
    files = edit_files(box)
    request = {"inputs": {"image": base64.b64encode(files.image.read_bytes()).decode(),
                          "mask": base64.b64encode(files.mask.read_bytes()).decode()}, "params": {"seed": 3}}
    result, edited = pyfunc(box, request, "serve")
    return edited_faithfully(result, edited, *files.pictures())


@kind("pyfunc", "`dataframe_records` with nested lists in a REST request", "POST /invocations {dataframe_records: "
      "[...]}", HANDLED, store="copied")
def _serve_records(box: Sandbox) -> Trial:
    photo, mask = edit_files(box).pictures()
    result, edited = pyfunc(box, {"dataframe_records": [{"image": photo.tolist(), "mask": mask.tolist()}]}, "serve")
    return edited_faithfully(result, edited, photo, mask)


@kind("pyfunc", "unknown key (`msk`)", "model.predict({image, msk})", CLEAR, mentions=("msk",), store="copied")
def _pyfunc_unknown_key(box: Sandbox) -> Trial:
    request = _lists_request(box)
    request["input"]["msk"] = request["input"].pop("mask")
    return Trial(pyfunc(box, request, "predict")[0])


@kind("pyfunc", "mask missing", "model.predict({image})", CLEAR, mentions=("mask",), store="copied")
def _pyfunc_no_mask(box: Sandbox) -> Trial:
    request = _lists_request(box)
    del request["input"]["mask"]
    return Trial(pyfunc(box, request, "predict")[0])


@kind("pyfunc", "float mask (0.0 / 1.0 values)", "model.predict({image, mask: float lists})", CLEAR,
      mentions=("mask", "float"), store="copied")
def _pyfunc_float_mask(box: Sandbox) -> Trial:
    mask = (edit_files(box).pictures()[1] > 0).astype(float)
    return Trial(pyfunc(box, _lists_request(box, mask=mask.tolist()), "predict")[0])


@kind("pyfunc", "ragged nested lists", "model.predict({image: ragged rows, mask})", CLEAR,
      mentions=("image", "unequal"), store="copied")
def _pyfunc_ragged(box: Sandbox) -> Trial:
    request = _lists_request(box)
    request["input"]["image"][5] = request["input"]["image"][5][:40]
    return Trial(pyfunc(box, request, "predict")[0])


@kind("pyfunc", "base64 text that is not an image", "model.predict({image: 'data:image/png;base64,...', mask})",
      CLEAR, mentions=("image", "decode"), store="copied")
def _pyfunc_bad_base64(box: Sandbox) -> Trial:
    bogus = "data:image/png;base64," + base64.b64encode(b"definitely not a png " * 8).decode()
    return Trial(pyfunc(box, _lists_request(box, image=bogus), "predict")[0])


@kind("pyfunc", "input is a bare string", "model.predict('photo.png')", CLEAR, mentions=("mapping",), store="copied")
def _pyfunc_string(box: Sandbox) -> Trial:
    return Trial(pyfunc(box, {"input": "photo.png"}, "predict")[0])


@kind("pyfunc", "REST request without a mask", "POST /invocations {inputs: {image: <b64>}}", CLEAR,
      mentions=("mask",), store="copied")
def _serve_no_mask(box: Sandbox) -> Trial:
    image = base64.b64encode(edit_files(box).image.read_bytes()).decode()
    return Trial(pyfunc(box, {"inputs": {"image": image}}, "serve")[0])


# ---------------------------------------------------------------------------- evaluation and report
def _missing_before_evaluate_kind(name: str, folder: str, mention: str) -> None:
    """An input folder of `evaluate` deleted; the stage must say which one and what produces it."""
    @kind("evaluation", name, "stages/python -m stages.evaluate", CLEAR,
          mentions=(mention,), unchanged=True)
    def run(box: Sandbox) -> Trial:
        shutil.rmtree(box.p(folder))
        return Trial(box.stage("evaluate"))


for _name, _folder, _mention in (("inpainter weights missing before evaluate", "artifacts/inpainter", "train_inpainter"),
                                 ("segmenter weights missing before evaluate", "artifacts/segmenter", "segmenter"),
                                 ("FID reference missing", "data/fid_reference", "fid_reference")):
    _missing_before_evaluate_kind(_name, _folder, _mention)


@kind("evaluation", "FID reference of other test images (stale)", "stages/python -m stages.evaluate", CLEAR,
      mentions=("fid_reference",), unchanged=True)
def _stale_fid_reference(box: Sandbox) -> Trial:
    images = box.p("data/prepared/test/images.npy")
    rows = np.load(images)
    rows[0] = 255 - rows[0]
    np.save(images, rows)
    return Trial(box.stage("evaluate"))


@kind("evaluation", "FID reference file truncated (half copied)", "stages/python -m stages.evaluate", CLEAR,
      mentions=("test.npz",), unchanged=True)
def _corrupt_fid_reference(box: Sandbox) -> Trial:
    reference = box.p("data/fid_reference/test.npz")
    reference.write_bytes(reference.read_bytes()[: reference.stat().st_size // 2])
    return Trial(box.stage("evaluate"))


@kind("evaluation", "parser weights of other params (parser.base_channels 8 -> 12)", "stages/python -m "
      "stages.evaluate", CLEAR, mentions=("generator.pt", "params|train_parser"), unchanged=True)
def _evaluate_other_params(box: Sandbox) -> Trial:
    box.set_params({"parser.base_channels": 12})
    return Trial(box.stage("evaluate"))


@kind("evaluation", "register before evaluate (no reports/evaluate.json)", "stages/python -m stages.register", CLEAR,
      mentions=("evaluate",))
def _register_without_evaluation(box: Sandbox) -> Trial:
    box.p("reports/evaluate.json").unlink()
    return Trial(box.stage("register"))


@kind("evaluation", "test split of one image", "dvc repro fid_reference", CLEAR, mentions=("at least 2",))
def _one_test_image(box: Sandbox) -> Trial:
    box.set_params({"preprocess.split.test": 0.02})
    return Trial(box.dvc("repro", "fid_reference"))


@kind("evaluation", "report without the ablation results", "stages/python -m stages.report", CLEAR,
      mentions=("ablations",))
def _report_without_ablations(box: Sandbox) -> Trial:
    shutil.rmtree(box.p("reports/ablations/full"))
    return Trial(box.stage("report"))


@kind("evaluation", "`compare` before any evaluation", "fashion-edit compare", CLEAR,
      mentions=("evaluate",), store="copied")
def _compare_without_evaluation(box: Sandbox) -> Trial:
    box.p("reports/evaluate.json").unlink()
    return Trial(box.cli("compare"))


@kind("evaluation", "`compare` with no registered champion", "fashion-edit compare", CLEAR,
      mentions=("register",))
def _compare_without_champion(box: Sandbox) -> Trial:
    return Trial(box.cli("compare"))


# ---------------------------------------------------------------------------- orchestration
@kind("orchestration", "second `dvc repro` while one runs in the same checkout", "dvc repro train_parser (twice at "
      "once)", CLEAR, mentions=("lock",))
def _dvc_lock(box: Sandbox) -> Trial:
    _more_parser_steps(box, 80)
    first = box.spawn("dvc", "repro", "train_parser")
    if wait_for_rewrites(box.p(PARSER_CHECKPOINT), 1, 180, first) < 1:
        raise HarnessError("the first dvc repro never trained")
    second = box.dvc("repro", "train_parser")
    first_result = first.finish()
    trial = Trial(second, earlier=[first_result])
    if first_result.code != 0:
        trial.wrong.append(f"the run holding the lock failed: `{message_line(first_result)}`")
    return trial


def _flow(box: Sandbox, *args: str) -> Result:
    return box.run("stages/python", "-m", "flows.retrain", "run", *args, timeout=300)


@kind("orchestration", "flow with a malformed override (`-S train_inpainter.steps`)", "python -m flows.retrain run "
      "-S train_inpainter.steps", CLEAR, mentions=("train_inpainter.steps",), unchanged=True)
def _flow_malformed(box: Sandbox) -> Trial:
    return Trial(_flow(box, "-S", "train_inpainter.steps"))


@kind("orchestration", "flow with an override of an unknown key (`stepz`)", "python -m flows.retrain run -S "
      "train_inpainter.stepz=5", CLEAR, mentions=("stepz",), unchanged=True)
def _flow_unknown_key(box: Sandbox) -> Trial:
    return Trial(_flow(box, "-S", "train_inpainter.stepz=5"))


@kind("orchestration", "flow pointed at a folder that is not a DVC checkout", "python -m flows.retrain run --repo "
      "<empty folder>", CLEAR, mentions=("dvc",), unchanged=True)
def _flow_not_a_repo(box: Sandbox) -> Trial:
    outside = box.root.with_name(box.root.name + "-empty")
    outside.mkdir()
    box.cleanups.append(lambda: shutil.rmtree(outside, ignore_errors=True))
    return Trial(_flow(box, "--repo", str(outside)))


# ============================================================================ the pyfunc driver
# by name (the model loads its own copy of the code); EditRequestError: an EditInputError that MLflow serving reports
PROJECT_INPUT_ERRORS = ("EditInputError", "EditRequestError", "EditorModelError", "NetworkFileError")


def drive_pyfunc(request_file: Path, mode: str, result_file: Path, store_uri: str, loader: str) -> int:
    """Load ``models:/editor@champion`` from ``store_uri`` and feed it the request; the process a user's client
    would be. ``predict``: the Python API (a project input error prints its one line, anything else raises);
    ``serve``: MLflow's /invocations handler, printing the HTTP error body a client would receive."""
    import importlib

    model = importlib.import_module(loader).load_registered_model("models:/editor@champion", store_uri)
    body = request_file.read_text()
    if mode == "serve":
        edited = _serve(model, body)
    else:
        request = json.loads(body)
        try:
            edited = model.predict(request["input"], params=request.get("params"))
        except Exception as exc:
            if type(exc).__name__ not in PROJECT_INPUT_ERRORS:
                raise
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if edited is None:
        return 1
    np.save(result_file, np.asarray(edited, dtype=np.uint8))
    print(f"edited {np.asarray(edited).shape}")
    return 0


def _serve(model: Any, body: str) -> np.ndarray | None:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import invocations

    try:
        response = invocations(body, "application/json", model, model.metadata.get_input_schema())
    except MlflowException as exc:
        payload = json.loads(exc.serialize_as_json())
        print(f"HTTP {exc.get_http_status_code()}: {payload.get('message')}", file=sys.stderr)
        if payload.get("stack_trace"):
            print(f"stack_trace in the response body:\n{payload['stack_trace']}", file=sys.stderr)
        return None
    if response.status != 200:
        print(f"HTTP {response.status}: {response.response}", file=sys.stderr)
        return None
    predictions = np.asarray(json.loads(response.response)["predictions"])
    return predictions[0] if predictions.ndim == 4 else predictions


# ============================================================================ the pass
@dataclass(frozen=True)
class Row:
    number: int
    kind: Kind
    verdict: Verdict
    seconds: float
    tail: str


def build_baseline(folder: Path) -> tuple[Path, float]:
    """The tiny project after one ``dvc repro``; (folder, seconds)."""
    from tests.conftest import copy_repo, tiny_params

    shutil.rmtree(folder, ignore_errors=True)
    copy_repo(folder, tiny_params())
    # DVC's per-checkout state goes beside the copies (not /var/tmp/dvc), so it leaves with them
    config = run_process(["dvc", "config", "--local", "core.site_cache_dir", str(folder.parent / "dvc_site")], folder,
                         base_env(folder), 120, "dvc config")
    if config.code != 0:
        raise HarnessError(f"dvc config: {config.stderr.strip()}")
    started = time.monotonic()
    result = run_process(["dvc", "repro"], folder, base_env(folder), 1800, "dvc repro")
    if result.code != 0:
        raise HarnessError(f"baseline `dvc repro` exited {result.code}: {result.stderr[-2000:]}")
    return folder, time.monotonic() - started


def code_under_test(baseline: Path) -> str:
    """Where ``fashion_edit`` is imported from in a copy (must be the copy, not the editable install)."""
    shown = run_process([sys.executable, "-c", "import fashion_edit; print(fashion_edit.__file__)"], baseline,
                        base_env(baseline), 60, "").stdout.strip()
    if not shown.startswith(str(baseline)):
        raise HarnessError(f"the copy imports fashion_edit from {shown}, not from {baseline}")
    return shown


_FIND_LAYOUT = """
import importlib, sys
def found(name, attribute=None):
    try:
        module = importlib.import_module(name)
    except ImportError:
        return False
    return attribute is None or hasattr(module, attribute)
print(next(m for m in sys.argv[1].split(",") if found(m)), next(m for m in sys.argv[2].split(",")
      if found(m, "load_registered_model")))
"""


def project_layout(baseline: Path) -> Layout:
    """The modules the kinds call, as the code under test lays them out."""
    done = run_process([sys.executable, "-c", _FIND_LAYOUT, ",".join(CLI_MODULES), ",".join(PYFUNC_MODULES)],
                       baseline, base_env(baseline), 120, "")
    if done.code != 0:
        raise HarnessError(f"cannot find the edit command or the pyfunc loader: {done.stderr.strip()[-300:]}")
    cli, pyfunc = done.stdout.split()
    return Layout(cli, pyfunc)


def run_kind(number: int, item: Kind, baseline: Path, work: Path, keep: bool, layout: Layout) -> Row:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{item.area} {item.name}".lower()).strip("-")[:60]
    root = work / f"{number:03d}-{slug}"
    shutil.rmtree(root, ignore_errors=True)
    box = Sandbox(root, baseline, base_env(root), root / "mlflow.db", layout)
    started = time.monotonic()
    try:
        copy_baseline(baseline, root, with_store=item.store == "copied")
        trial = _masked(item.run(box), root, baseline)
        lost, notes = lost_outputs(box, item.unchanged)
        verdict = classify(item, trial, lost, running_runs(box.store), notes)
        tail = _tail(trial.result)
    except Unavailable as reason:
        verdict, tail = Verdict(Outcome.SKIPPED, str(reason)), ""
    except Exception as exc:  # noqa: BLE001 - one broken kind must not stop the pass
        verdict, tail = Verdict(Outcome.HARNESS_ERROR, _short(f"{type(exc).__name__}: {exc}")), traceback.format_exc()
    finally:
        for undo in reversed(box.cleanups):
            undo()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return Row(number, item, replace(verdict, evidence=_placeholders(verdict.evidence, root, baseline)),
               time.monotonic() - started, _placeholders(tail, root, baseline))


def _masked(trial: Trial, root: Path, baseline: Path) -> Trial:
    """``trial`` with the copy's and the baseline's paths as placeholders, before any text is shortened."""
    def mask(result: Result) -> Result:
        return replace(result, stdout=_placeholders(result.stdout, root, baseline),
                       stderr=_placeholders(result.stderr, root, baseline))

    def lines(texts: list[str]) -> list[str]:
        return [_placeholders(text, root, baseline) for text in texts]

    return Trial(mask(trial.result), [mask(r) for r in trial.earlier], lines(trial.wrong), lines(trial.lost),
                 lines(trial.notes))


def _placeholders(text: str, root: Path, baseline: Path) -> str:
    """Paths of the throw-away copies as ``<copy>`` and ``<baseline>`` (they are gone after the pass)."""
    return text.replace(str(root), "<copy>").replace(str(baseline), "<baseline>")


def _tail(result: Result, lines: int = 8) -> str:
    text = "\n".join(line for line in f"{result.stdout}\n{result.stderr}".splitlines() if line.strip())
    return "\n".join(text.splitlines()[-lines:])


# ============================================================================ the report
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(rows: Sequence[Row], header: Mapping[str, str]) -> str:
    counts = Counter(row.verdict.outcome for row in rows)
    defect_rows = [row for row in rows if row.verdict.outcome in DEFECTS]
    lines = ["# Fault pass", "", *[f"- {key}: {value}" for key, value in header.items()], "",
             "## Summary", "",
             f"{len(rows)} kinds: " + ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o]) + ".",
             f"Defects: {len(defect_rows)} kinds" + (" (" + ", ".join(
                 f"{sum(o in r.verdict.defects for r in rows)} {o.value}" for o in DEFECTS
                 if any(o in r.verdict.defects for r in rows)) + ")" if defect_rows else "") + ".",
             "", "Outcome classes and rules: `tools/fault_pass.py` (module docstring).", "",
             "| # | area | kind | command | expected | outcome | evidence |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        outcome = row.verdict.outcome.value
        also = [o.value for o in row.verdict.defects[1:]]
        cells = [str(row.number), row.kind.area, row.kind.name, f"`{row.kind.command}`", row.kind.expectation,
                 f"**{outcome}**" + (f" (+ {', '.join(also)})" if also else "") if row.verdict.outcome in DEFECTS
                 else outcome, _short(row.verdict.evidence, 400)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Output tails", ""]
    for row in rows:
        lines += [f"### {row.number}. {row.kind.area}: {row.kind.name} ({row.seconds:.0f} s)", "",
                  "```", row.tail or "(none)", "```", ""]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return f"{os.cpu_count()} cores, {model}, load {os.getloadavg()[0]:.1f} at start"


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def selected(pattern: str | None) -> list[tuple[int, Kind]]:
    numbered = list(enumerate(KINDS, start=1))
    if not pattern:
        return numbered
    rule = re.compile(pattern, re.IGNORECASE)
    return [(n, k) for n, k in numbered if rule.search(f"{n} {k.area} {k.name}")]


def run_pass(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.baseline:
        baseline, build_seconds = args.baseline.resolve(), 0.0
    else:
        print("building the baseline (tiny params, dvc repro)...", flush=True)
        baseline, build_seconds = build_baseline(args.work / "baseline")
    origin, layout = code_under_test(baseline), project_layout(baseline)
    print(f"baseline ready in {build_seconds:.0f} s; code under test: {origin}; {layout}", flush=True)
    rows = []
    for number, item in selected(args.only):
        row = run_kind(number, item, baseline, args.work, args.keep, layout)
        rows.append(row)
        print(f"{number:3d} {row.seconds:5.0f} s  {row.verdict.outcome.value:20s} {item.area}: {item.name}", flush=True)
    if not args.baseline and not args.keep:
        shutil.rmtree(baseline, ignore_errors=True)
        shutil.rmtree(args.work / "dvc_site", ignore_errors=True)
    wall = time.monotonic() - started
    header = {"date": datetime.now().strftime("%Y-%m-%d %H:%M"), "commit under test": _commit(),
              "machine": _machine(), "command": "python -m tools.fault_pass " + shlex.join(sys.argv[1:]),
              "wall time": f"{wall / 60:.1f} min (baseline `dvc repro` {build_seconds:.0f} s)",
              "code under test": f"each copy's own (checked on the baseline: `fashion_edit` from {origin})"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report_markdown(rows, header))
    print(f"{len(rows)} kinds in {wall / 60:.1f} min -> {args.out}")
    return 1 if any(row.verdict.outcome in DEFECTS for row in rows) else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.fault_pass", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="regular expression on '<number> <area> <kind>' (default: every kind)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "fault_pass.md")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"copies go here (default {DEFAULT_WORK})")
    parser.add_argument("--baseline", type=Path, help="reuse a baseline built before (development)")
    parser.add_argument("--keep", action="store_true", help="keep every copy (and the baseline)")
    parser.add_argument("--list", action="store_true", help="list the kinds and exit")
    parser.add_argument("--pyfunc", type=Path, help=argparse.SUPPRESS)   # the driver run inside a copy
    parser.add_argument("--mode", choices=("predict", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--loader", default=PYFUNC_MODULES[-1], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pyfunc:
        return drive_pyfunc(args.pyfunc, args.mode, args.result, args.store, args.loader)
    if args.list:
        for number, item in selected(args.only):
            print(f"{number:3d} {item.area:13s} {item.name}  [{item.expectation}]")
        return 0
    return run_pass(args)


if __name__ == "__main__":
    sys.exit(main())
