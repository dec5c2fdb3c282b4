"""MLflow model registry: register versions, the champion/challenger gate, promotion.

Every new version of ``parser``, ``inpainter`` and ``editor`` gets the alias ``candidate``
and tags that say where it came from: its evaluation metrics (``metric.<key>``), the git
commit, hashes of ``dvc.lock`` / ``params.yaml`` and the DVC experiment (pipeline run) name.
The metrics on the version are what the gate compares, so a champion carries the numbers it
won with and a later candidate is judged against exactly those.

Gate (:func:`promotion_decision`, thresholds in ``params.yaml`` ``registry``): promote when
there is no champion, or when the candidate's FID is at most ``fid_tolerance`` above the
champion's AND its parser mIoU at most ``miou_tolerance`` below it.  Promotion moves the
alias ``champion``; versions are never deleted, so the previous champion stays one alias
move away (it is recorded on the new champion as ``champion.previous_version``).
"""
from __future__ import annotations

import hashlib
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

from fashion_edit.config import Params, RegisterParams
from fashion_edit.tracking import git_commit, pipeline_run_key

CANDIDATE = "candidate"
CHAMPION = "champion"
MODEL_NAMES = ("parser", "inpainter", "editor")
GATE_MODEL = "editor"  # the product; its version tags carry the metrics the gate compares
FID_KEY = "fid"
MIOU_KEY = "parser_miou"
METRIC_TAG_PREFIX = "metric."
# tags that identify one pipeline run; versions registered by the same `register` stage share them
IDENTITY_KEYS = ("git.commit", "dvc.lock_md5", "pipeline.run")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (bad model URI, missing metric, ...); says why."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


# ----------------------------------------------------------------------------- tags
def metric_tags(metrics: Mapping[str, float]) -> dict[str, str]:
    """``{"metric.fid": "12.5", ...}`` for the numeric entries of ``metrics``."""
    tags = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # counts/strings in the metrics file are not gate material
        tags[f"{METRIC_TAG_PREFIX}{key}"] = repr(float(value))
    return tags


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    """Inverse of :func:`metric_tags`; unparsable values are left out."""
    out = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                out[key[len(METRIC_TAG_PREFIX):]] = float(value)
            except ValueError:
                continue
    return out


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "none"


