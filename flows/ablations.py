"""Ablation study as separate Prefect flow runs, each in its own git worktree.

DVC holds one lock per checkout, so variants cannot run in parallel in one checkout.  Here
each variant (a key of ``params.yaml`` ``ablations``) is an ``ablation_variant`` flow run that
makes a git worktree of ``revision``, points its DVC cache at the main checkout's cache
(upstream stages are restored from it, not recomputed) and reproduces only that variant's
DVC stage.  The ``ablations`` flow fans the variants out — as local subflows in threads, or
as runs of the ``ablation-variant`` deployment so several GPU workers take one each — and
gathers their metrics into the same report the DVC ``report`` stage writes
(:func:`fashion_edit.evaluation.ablation_report.build_report`), under ``reports/ablation_flow/`` so
the DVC-tracked report stays DVC's.

    python -m flows.ablations run [--variant spade_norm --variant no_gan] [--parallel 2]
    python -m flows.ablations serve      # both flows as local deployments (needs a Prefect server)
"""
# No `from __future__ import annotations` here: a served flow run (`serve`, workers) validates its
# parameters in a fresh process from a pickled copy of the flow, where string annotations such as
# Literal[...] cannot be resolved and every run failed in 0 s.

import argparse
import contextvars
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from fashion_edit.config import ParamsError, load_params
from fashion_edit.tracking.runs import ENV_PIPELINE_RUN, ENV_TRACKING_URI, resolve_tracking_uri
from flows import dvc_runner

VARIANT_FLOW = "fashion-edit-ablation-variant"
# where dvc.yaml's `ablations` foreach stage puts each variant's per-seed metrics
STAGE_TEMPLATE = "ablations@{variant}"
METRICS_GLOB = "reports/ablations/{variant}/*.json"
REPORT_DIR = "reports/ablation_flow"
# `serve`: the fan-out deployment starts runs of the variant deployment, both served by one process
LOCAL_DEPLOYMENT = "ablations-local"
LOCAL_VARIANT_DEPLOYMENT = "ablation-variant-local"
IO_RETRIES = 3


class AblationError(RuntimeError):
    """One or more variants failed; the report of the others was still written."""


# ---------------------------------------------------------------------------- workspaces
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`git {' '.join(args)}` failed in {repo}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def shared_cache_dir(repo: Path) -> Path:
    """The main checkout's DVC cache (``cache.dir`` if configured, else ``.dvc/cache``)."""
    configured = dvc_runner.run_dvc(["cache", "dir"], repo).output.strip().splitlines()
    return Path(configured[-1]) if configured else repo / ".dvc" / "cache"


@contextmanager
def variant_worktree(repo: Path, revision: str, label: str, parent: Path | None = None,
                     keep: bool = False) -> Iterator[Path]:
    """A detached git worktree of ``revision`` whose DVC cache is the main checkout's."""
    holder = Path(tempfile.mkdtemp(prefix=f"fashion-edit-{label}-", dir=parent))
    path = holder / "checkout"
    _git(repo, "worktree", "add", "--detach", str(path), revision)
    try:
        local = repo / ".dvc" / "config.local"  # remote credentials stay with the worktree
        if local.is_file():
            shutil.copy2(local, path / ".dvc" / "config.local")
        cache = shared_cache_dir(repo)
        dvc_runner.run_dvc(["config", "--local", "cache.dir", str(cache)], path)
        yield path
    finally:
        if not keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=repo, capture_output=True)
            shutil.rmtree(holder, ignore_errors=True)


def expose_variant(workspace: Path, variant: str) -> None:
    """dvc.yaml's foreach makes an ``ablations@<name>`` stage only for the names in params
    ``ablation.variants``; in the throwaway worktree that list becomes this variant alone, so any
    variant defined under ``ablations`` can run. No stage reproduced here reads the list."""
    path = workspace / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("ablation", {})["variants"] = [variant]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def read_variant_runs(workspace: Path, pattern: str) -> list[dict[str, Any]]:
    """The variant's per-seed metric JSON files (sorted); none found is an error naming the pattern."""
    files = sorted(workspace.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{workspace / pattern}: the ablation stage wrote no metrics; "
                                "check STAGE_TEMPLATE / METRICS_GLOB against dvc.yaml")
    return [json.loads(f.read_text()) for f in files]


