"""Scheduled retraining: DVC pipeline run (its ``register`` stage is the champion/challenger gate) -> report.

Steps (serial: DVC allows one command per checkout):
(optional) ``dvc pull`` -> ``dvc exp run -n <name> -S ...`` (or ``dvc repro``) -> read the model's headline
metrics (``fashion_edit.evaluation.headline.MODEL_HEADLINE``) and the ``register`` stage's decision
(``REGISTER_REPORT``: versions, promoted or not and why; the one gate is
:func:`fashion_edit.tracking.register.gate_and_promote`) -> (optional) ``dvc push``.
``promote=False`` is a dry run: it sets ``registry.promote=false`` for the pipeline run.

The experiment name is exported as ``FASHION_EDIT_PIPELINE_RUN``, so it is also the MLflow
parent run of every stage run and the ``pipeline.run`` tag of the registered versions.
DVC steps never use Prefect result caching: DVC's own cache decides what reruns.

Commands (from the repository root)::

    python -m flows.retrain run [-S train_inpainter.steps=600] [--push]   # one run now
    python -m flows.retrain serve [--cron "0 3 * * 1"]                    # local weekly schedule
    prefect deployment run 'fashion-edit-retrain/retrain-local'           # trigger the served one now
"""
# No `from __future__ import annotations` here: a served flow run (`serve`, workers) validates its
# parameters in a fresh process from a pickled copy of the flow, where string annotations such as
# Literal[...] cannot be resolved and every run failed in 0 s.

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from fashion_edit.config import Params, ParamsError, load_params
from fashion_edit.errors import FashionEditError
from fashion_edit.evaluation.headline import MODEL_HEADLINE
from fashion_edit.layout import REGISTER_REPORT
from fashion_edit.tracking.runs import ENV_PIPELINE_RUN, resolve_tracking_uri
from flows import dvc_runner

DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00 (server time zone); prefect.yaml uses the same
FLOW_NAME = "fashion-edit-retrain"
LOCAL_DEPLOYMENT = "retrain-local"
# I/O against remotes and the registry fails transiently; training does not (it resumes instead)
IO_RETRIES = 3
IO_RETRY_DELAYS = [10, 60, 180]
TIMEOUT_GRACE_S = 120


@dataclass
class RetrainResult:
    """What one flow run did; also published as the flow run's markdown artifact."""

    experiment: str
    mode: str
    metrics: dict[str, Any]
    candidate_versions: dict[str, str]
    champion_versions: dict[str, str | None]
    promoted: bool
    reason: str
    new_version: bool
    pulled: bool
    pushed: bool
    tracking_uri: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- pure helpers
def experiment_name(now: datetime | None = None, run_id: str | None = None) -> str:
    """``retrain-YYYYmmdd-HHMMSS-<flow run id prefix>``: a valid git ref, unique per flow run."""
    now = now or datetime.now(timezone.utc)
    suffix = (run_id or "local").replace("-", "")[:8]
    return f"retrain-{now:%Y%m%d-%H%M%S}-{suffix}"


def collect_overrides(overrides: list[str] | None, data_source: str | None, data_root: str | None,
                      promote: bool = True) -> list[str]:
    """The ``-S`` list: the user's overrides plus the data-source and dry-run shortcuts."""
    items = list(overrides or [])
    if not promote:
        items.append("registry.promote=false")
    if data_source:
        items.append(f"data.source={data_source}")
    if data_root:
        items.append(f"data.root={data_root}")
    dvc_runner.set_args(items)  # malformed items fail here, before anything runs
    return items


def params_with_overrides(params: Params, overrides: list[str]) -> Params:
    """Validate overrides against the typed params before a long run (DVC would only fail mid-pipeline)."""
    import yaml  # values only: `-S` parses each value as YAML, as DVC does

    data = params.model_dump(mode="python")
    for item in overrides:
        key, _, raw = item.partition("=")
        if ":" in key:  # `file:key=value`: only params.yaml is typed here
            path, key = key.split(":", 1)
            if Path(path).name != "params.yaml":
                continue
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"override {item!r}: {part!r} is not a params.yaml section")
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    try:
        return Params.model_validate(data)
    except Exception as exc:  # pydantic's message names the key
        raise ParamsError(f"overrides {overrides}: invalid params: {exc}") from None


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object the pipeline wrote (the model's metrics, the register stage's decision)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing after the pipeline run; check that dvc.yaml's stages write it "
                                "(`dvc repro register`)")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(metrics).__name__}")
    return metrics


