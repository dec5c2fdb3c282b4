"""The ``register`` stage: save the editor bundle, log the three models (:mod:`fashion_edit.serving.pyfunc`)
to the stage's MLflow run, register them as candidates and let the gate decide.

Registration (:func:`register_models`): every new version gets the alias ``candidate`` and tags with
the evaluation metrics (``metric.<key>``: every top-level number of ``reports/evaluate.json``, so each
headline metric and its standard error, e.g. ``metric.fid`` and ``metric.fid_se``) and the git/DVC
identity (``fashion_edit.tracking.registry``); the three versions become ``champion`` together when the editor
passes the gate against the current champion (or there is none).
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fashion_edit.config import Params
from fashion_edit.evaluation.headline import numeric_metrics
from fashion_edit.layout import RegisterPaths
from fashion_edit.serving.editor import Editor, EditorNetworks
from fashion_edit.serving.pyfunc import save_editor_model, save_network_models
from fashion_edit.tracking import registry
from fashion_edit.tracking.runs import TAG_PIPELINE_RUN, resolve_tracking_uri, stage_run

STAGE = "register"
SECTIONS = ("preprocess", "parser", "inpainter", "segmenter", "registry", "mlflow")


def log_models(client: Any, run_id: str, editor: Editor, bundle: Path) -> dict[str, str]:
    """Save the three models and log them as artifacts of ``run_id``; {name: ``runs:/<run>/<name>``}.

    Saved then logged through the client (not the fluent ``log_model``) so nothing depends on MLflow's
    process-global tracking URI: the stage's store is the one its run lives in.
    """
    with tempfile.TemporaryDirectory(prefix="fashion_edit_models_") as tmp:
        folders = save_network_models(editor.networks, editor.size, Path(tmp))
        folders[registry.GATE_MODEL] = save_editor_model(bundle, Path(tmp) / registry.GATE_MODEL)
        for name, folder in folders.items():
            client.log_artifacts(run_id, str(folder), name)
    return {name: f"runs:/{run_id}/{name}" for name in folders}


# ----------------------------------------------------------------------------- register stage
def register_candidates(client: Any, model_uris: Mapping[str, str], metrics: Mapping[str, float],
                        identity: Mapping[str, str]) -> dict[str, str]:
    """Register each logged model as a new version (alias ``candidate``); {name: version}."""
    return {name: str(registry.register_version(client, name, uri, metrics=metrics, identity=identity).version)
            for name, uri in model_uris.items()}


def gate_and_promote(client: Any, versions: Mapping[str, str], metrics: Mapping[str, float],
                     params: Params, tracking_uri: str) -> tuple[registry.Decision, bool]:
    """The one promotion gate: compare with the editor's champion and, unless ``registry.promote`` is false (a dry
    run), point ``champion`` of every model at its new version; returns the decision and whether aliases moved.
    Under :func:`registry.promotion_lock`, so concurrent runs are judged against each other's outcome."""
    with registry.promotion_lock(tracking_uri):
        decision = registry.promotion_decision(metrics, registry.champion_metrics(client, registry.GATE_MODEL),
                                               params.registry)
        moved = decision.promote and params.registry.promote
        if moved:
            for name, number in versions.items():
                registry.promote(client, name, number, decision.reason)
    return decision, moved


def register_and_gate(client: Any, model_uris: Mapping[str, str], metrics: Mapping[str, float], params: Params,
                      repo_root: Path, pipeline_run: str) -> dict[str, Any]:
    """Register the logged models as candidates and gate them; the content of ``reports/register.json``, which
    the retrain flow reads instead of deciding again."""
    tracking_uri = resolve_tracking_uri(params.mlflow, repo_root)
    champion_before = registry.version_by_alias(client, registry.GATE_MODEL, registry.CHAMPION)
    versions = register_candidates(client, model_uris, metrics, registry.pipeline_identity(params, repo_root))
    decision, moved = gate_and_promote(client, versions, metrics, params, tracking_uri)
    reason = decision.reason if params.registry.promote else f"dry run (registry.promote=false): {decision.reason}"
    return {"versions": versions, "promoted": moved, "gate_says_promote": decision.promote, "reason": reason,
            "dry_run": not params.registry.promote, "pipeline_run": pipeline_run,
            "champion_before": None if champion_before is None else str(champion_before.version),
            "champion": {name: _alias_version(client, name) for name in versions}}


def write_register_report(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def register_models(params: Params, paths: RegisterPaths) -> dict[str, Any]:
    """The ``register`` stage: bundle, log, register as candidates, gate, promote; returns register.json's content."""
    metrics = numeric_metrics(paths.evaluation)  # the model's numbers and SEs (baselines left out)
    editor = Editor(EditorNetworks.from_artifacts(params, paths.artifacts),
                    (params.preprocess.height, params.preprocess.width))
    with stage_run(params, STAGE, SECTIONS, paths.repo_root) as run:  # probes MLflow before any output is written
        editor.save(paths.bundle)
        report = _register_in_run(params, paths, run, editor, metrics)
    write_register_report(paths.report, report)
    return report


def _register_in_run(params: Params, paths: RegisterPaths, run: Any, editor: Editor,
                     metrics: Mapping[str, float]) -> dict[str, Any]:
    uris = log_models(run.client, run.run_id, editor, paths.bundle)  # runs:/<mlflow_run_id>/<name>
    pipeline_run = run.client.get_run(run.run_id).data.tags.get(TAG_PIPELINE_RUN, "")
    report = register_and_gate(run.client, uris, metrics, params, paths.repo_root, pipeline_run)
    run.set_tags({"promoted": report["promoted"], "reason": report["reason"][:5000],
                  **{f"version.{name}": number for name, number in report["versions"].items()}})
    return {**report, "mlflow_run_id": run.run_id}


def _alias_version(client: Any, name: str) -> str | None:
    version = registry.version_by_alias(client, name, registry.CHAMPION)
    return None if version is None else str(version.version)