def artifact_key(variant: str) -> str:
    return "ablation-" + re.sub(r"[^a-z0-9-]+", "-", variant.lower()).strip("-")


def write_report(metrics_by_variant: dict[str, list[dict[str, Any]]], out_dir: Path) -> Path:
    """The gathered metrics as JSON, plus the report stage's markdown + PNG when available."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gathered = out_dir / "metrics_by_variant.json"
    gathered.write_text(json.dumps(metrics_by_variant, indent=2, allow_nan=True))
    try:
        from fashion_edit.evaluation.ablation_report import build_report
    except ImportError:  # the report module is optional for the flow: the JSON is the result
        return gathered
    build_report(metrics_by_variant, out_dir / "ablations.md", out_dir / "ablations.png",
                 out_json=out_dir / "summary.json")
    return out_dir / "ablations.md"


# ---------------------------------------------------------------------------- variant flow
@task(name="variant-dvc-pull", retries=IO_RETRIES, retry_delay_seconds=[10, 60, 180],
      cache_policy=NO_CACHE, persist_result=False)
def pull_into(workspace: Path, remote: str | None) -> None:
    dvc_runner.pull(workspace, remote, on_line=get_run_logger().info)


@task(name="variant-dvc-repro", cache_policy=NO_CACHE, persist_result=False)
def reproduce_variant(workspace: Path, stage: str, env: dict[str, str], timeout_s: float) -> float:
    # the timeout is enforced on the dvc process group: variants run in threads, where a
    # Prefect task timeout could not interrupt the blocking wait
    return dvc_runner.repro(workspace, [stage], env=env, timeout=timeout_s, on_line=get_run_logger().info).seconds


@flow(name=VARIANT_FLOW, persist_result=False)
def ablation_variant(
    variant: str,
    repo: str = ".",
    revision: str = "HEAD",
    pull: bool = False,
    remote: str | None = None,
    stage_template: str = STAGE_TEMPLATE,
    metrics_glob: str = METRICS_GLOB,
    timeout_hours: float = 12.0,
    keep_workspace: bool = False,
) -> dict[str, Any]:
    """Reproduce one ablation variant's DVC stage in its own worktree; return its per-seed metrics."""
    logger = get_run_logger()
    root = dvc_runner.require_dvc_repo(Path(repo))
    params = load_params(root / "params.yaml")
    params.variant(variant)  # unknown or invalid variant: fails here, naming it
    run_name = f"ablation-{variant}-{(flow_run.get_id() or 'local').replace('-', '')[:8]}"
    # stage runs log to the main checkout's MLflow store, not to a file inside the worktree
    env = {ENV_PIPELINE_RUN: run_name, ENV_TRACKING_URI: resolve_tracking_uri(params.mlflow, root)}
    with variant_worktree(root, revision, artifact_key(variant), keep=keep_workspace) as workspace:
        logger.info("variant %s: worktree %s at %s", variant, workspace, revision)
        if pull:
            pull_into(workspace, remote)
        expose_variant(workspace, variant)
        stage = stage_template.format(variant=variant)
        reproduce_variant(workspace, stage, env, timeout_hours * 3600)
        runs = read_variant_runs(workspace, metrics_glob.format(variant=variant))
    create_table_artifact(runs, key=artifact_key(variant), description=f"ablation variant {variant}: metrics per seed")
    return {"variant": variant, "runs": runs}