def checked_request(repo: str, overrides: list[str] | None, data_source: str | None, data_root: str | None,
                    promote: bool, mode: str) -> tuple[Path, list[str], Params]:
    """The checkout, the ``-S`` list and the run's params, or a FashionEditError / ValueError naming what is wrong
    (checked by the command line before Prefect starts a flow run, and by the flow for served runs)."""
    root = dvc_runner.require_dvc_repo(Path(repo))
    items = collect_overrides(overrides, data_source, data_root, promote)
    if mode == "repro" and items:
        raise ValueError(f"overrides {items} need mode='exp' (`dvc repro` cannot set params); "
                         "commit the params change or use mode='exp'")
    return root, items, params_with_overrides(load_params(root / "params.yaml"), items)


def registered_outcome(report: dict[str, Any], run_name: str) -> tuple[bool, str, bool, list[str]]:
    """(promoted, reason, new_version, notes) from the register stage's ``reports/register.json``: the register
    stage is the only gate, the flow reports its decision."""
    new_version = report.get("pipeline_run") == run_name
    if not new_version:
        return False, (f"no new version: the pipeline's outputs were up to date, so the register stage did not run; "
                       f"its last decision (pipeline run {report.get('pipeline_run')!r}): {report.get('reason', '')}"), \
            False, []
    notes = [f"champion before: editor v{report['champion_before']}"] if report.get("champion_before") else []
    return bool(report.get("promoted")), str(report.get("reason", "")), True, notes


def summary_markdown(result: RetrainResult) -> str:
    verdict = "promoted to champion" if result.promoted else "not promoted"
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v) else f"| {k} | {v} |" for k, v in result.metrics.items())
    versions = ", ".join(f"{k} v{v}" for k, v in result.candidate_versions.items()) or "none"
    champions = ", ".join(f"{k} v{v}" if v else f"{k} –" for k, v in result.champion_versions.items())
    notes = "".join(f"- {n}\n" for n in result.notes)
    return (f"# Retraining `{result.experiment}`: {verdict}\n\n**Why:** {result.reason}\n\n"
            f"- candidates: {versions}\n- champions now: {champions}\n- mode: `{result.mode}`, "
            f"pulled: {result.pulled}, pushed: {result.pushed}, {result.seconds:.0f} s\n"
            f"- MLflow: `{result.tracking_uri}`\n{notes}\n| metric | value |\n|---|---|\n{metrics}\n")


# ---------------------------------------------------------------------------------- tasks
def _stream_to_log():
    """Each dvc output line becomes a log line of the running task (stage tracebacks included)."""
    return get_run_logger().info


@task(name="dvc-pull", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS,
      cache_policy=NO_CACHE, persist_result=False)
def dvc_pull(repo: Path, remote: str | None) -> None:
    dvc_runner.pull(repo, remote, on_line=_stream_to_log())


@task(name="dvc-reproduce", retries=0, cache_policy=NO_CACHE, persist_result=False)
def dvc_reproduce(repo: Path, mode: str, name: str, overrides: list[str], targets: list[str], force: bool,
                  timeout_s: float) -> float:
    """Run the pipeline; the subprocess is stopped at ``timeout_s`` (checkpoints let the next run resume)."""
    env = {ENV_PIPELINE_RUN: name}
    log = _stream_to_log()
    if mode == "exp":
        result = dvc_runner.exp_run(repo, name, overrides, targets, force=force, env=env, timeout=timeout_s,
                                    on_line=log)
    else:
        result = dvc_runner.repro(repo, targets, force=force, env=env, timeout=timeout_s, on_line=log)
    return result.seconds