def _git_dirty(repo: Path) -> str:
    """"true" when tracked files differ from HEAD (the commit tag alone would not say so)."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return str(bool(done.stdout.strip())).lower() if done.returncode == 0 else "unknown"


def pipeline_identity(params: Params, repo_root: str | Path = ".") -> dict[str, str]:
    """Tags naming the code, the DVC pipeline state and the pipeline run a version came from.

    ``pipeline.run`` is the same run-group id :mod:`fashion_edit.tracking` puts on the MLflow
    parent run (``FASHION_EDIT_PIPELINE_RUN`` = the DVC experiment name when the Prefect flow
    runs the pipeline), so a version leads back to its runs.
    """
    repo = Path(repo_root)
    commit = git_commit(repo)
    return {
        "git.commit": commit,
        "git.dirty": _git_dirty(repo),
        "dvc.lock_md5": _md5(repo / "dvc.lock"),
        "dvc.params_md5": _md5(repo / "params.yaml"),
        "pipeline.run": pipeline_run_key(params, commit),
    }


# ------------------------------------------------------------------------ register
def _resolve_source(client: MlflowClient, model_uri: str) -> tuple[str, str | None, str | None]:
    """(source, run_id, model_id) for ``models:/m-<id>``, ``runs:/<run>/<path>`` or a plain URI."""
    if model_uri.startswith("models:/m-"):
        model_id = model_uri[len("models:/"):].strip("/")
        try:
            logged = client.get_logged_model(model_id)
        except MlflowException as exc:
            raise RegistryError(f"{model_uri}: no logged model with id {model_id} in this tracking store "
                                f"({client.tracking_uri}): {exc.message}") from None
        return model_uri, logged.source_run_id, model_id
    if model_uri.startswith("models:/"):
        raise RegistryError(f"{model_uri}: pass the logged model's URI (models:/m-<id>, from log_model's "
                            "ModelInfo.model_uri) or runs:/<run_id>/<path>, not a registered-model URI")
    if RunsArtifactRepository.is_runs_uri(model_uri):
        run_id, path = RunsArtifactRepository.parse_runs_uri(model_uri)
        run = client.get_run(run_id)
        names = {a.path for a in client.list_artifacts(run_id, path or None)}
        if f"{path}/MLmodel" in names or "MLmodel" in names:
            return f"{run.info.artifact_uri.rstrip('/')}/{path}", run_id, None
        logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run_id}' AND name = '{path}'")
        if not logged:
            raise RegistryError(f"{model_uri}: run {run_id} has no model named {path!r} (no MLmodel artifact "
                                "and no logged model); log it with mlflow.<flavor>.log_model(name=...) first")
        newest = max(logged, key=lambda m: m.creation_timestamp)
        return f"models:/{newest.model_id}", run_id, newest.model_id
    return model_uri, None, None


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def register_version(client: MlflowClient, name: str, model_uri: str, *, metrics: Mapping[str, float],
                     identity: Mapping[str, str], tags: Mapping[str, str] | None = None,
                     description: str | None = None) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``name`` tagged with metrics + identity; alias it ``candidate``.

    ``model_uri``: ``ModelInfo.model_uri`` from ``mlflow.<flavor>.log_model`` (``models:/m-<id>``)
    or ``runs:/<run_id>/<name>``. ``identity``: :func:`pipeline_identity` (computed once per
    register stage so all three models share it).
    """
    source, run_id, model_id = _resolve_source(client, model_uri)
    _ensure_registered_model(client, name)
    all_tags = {**identity, **metric_tags(metrics),
                "registered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(tags or {})}
    version = client.create_model_version(name, source, run_id=run_id, tags=all_tags,
                                          description=description, model_id=model_id)
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return client.get_model_version(name, version.version)


# -------------------------------------------------------------------------- lookup
def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of ``name`` carrying ``alias``, or None when the model or alias does not exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = model.aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def version_metrics(version: ModelVersion) -> dict[str, float]:
    return metrics_from_tags(version.tags or {})


def champion_metrics(client: MlflowClient, name: str = GATE_MODEL) -> dict[str, float] | None:
    """Metrics recorded on the current champion of ``name``; None when there is no champion."""
    champion = version_by_alias(client, name, CHAMPION)
    return None if champion is None else version_metrics(champion)


def same_pipeline_run(a: ModelVersion, b: ModelVersion) -> bool:
    """True when both versions were registered from the same pipeline state (identity tags agree)."""
    tags_a, tags_b = a.tags or {}, b.tags or {}
    return all(tags_a.get(k) == tags_b.get(k) for k in IDENTITY_KEYS)


# ---------------------------------------------------------------------------- gate
def _finite(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def promotion_decision(candidate_metrics: Mapping[str, float], champion_metrics: Mapping[str, float] | None,
                       gates: RegisterParams) -> Decision:
    """Promote when there is no champion, or FID not worse and parser mIoU not lower (within tolerances)."""
    missing = [k for k in (FID_KEY, MIOU_KEY) if k not in candidate_metrics]
    if missing:
        raise RegistryError(f"candidate metrics lack {missing} (have {sorted(candidate_metrics)}); the evaluate "
                            "stage writes them to reports/metrics/evaluate.json and register copies them to tags")
    fid, miou = _finite(candidate_metrics, FID_KEY), _finite(candidate_metrics, MIOU_KEY)
    if fid is None or miou is None:
        return Decision(False, f"candidate has a non-finite metric (fid={candidate_metrics[FID_KEY]}, "
                               f"parser_miou={candidate_metrics[MIOU_KEY]}): evaluation or training diverged")
    if champion_metrics is None:
        return Decision(True, f"no champion yet: candidate becomes champion (fid={fid:.4g}, parser_miou={miou:.4g})")
    champ_fid, champ_miou = _finite(champion_metrics, FID_KEY), _finite(champion_metrics, MIOU_KEY)
    if champ_fid is None or champ_miou is None:
        return Decision(False, "champion has no finite recorded fid/parser_miou tags, so the candidate cannot be "
                               "compared; promote by hand (fashion_edit.registry.promote) if intended")
    fid_ok = fid <= champ_fid + gates.fid_tolerance
    miou_ok = miou >= champ_miou - gates.miou_tolerance
    comparison = (f"fid {fid:.4g} vs champion {champ_fid:.4g} (tolerance {gates.fid_tolerance:g}), "
                  f"parser_miou {miou:.4g} vs champion {champ_miou:.4g} (tolerance {gates.miou_tolerance:g})")
    if fid_ok and miou_ok:
        return Decision(True, f"candidate passes both gates: {comparison}")
    failed = [what for what, ok in (("FID is worse", fid_ok), ("parser mIoU is lower", miou_ok)) if not ok]
    return Decision(False, f"candidate kept as challenger, {' and '.join(failed)}: {comparison}")


def promote(client: MlflowClient, name: str, version: str | int, reason: str = "") -> ModelVersion:
    """Point ``champion`` of ``name`` at ``version``; the previous champion is recorded on the new one."""
    version = str(version)
    previous = version_by_alias(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "champion.promoted_at",
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if previous is not None and str(previous.version) != version:
        client.set_model_version_tag(name, version, "champion.previous_version", str(previous.version))
    if reason:
        client.set_model_version_tag(name, version, "champion.reason", reason[:5000])
    return client.get_model_version(name, version)