# ----------------------------------------------------------------------------- fan-out
def _run_local(variant: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    state = ablation_variant(variant=variant, return_state=True, **kwargs)
    if not state.is_completed():
        raise AblationError(f"variant {variant!r}: {state.message}")
    return state.result()["runs"]


def _run_deployment(variant: str, deployment: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    parameters = {"variant": variant, **{k: v for k, v in kwargs.items() if k != "repo"}}
    run = run_deployment(deployment, parameters=parameters, timeout=None, poll_interval=15)
    if run.state is None or not run.state.is_completed():
        raise AblationError(f"variant {variant!r}: flow run {run.name} ended "
                            f"{run.state.name if run.state else 'without a state'}: "
                            f"{run.state.message if run.state else ''}")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    tables = [a for a in artifacts if a.key == artifact_key(variant)]
    if not tables:
        raise AblationError(f"variant {variant!r}: flow run {run.name} left no {artifact_key(variant)!r} artifact")
    data = tables[-1].data
    return json.loads(data) if isinstance(data, str) else data


@flow(name="fashion-edit-ablations", persist_result=False)
def ablations(
    variants: list[str] | None = None,
    repo: str = ".",
    revision: str = "HEAD",
    deployment: str | None = None,
    max_parallel: int = 2,
    pull: bool = False,
    remote: str | None = None,
    stage_template: str = STAGE_TEMPLATE,
    metrics_glob: str = METRICS_GLOB,
    timeout_hours: float = 12.0,
    report_dir: str = REPORT_DIR,
) -> dict[str, Any]:
    """Run the variants (``params.yaml`` ``ablation.variants`` by default) in parallel; write the report.

    deployment: ``"fashion-edit-ablation-variant/ablation-variant"`` to run each variant as a
    deployment flow run on the work pool's workers; None runs them here as subflows.
    """
    logger = get_run_logger()
    root = dvc_runner.require_dvc_repo(Path(repo))
    params = load_params(root / "params.yaml")
    names = list(variants or params.ablation.variants)
    if not names:
        raise ParamsError(f"{root / 'params.yaml'}: the `ablations` mapping is empty; nothing to run")
    for name in names:
        params.variant(name)
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "params.yaml", "dvc.yaml")
    if dirty:
        logger.warning("uncommitted changes to params.yaml/dvc.yaml are NOT seen by the variants: they run "
                       "git revision %s in their own worktrees", revision)
    kwargs = {"repo": str(root), "revision": revision, "pull": pull, "remote": remote,
              "stage_template": stage_template, "metrics_glob": metrics_glob, "timeout_hours": timeout_hours}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        # copy_context: each thread's subflow/deployment run is linked to this flow run
        futures = {name: pool.submit(contextvars.copy_context().run,
                                     _run_deployment if deployment else _run_local,
                                     *((name, deployment, kwargs) if deployment else (name, kwargs)))
                   for name in names}
    metrics_by_variant: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, str] = {}
    for name, future in futures.items():
        try:
            metrics_by_variant[name] = future.result()
        except Exception as exc:  # one broken variant must not lose the others' results
            failures[name] = str(exc)
    report = write_report(metrics_by_variant, root / report_dir) if metrics_by_variant else None
    logger.info("ablations: %d ok, %d failed in %.0f s; report %s", len(metrics_by_variant), len(failures),
                time.monotonic() - started, report)
    if failures:
        raise AblationError("ablation variants failed (report of the others written to "
                            f"{report}):\n" + "\n".join(f"- {k}: {v}" for k, v in failures.items()))
    return {"report": str(report), "metrics": metrics_by_variant}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.ablations", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the ablation variants now (local subflows or a deployment)")
    run.add_argument("--variant", action="append", dest="variants", help="default: every params.yaml variant")
    run.add_argument("--parallel", type=int, default=2)
    run.add_argument("--deployment", help="e.g. fashion-edit-ablation-variant/ablation-variant")
    run.add_argument("--revision", default="HEAD")
    run.add_argument("--pull", action="store_true")
    run.add_argument("--repo", default=".")
    serve = sub.add_parser("serve", help="serve both flows from this checkout (needs `prefect server start`)")
    serve.add_argument("--parallel", type=int, default=2, help="variants run at once by a served ablations run")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from prefect import serve as serve_deployments

        fan_out = ablations.to_deployment(name=LOCAL_DEPLOYMENT, parameters={
            "deployment": f"{VARIANT_FLOW}/{LOCAL_VARIANT_DEPLOYMENT}", "max_parallel": args.parallel},
            description="Runs each params.yaml variant as a run of the served variant deployment; writes the report.")
        variant = ablation_variant.to_deployment(name=LOCAL_VARIANT_DEPLOYMENT,
                                                 description="One ablation variant in its own git worktree.")
        serve_deployments(fan_out, variant)
        return 0
    result = ablations(variants=args.variants, repo=args.repo, revision=args.revision, deployment=args.deployment,
                       max_parallel=args.parallel, pull=args.pull)
    print(result["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
