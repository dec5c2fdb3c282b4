"""MLflow model registry: register versions, the champion/challenger gate, promotion.

Every new version of ``parser``, ``inpainter`` and ``editor`` gets the alias ``candidate``
and tags that say where it came from: its evaluation metrics (``metric.<key>``), the git
commit, hashes of ``dvc.lock`` / ``params.yaml`` and the DVC experiment (pipeline run) name.
The metrics on the version are what the gate compares, so a champion carries the numbers it
won with and a later candidate is judged against exactly those.

Gate (:func:`promotion_decision`): a difference counts only when it is larger than the noise of
the two measurements. For each headline metric (``fashion_edit.evaluation.headline.HEADLINE_METRICS``: FID,
KID, ST-LPIPS, hole PSNR, parser mIoU, each with its direction) the gap candidate - champion is
compared with z·σ, where σ = sqrt(SE_candidate² + SE_champion²) from the ``<metric>_se`` tags (the
evaluation's bootstrap over test images) and z = ``registry.noise_z`` in ``params.yaml`` (2 by
default). A metric is *better* when it improves by more than z·σ, *worse* when it degrades by more
than z·σ, else *within noise*. The candidate is promoted when no headline metric is worse and at
least one is better. Treating the two SEs as independent is conservative: both models are scored
on the same test images, so the true noise of the gap is usually smaller.
Special cases: no champion -> promote; a non-finite candidate metric -> refuse (training or
evaluation diverged); a candidate without SE tags -> refuse (re-run ``evaluate``); a champion
without SE tags (registered before the bootstrap existed) -> its SEs are taken equal to the
candidate's, and the reason says so. The reason lists every headline metric with both values at
the precision that shows the gap, the gap, z·σ and the verdict.

Promotion moves the alias ``champion``; versions are never deleted, so the previous champion stays
one alias move away (it is recorded on the new champion as ``champion.previous_version``).
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

from fashion_edit.config import Params, RegisterParams
from fashion_edit.errors import FashionEditError
from fashion_edit.evaluation.headline import HEADLINE_METRICS, se_key
from fashion_edit.layout import EVALUATE_DETAIL
from fashion_edit.tracking.runs import git_commit, pipeline_run_key

CANDIDATE = "candidate"
CHAMPION = "champion"
MODEL_NAMES = ("parser", "inpainter", "editor")
GATE_MODEL = "editor"  # the product; its version tags carry the metrics the gate compares
METRIC_TAG_PREFIX = "metric."


class RegistryError(FashionEditError, RuntimeError):
    """The registry cannot do what was asked (bad model URI, missing metric, ...); says why."""


BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"


@dataclass(frozen=True)
class Comparison:
    """One headline metric, candidate against champion."""

    key: str
    candidate: float
    champion: float
    difference: float  # candidate - champion
    noise: float  # z·σ
    verdict: str  # BETTER, WORSE or WITHIN_NOISE

    def cells(self) -> tuple[str, str, str, str]:
        """candidate, champion, difference and z·σ, all with the decimals that show the gap."""
        decimals = _decimals(self.difference, self.noise)
        return (f"{self.candidate:.{decimals}f}", f"{self.champion:.{decimals}f}",
                f"{self.difference:+.{decimals}f}", f"{self.noise:.{decimals}f}")

    def describe(self) -> str:
        candidate, champion, difference, noise = self.cells()
        return f"{self.key} {candidate} vs {champion} (Δ {difference}, z·σ {noise}: {self.verdict})"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str  # the rule that decided, then every compared metric
    comparisons: tuple[Comparison, ...] = ()  # empty when the gate decided without comparing
    rule: str = ""  # the rule alone (one line), when metrics were compared


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

    ``pipeline.run`` is the same run-group id :mod:`fashion_edit.tracking.runs` puts on the MLflow
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


# ---------------------------------------------------------------------------- gate
def _decimals(*numbers: float) -> int:
    """Decimals showing every nonzero finite number with at least two significant digits (4 to 12)."""
    smallest = min((abs(x) for x in numbers if x != 0 and math.isfinite(x)), default=1.0)
    return min(12, max(4, 1 - math.floor(math.log10(smallest))))


def _finite(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _listing(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={metrics[key]:.{_decimals(metrics[key])}f}" for key in HEADLINE_METRICS)


def compare_metric(key: str, candidate: float, champion: float, se_candidate: float, se_champion: float,
                   z: float) -> Comparison:
    """Judge one headline metric: better / worse when the gap in its good direction exceeds z·σ."""
    difference = candidate - champion
    noise = z * math.hypot(se_candidate, se_champion)
    gain = difference if HEADLINE_METRICS[key] else -difference
    verdict = BETTER if gain > noise else WORSE if -gain > noise else WITHIN_NOISE
    return Comparison(key, candidate, champion, difference, noise, verdict)


def _decided_without_comparing(candidate: Mapping[str, float],
                               champion: Mapping[str, float] | None) -> Decision | None:
    """The special cases of the gate (no champion, non-finite metric, missing tags); None: compare."""
    missing = [k for k in HEADLINE_METRICS if k not in candidate]
    if missing:
        raise RegistryError(f"candidate metrics lack {missing} (have {sorted(candidate)}); the evaluate "
                            f"stage writes them to {EVALUATE_DETAIL} and register copies them to tags")
    diverged = [f"{k}={candidate[k]}" for k in HEADLINE_METRICS if _finite(candidate, k) is None]
    if diverged:
        return Decision(False, f"candidate has non-finite {', '.join(diverged)}: evaluation or training diverged")
    if champion is None:
        return Decision(True, f"no champion yet: candidate becomes champion ({_listing(candidate)})")
    absent = [k for k in HEADLINE_METRICS if _finite(champion, k) is None]
    if absent:
        return Decision(False, f"champion has no finite recorded {absent} tags, so the candidate cannot be "
                               "compared; promote by hand (fashion_edit.tracking.registry.promote) if intended")
    no_se = [se_key(k) for k in HEADLINE_METRICS if _finite(candidate, se_key(k)) is None]
    if no_se:
        return Decision(False, f"candidate has no standard errors {no_se}, so its noise is unknown: re-run "
                               "`dvc repro evaluate register` to register it with them")
    return None


def _verdict(comparisons: tuple[Comparison, ...], z: float, assumed: list[str]) -> Decision:
    """Promote when nothing is worse beyond noise and something is better beyond it; the reason says why."""
    worse = [c.key for c in comparisons if c.verdict == WORSE]
    better = [c.key for c in comparisons if c.verdict == BETTER]
    if worse:
        rule = f"kept as challenger: {', '.join(worse)} worse than the champion's by more than z·σ"
    elif better:
        rule = f"promoted: {', '.join(better)} better by more than z·σ and no headline metric worse"
    else:
        rule = "kept as challenger: no headline metric better than the champion's by more than z·σ"
    note = (f"; the champion has no SE tags for {', '.join(assumed)} (registered before the bootstrap), "
            "taken equal to the candidate's" if assumed else "")
    rule += f" (z={z:g}, σ = sqrt(SE_candidate² + SE_champion²){note})"
    details = "; ".join(c.describe() for c in comparisons)
    return Decision(not worse and bool(better), f"{rule}: {details}", comparisons, rule)


def promotion_decision(candidate_metrics: Mapping[str, float], champion_metrics: Mapping[str, float] | None,
                       gates: RegisterParams) -> Decision:
    """Promote when there is no champion, or when no headline metric is worse than the champion's by more
    than its noise and at least one is better by more (the rule of the module docstring)."""
    early = _decided_without_comparing(candidate_metrics, champion_metrics)
    if early is not None:
        return early
    assert champion_metrics is not None  # no champion is decided above
    # a champion registered before the bootstrap has no SEs: assume the candidate's
    assumed = [k for k in HEADLINE_METRICS if _finite(champion_metrics, se_key(k)) is None]
    comparisons = tuple(
        compare_metric(k, candidate_metrics[k], champion_metrics[k], candidate_metrics[se_key(k)],
                       candidate_metrics[se_key(k)] if k in assumed else champion_metrics[se_key(k)],
                       gates.noise_z)
        for k in HEADLINE_METRICS)
    return _verdict(comparisons, gates.noise_z, assumed)


@contextmanager
def promotion_lock(tracking_uri: str) -> Iterator[None]:
    """Gate and alias moves of one promotion as a unit: two ``register`` runs at once would otherwise
    both pass the gate against the same champion and move the three aliases interleaved (a mixed
    champion). A file lock beside a local SQLite store; other stores are not locked (use one
    pipeline at a time per registry, e.g. the deployments' ``concurrency_limit: 1``)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(tracking_uri.removeprefix("sqlite:///") + ".promotion.lock")
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
