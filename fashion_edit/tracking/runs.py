"""MLflow tracking for pipeline stages: one run per stage execution, nested under a pipeline run.

Tracking URI, in order: params ``mlflow.tracking_uri`` if set, else ``MLFLOW_TRACKING_URI``,
else ``sqlite:///<repo>/mlflow.db`` (git-ignored). Experiments are created with an explicit
artifact location, ``<repo>/mlartifacts`` as a file URI (MLflow 3's default would depend on
the working directory).

Run grouping: every stage run is a child (tag ``mlflow.parentRunId``) of a *pipeline run*
found by the tag ``fashion_edit.pipeline_run`` = a run-group id:
- ``FASHION_EDIT_PIPELINE_RUN`` if set (the Prefect flow sets one per flow run), else
- ``dvc-<boot>-<pid>-<start>``: the ``dvc`` process the stage runs under (found through
  ``/proc``), so every stage of one ``dvc repro`` / ``dvc exp run`` (ablation variants
  included, whose params differ) lands under one parent and the next invocation gets its own;
- else (a stage started by hand, or no ``/proc``) ``<git commit[:12]>-<hash of all params[:12]>``.
The parent's name says when it started and at which commit, so runs can be told apart.

Tags on each stage run: git commit, DVC stage name, hash of the params sections the stage
reads, the run-group id. Params: the whole params file flattened to dotted keys.
Only rank 0 of a distributed job creates runs; other ranks get a :class:`NullRun`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping, MutableMapping, Sequence

import numpy as np

from fashion_edit.config import MlflowParams, Params
from fashion_edit.errors import FashionEditError

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_PIPELINE_RUN = "FASHION_EDIT_PIPELINE_RUN"
TAG_PIPELINE_RUN = "fashion_edit.pipeline_run"
TAG_ROLE = "fashion_edit.role"
TAG_STAGE = "dvc.stage"
TAG_PARAMS_HASH = "params_hash"
TAG_GIT_COMMIT = "git_commit"
PROBE_TIMEOUT_S = 5.0
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"  # a cheap read every tracking server serves
# MLflow's client retries a failing request 7 times, backoff factor 2 (~4 min 14 s before a stage sees a
# 503). Stage runs use these instead, unless the environment sets them: ~6 s of retries (0, 2, 4 s), which
# still rides out a server restart; 30 s per request instead of 120.
CLIENT_RETRY_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call
_MAX_PARAM_VALUE = 6000


class TrackingError(FashionEditError, RuntimeError):
    """MLflow cannot be used as configured; the message says what to change."""


# ----------------------------------------------------------------------------- configuration
def resolve_tracking_uri(p: MlflowParams, repo_root: Path) -> str:
    if p.tracking_uri:
        return p.tracking_uri
    if os.environ.get(ENV_TRACKING_URI):
        return os.environ[ENV_TRACKING_URI]
    return checkout_store_uri(repo_root)


def checkout_store_uri(repo_root: Path) -> str:
    """The default store: a SQLite file in the checkout (git-ignored)."""
    return f"sqlite:///{(repo_root / 'mlflow.db').resolve()}"


def artifact_location(repo_root: Path) -> str:
    return (repo_root / "mlartifacts").resolve().as_uri()


def check_uri_scheme(uri: str) -> None:
    """A misspelt scheme (``sqllite:///``) would fail deep inside MLflow's store registry."""
    if "://" not in uri:
        return  # a plain path: MLflow's file store
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()  # postgresql+psycopg2 -> postgresql
    if scheme not in TRACKING_SCHEMES:
        raise TrackingError(
            f"MLflow tracking URI {uri!r}: unknown scheme {scheme!r}; use one of {', '.join(TRACKING_SCHEMES)} "
            f"(e.g. sqlite:///path/mlflow.db or http://host:5000) in params mlflow.tracking_uri or ${ENV_TRACKING_URI}")


def probe_tracking_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast (before any training) if an http(s) tracking server does not answer, or answers but its
    API fails (5xx).

    One attempt per URL, no retries. A 4xx from the API counts as reachable: the probe sends no
    credentials (401/403 behind auth) and a proxy may map paths (404); the client, which sends the
    user's credentials, reports those itself.
    """
    check_uri_scheme(uri)
    if not uri.startswith(("http://", "https://")):
        return
    base = uri.rstrip("/")
    _http_status(base + "/health", uri, timeout)  # any answer, even an error status: reachable
    api = base + API_PROBE
    status = _http_status(api, uri, timeout)
    if status >= 500:
        raise TrackingError(
            f"MLflow tracking server {uri} answers but its API fails: HTTP {status} from {api}. Check the server's "
            f"log and its backend store (database, disk) and restart it, or point params mlflow.tracking_uri / "
            f"${ENV_TRACKING_URI} elsewhere (both empty: a local SQLite file in the repository).")


def _http_status(url: str, uri: str, timeout: float) -> int:
    """The HTTP status of one GET of ``url``; TrackingError if the server at ``uri`` does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}; probed {url} with a {timeout:g} s timeout). "
            f"Start the server, or point params mlflow.tracking_uri / ${ENV_TRACKING_URI} elsewhere "
            f"(both empty: a local SQLite file in the repository).") from None