@task(name="read-results", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def read_results(path: Path) -> dict[str, Any]:
    return read_json_file(path)


@task(name="dvc-push", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS,
      cache_policy=NO_CACHE, persist_result=False)
def dvc_push(repo: Path, remote: str | None) -> None:
    dvc_runner.push(repo, remote, on_line=_stream_to_log())


# ----------------------------------------------------------------------------------- flow
@flow(name=FLOW_NAME, log_prints=True, persist_result=False)
def retrain(
    overrides: list[str] | None = None,
    data_source: str | None = None,
    data_root: str | None = None,
    pull: bool = False,
    push: bool = False,
    remote: str | None = None,
    mode: Literal["exp", "repro"] = "exp",
    targets: list[str] | None = None,
    experiment: str | None = None,
    force: bool = False,
    promote: bool = True,
    training_timeout_hours: float = 24.0,
    repo: str = ".",
) -> RetrainResult:
    """Retrain with DVC, gate the new candidate against the champion, promote it or say why not.

    overrides: ``-S`` params overrides (``key=value``; ``mode="exp"`` only).
    data_source / data_root: shortcuts for ``data.source=`` / ``data.root=`` overrides.
    pull / push / remote: ``dvc pull`` before and ``dvc push`` after, against ``remote``.
    mode: ``exp`` = ``dvc exp run -n <experiment>`` (results applied to the workspace);
    ``repro`` = plain ``dvc repro`` (no overrides).
    targets: DVC stages to reproduce with their upstream stages (None: the whole DAG), e.g.
    ``["register"]`` to retrain, evaluate and register without rerunning the ablation study.
    promote: False = a dry run: the register stage decides and reports but moves no alias
    (``registry.promote=false``; ``mode="exp"`` only).
    """
    started = time.monotonic()
    logger = get_run_logger()
    root, items, params = checked_request(repo, overrides, data_source, data_root, promote, mode)
    name = dvc_runner.check_experiment_name(experiment or experiment_name(run_id=flow_run.get_id()))
    logger.info("pipeline run %s in %s (mode=%s, targets=%s, overrides=%s)", name, root, mode,
                targets or "all stages", items)

    if pull:
        dvc_pull(root, remote)
    timeout_s = training_timeout_hours * 3600
    dvc_reproduce.with_options(timeout_seconds=timeout_s + TIMEOUT_GRACE_S)(
        root, mode, name, items, list(targets or []), force, timeout_s)

    tracking_uri = resolve_tracking_uri(params.mlflow, root)
    if tracking_uri.startswith("sqlite:") and deployment.get_id():
        logger.warning("the MLflow registry is a SQLite file in this checkout (%s): on a worker that clones the "
                       "repository per run, the registered versions and the champion alias disappear with it; "
                       "set MLFLOW_TRACKING_URI (job variable env) to a tracking server", tracking_uri)
    metrics = read_results(root / MODEL_HEADLINE)
    report = read_results(root / REGISTER_REPORT)
    promoted, reason, new_version, notes = registered_outcome(report, name)
    logger.info("%s: %s", "PROMOTED" if promoted else "not promoted", reason)

    if push:
        dvc_push(root, remote)
    result = RetrainResult(experiment=name, mode=mode, metrics=metrics, candidate_versions=report.get("versions", {}),
                           champion_versions=report.get("champion", {}), promoted=promoted, reason=reason,
                           new_version=new_version, pulled=pull, pushed=push, tracking_uri=tracking_uri,
                           seconds=time.monotonic() - started, notes=notes)
    create_markdown_artifact(summary_markdown(result), key="retrain-result",
                             description=f"retraining {name}: {'promoted' if promoted else 'not promoted'}")
    return result


# ------------------------------------------------------------------------------------ CLI
def _key_values(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param {item!r}: expected NAME=VALUE (VALUE is JSON, or a plain string)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.retrain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the retraining flow once, now, in this process")
    run.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--data-source")
    run.add_argument("--data-root")
    run.add_argument("--pull", action="store_true")
    run.add_argument("--push", action="store_true")
    run.add_argument("--remote")
    run.add_argument("--mode", choices=["exp", "repro"], default="exp")
    run.add_argument("--target", dest="targets", action="append", help="DVC stage (with its upstream); repeatable")
    run.add_argument("--experiment")
    run.add_argument("--force", action="store_true")
    run.add_argument("--no-promote", dest="promote", action="store_false")
    run.add_argument("--repo", default=".")
    serve = sub.add_parser("serve", help="serve the flow on a cron schedule (needs `prefect server start`)")
    serve.add_argument("--cron", default=DEFAULT_CRON, help=f"cron schedule (default {DEFAULT_CRON!r})")
    serve.add_argument("--name", default=LOCAL_DEPLOYMENT)
    serve.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="flow parameter default, e.g. --param push=true --param 'overrides=[\"a.b=1\"]'")
    args = parser.parse_args(argv)
    if args.command == "serve":
        retrain.serve(name=args.name, cron=args.cron, parameters=_key_values(args.param),
                      description="Weekly retraining: dvc exp run, champion/challenger gate, promotion.")
        return 0
    try:  # a bad request is one line here, not a failed flow run with Prefect's traceback
        checked_request(args.repo, args.overrides, args.data_source, args.data_root, args.promote, args.mode)
    except (FashionEditError, ValueError) as exc:
        print(f"python -m flows.retrain: error: {exc}", file=sys.stderr)
        return 2
    result = retrain(overrides=args.overrides, data_source=args.data_source, data_root=args.data_root,
                     pull=args.pull, push=args.push, remote=args.remote, mode=args.mode, targets=args.targets,
                     experiment=args.experiment, force=args.force, promote=args.promote, repo=args.repo)
    print(json.dumps(asdict(result), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