def limit_client_retries(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set :data:`CLIENT_RETRY_ENV` where ``environ`` has no value of its own (MLflow reads them at each
    request, and subprocesses inherit them); returns what was set."""
    added = {name: value for name, value in CLIENT_RETRY_ENV.items() if name not in environ}
    environ.update(added)
    return added


# ----------------------------------------------------------------------------- params and tags
def flatten_params(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings/sequences -> {"a.b.c": "value"} (what MLflow params can hold)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        if not value and prefix:
            return {prefix: "{}"}
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten_params(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: json.dumps(list(value))}
    return {prefix: str(value)}


def params_hash(params: Params, sections: Sequence[str] | None = None) -> str:
    """SHA-256 (hex, 16 chars) of the named params sections (all sections if None)."""
    data = params.model_dump(mode="json")
    chosen = {name: data[name] for name in (sections if sections is not None else sorted(data))}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


def git_commit(repo_root: Path) -> str:
    """HEAD's commit, or "unknown" outside a git checkout / before the first commit."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


_SAFE_KEY = re.compile(r"^[A-Za-z0-9._:@/+-]{1,250}$")  # goes into an MLflow filter string


def _proc_stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after "pid (comm)": [state, ppid, ...]; index 19 is the start time in ticks.
    OSError when the process is gone or there is no /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _proc_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def _is_dvc(argv: list[str]) -> bool:
    """``dvc ...``, ``python .../bin/dvc ...`` (a console script) or ``python -m dvc ...``."""
    head = [a for a in argv[:3] if a]
    return any(Path(a).name == "dvc" for a in head) or argv[1:3] == ["-m", "dvc"]


def dvc_invocation(max_depth: int = 8) -> str | None:
    """``dvc-<boot id[:8]>-<pid>-<start ticks>`` of the nearest ``dvc`` ancestor process; None if
    there is none or no ``/proc`` (pid + start time identify a process across pid reuse)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pid = os.getppid()
        for _ in range(max_depth):
            if pid <= 1:
                return None
            if _is_dvc(_proc_argv(pid)):
                return f"dvc-{boot}-{pid}-{_process_start(pid)}"
            pid = int(_proc_stat(pid)[1])  # the parent's pid
    except (OSError, ValueError, IndexError):
        return None
    return None


def pipeline_run_key(params: Params, commit: str) -> str:
    """The run-group id: ``FASHION_EDIT_PIPELINE_RUN``, else the dvc invocation, else commit + params hash."""
    key = (os.environ.get(ENV_PIPELINE_RUN) or dvc_invocation()
           or f"{commit[:12]}-{params_hash(params)[:12]}")
    if not _SAFE_KEY.match(key):
        raise TrackingError(f"{ENV_PIPELINE_RUN}={key!r}: use 1-250 letters, digits or . _ : @ / + -")
    return key


# ----------------------------------------------------------------------------- runs
class NullRun:
    """Stand-in on ranks other than 0: accepts the same calls and records nothing."""

    run_id: str | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def flush(self) -> None: ...
    def log_image(self, picture: np.ndarray, artifact_file: str) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class StageRun(NullRun):
    """An MLflow run of one stage execution; metrics are buffered and written in batches."""

    def __init__(self, client: Any, run_id: str, experiment_id: str) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self._pending: list[Any] = []

    def log_params(self, flat: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:_MAX_PARAM_VALUE]) for k, v in flat.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + _MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())

    def flush(self) -> None:
        # one SQL transaction per call; MLflow caps a batch at 1000 metrics
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_image(self, picture: np.ndarray, artifact_file: str) -> None:
        self.client.log_image(self.run_id, picture, artifact_file=artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


READ_ONLY_SQLITE = "attempt to write a readonly database"
_STORE_LOGGER = "mlflow.store.db.utils"  # logs every database error with its whole SQLAlchemy traceback


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for servers and other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _read_only_message(uri: str, why: str) -> str:
    return (f"the MLflow store is read-only: {uri} ({why}). Make the file and its folder writable for this user "
            f"(SQLite writes a journal beside the file), or point params mlflow.tracking_uri / ${ENV_TRACKING_URI} "
            f"to a writable store")


def check_store_writable(uri: str) -> None:
    """Fail before any run starts when a local SQLite store cannot be written (a read-only mount, a file or
    folder without write permission)."""
    db = sqlite_file(uri)
    if db is None:
        return
    for target in (db, db.parent):
        if target.exists() and not os.access(target, os.W_OK):
            raise TrackingError(_read_only_message(uri, f"{target} is not writable"))


@contextlib.contextmanager
def quiet_store_errors() -> Iterator[None]:
    """Keep MLflow's logged SQLAlchemy traceback out of the stage's output: the exception still propagates
    and the caller turns it into one line."""
    store_logger = logging.getLogger(_STORE_LOGGER)
    level = store_logger.level
    store_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        store_logger.setLevel(level)


def _experiment_id(client: Any, name: str, repo_root: Path, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location(repo_root))
    if experiment.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {name!r} is deleted in {uri}: restore it "
                            f"(`mlflow experiments restore`) or set params mlflow.experiment to another name")
    _check_artifact_location(experiment, repo_root, uri)
    return experiment.experiment_id


def _check_artifact_location(experiment: Any, repo_root: Path, uri: str) -> None:
    """A checkout copied or moved with its ``mlflow.db`` keeps the old absolute artifact location (MLflow
    cannot change it), so ~60 MB per run would land in the original checkout, or fail if it is gone."""
    here = artifact_location(repo_root)
    stored = experiment.artifact_location
    if uri != checkout_store_uri(repo_root) or not stored.startswith("file:") or stored == here:
        return  # a tracking server, or another store the user chose: its locations are its own
    raise TrackingError(
        f"MLflow experiment {experiment.name!r} in {uri} keeps its artifacts at {stored}, not in this checkout "
        f"({here}): the checkout was copied or moved with its mlflow.db. Keep the runs by working in the "
        f"original checkout, or start a new experiment here (set params mlflow.experiment to a new name), or move "
        f"{uri.removeprefix('sqlite:///')} away to start a fresh store")


def parent_run_name(key: str, commit: str) -> str:
    """A name a person can tell apart in the runs list: a flow's experiment name is already one;
    otherwise when the group started and at which commit."""
    if key == os.environ.get(ENV_PIPELINE_RUN):
        return f"pipeline {key}"
    return f"pipeline {datetime.now():%Y-%m-%d %H:%M:%S} @{commit[:8]}"


def _parent_run_id(client: Any, experiment_id: str, key: str, commit: str) -> str:
    """The pipeline run for ``key``, created (and marked finished: it only groups) if missing."""
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`{TAG_PIPELINE_RUN}` = '{key}' and tags.`{TAG_ROLE}` = 'pipeline'"), max_results=1,
        order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=parent_run_name(key, commit), tags={
        TAG_PIPELINE_RUN: key, TAG_ROLE: "pipeline", TAG_GIT_COMMIT: commit,
        "mlflow.source.git.commit": commit})
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


# ----------------------------------------------------------------------------- orphan runs
TAG_OWNER = "fashion_edit.process"  # host:pid:start ticks of the process that opened the run


def _process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live process; None if it is gone or unknown."""
    try:
        return _proc_stat(pid)[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or '?'}"


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` (:func:`process_identity`) names a process of this host that no longer runs
    (a pid reused by another process counts as gone); runs of other hosts are never judged."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or started == "?":
        return False
    return _process_start(int(pid)) != started


def close_orphan_runs(client: Any, experiment_id: str, stage: str) -> list[str]:
    """End as KILLED the RUNNING runs of ``stage`` whose process died without closing them (SIGKILL,
    a crash before the first checkpoint); returns their ids."""
    running = client.search_runs([experiment_id], filter_string=(
        f"tags.`{TAG_STAGE}` = '{stage}' and attributes.status = 'RUNNING'"), max_results=100)
    orphans = [r.info.run_id for r in running if owner_is_gone(r.data.tags.get(TAG_OWNER, ""))]
    for run_id in orphans:
        client.set_terminated(run_id, status="KILLED")
    return orphans


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def end_runs_on_sigterm() -> None:
    """Make SIGTERM (a timeout, a CI or Prefect cancellation, `kill`) unwind like Ctrl-C, so the open
    run ends KILLED instead of staying RUNNING; only where nobody else handles SIGTERM."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)


def start_stage_run(params: Params, stage: str, sections: Sequence[str], repo_root: Path,
                    *, is_main: bool = True, extra_tags: Mapping[str, Any] | None = None) -> NullRun:
    """Probe the server, then (rank 0) open the stage's run under its pipeline run.

    Every rank probes, so an unreachable server stops all processes before training. Runs of the
    same stage left RUNNING by a dead process are closed first; from here on SIGTERM ends the run
    KILLED, as Ctrl-C does (every stage ends its run on KeyboardInterrupt).
    """
    uri = resolve_tracking_uri(params.mlflow, repo_root)
    probe_tracking_server(uri)
    limit_client_retries()  # a failing server must not hold the stage for minutes of client retries
    if not is_main:
        return NullRun()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    check_store_writable(uri)
    try:
        with quiet_store_errors():
            experiment_id = _experiment_id(client, params.mlflow.experiment, repo_root, uri)
            commit = git_commit(repo_root)
            key = pipeline_run_key(params, commit)
            parent = _parent_run_id(client, experiment_id, key, commit)
            close_orphan_runs(client, experiment_id, stage)
            tags = {
                "mlflow.parentRunId": parent, TAG_PIPELINE_RUN: key, TAG_ROLE: "stage", TAG_OWNER: process_identity(),
                TAG_STAGE: stage, TAG_PARAMS_HASH: params_hash(params, sections),
                TAG_GIT_COMMIT: commit, "mlflow.source.git.commit": commit,
                "params_sections": ",".join(sections), **{k: str(v) for k, v in (extra_tags or {}).items()},
            }
            run = client.create_run(experiment_id, run_name=stage, tags=tags)
    except TrackingError:
        raise
    except Exception as exc:  # a broken store is a setup problem, report it before training
        if READ_ONLY_SQLITE in str(exc):
            raise TrackingError(_read_only_message(uri, "SQLite refused a write")) from None
        raise TrackingError(f"MLflow at {uri} cannot start a run ({type(exc).__name__}: {exc})") from exc
    end_runs_on_sigterm()
    stage_run = StageRun(client, run.info.run_id, experiment_id)
    stage_run.log_params(flatten_params(params))
    return stage_run


@contextlib.contextmanager
def stage_run(params: Params, stage: str, sections: Sequence[str], repo_root: Path, *, is_main: bool = True,
              extra_tags: Mapping[str, Any] | None = None) -> Iterator[NullRun]:
    """:func:`start_stage_run` as a ``with`` block that always ends the run: FINISHED, KILLED on an interrupt
    (Ctrl-C, SIGTERM), else FAILED with the error as the ``failure`` tag."""
    run = start_stage_run(params, stage, sections, repo_root, is_main=is_main, extra_tags=extra_tags)
    try:
        yield run
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException as exc:
        run.set_tags({"failure": f"{type(exc).__name__}: {exc}"[:5000]})
        run.end("FAILED")
        raise
    run.end("FINISHED")


def mark_run_killed(params: Params, repo_root: Path, run_id: str) -> None:
    """Close a run left RUNNING by a killed process (best effort: the run may be gone)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(params.mlflow, repo_root))
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
    except Exception:  # noqa: BLE001 - a missing old run must not stop a resume
        pass


def log_to_run(params: Params, repo_root: Path, run_id: str, *, metrics: Mapping[str, float] | None = None,
               tags: Mapping[str, Any] | None = None) -> None:
    """Add metrics (step 0) and tags to an existing, possibly finished, run (e.g. an ablation's evaluation)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(params.mlflow, repo_root))
    run = StageRun(client, run_id, client.get_run(run_id).info.experiment_id)
    if metrics:
        run.log_metrics(metrics, step=0)
        run.flush()
    if tags:
        run.set_tags(tags)


# ----------------------------------------------------------------------------- the UI
# `mlflow ui` as installed starts a job runner and several workers (12 processes, ~2 GB, ~40 s on
# 2 cores) and opens on the GenAI view; the pipeline needs one worker that serves runs and models.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def experiment_runs_url(tracking_uri: str, experiment: str, base_url: str) -> str:
    """The UI page listing the experiment's training runs; a clear error before the first run."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        raise TrackingError(f"MLflow experiment {experiment!r} does not exist in {tracking_uri} yet: "
                            "run the pipeline first (`make run`)")
    return f"{base_url.rstrip('/')}/#/experiments/{found.experiment_id}/runs"


def ui_server_command(tracking_uri: str, host: str, port: int) -> list[str]:
    """A light MLflow server: one worker, no job execution (run it with :data:`UI_ENV`)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]
