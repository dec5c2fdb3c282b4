"""fashion_edit.registry against a real SQLite MLflow registry (the session's shared store)."""
from __future__ import annotations

import math
import uuid

import pytest

from fashion_edit.config import Params, RegisterParams
from fashion_edit.registry import (
    CANDIDATE,
    CHAMPION,
    RegistryError,
    champion_metrics,
    pipeline_identity,
    promote,
    promotion_decision,
    register_version,
    version_by_alias,
    version_metrics,
)

GATES = RegisterParams()
IDENTITY = {"git.commit": "abc123", "git.dirty": "false", "dvc.lock_md5": "d41d8", "dvc.params_md5": "p1",
            "pipeline.run": "retrain-test"}


@pytest.fixture()
def client(mlflow_uri):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_uri)


@pytest.fixture()
def experiment_id(client, tmp_path):
    return client.create_experiment(f"registry-{uuid.uuid4().hex[:8]}", artifact_location=tmp_path.as_uri())


@pytest.fixture()
def name():
    return f"editor-{uuid.uuid4().hex[:8]}"  # the shared store outlives one test


def _runs_model(client, experiment_id, tmp_path) -> str:
    """A run with an MLmodel folder: registrable by runs:/ URI without logging a real flavor."""
    folder = tmp_path / f"model-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    return f"runs:/{run.info.run_id}/model"


def test_logged_pyfunc_model_becomes_candidate_with_metric_and_identity_tags(client, mlflow_uri, experiment_id, name):
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[int], params=None) -> list[int]:
            return model_input

    mlflow.set_tracking_uri(mlflow_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="editor", python_model=Echo(), pip_requirements=["mlflow"])
    version = register_version(client, name, info.model_uri, metrics={"fid": 12.5, "parser_miou": 0.61,
                                                                      "count": 7, "note": "x"}, identity=IDENTITY)
    assert str(version.version) == "1"
    assert version.source == info.model_uri and version.run_id == run.info.run_id
    assert version_by_alias(client, name, CANDIDATE).version == version.version
    assert version_metrics(version) == {"fid": 12.5, "parser_miou": 0.61, "count": 7.0}
    assert version.tags["git.commit"] == "abc123" and version.tags["pipeline.run"] == "retrain-test"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{CANDIDATE}")
    assert loaded.predict([1, 2]) == [1, 2]


def test_runs_uri_without_a_model_fails_naming_it(client, experiment_id, name):
    run = client.create_run(experiment_id)
    with pytest.raises(RegistryError, match="has no model named 'model'"):
        register_version(client, name, f"runs:/{run.info.run_id}/model", metrics={}, identity=IDENTITY)


def test_registered_model_uri_is_rejected(client, name):
    with pytest.raises(RegistryError, match="not a registered-model URI"):
        register_version(client, name, "models:/editor/1", metrics={}, identity=IDENTITY)


def test_missing_model_or_alias_is_none(client, experiment_id, name, tmp_path):
    assert version_by_alias(client, name, CHAMPION) is None
    register_version(client, name, _runs_model(client, experiment_id, tmp_path), metrics={}, identity=IDENTITY)
    assert version_by_alias(client, name, CHAMPION) is None and champion_metrics(client, name) is None


def test_better_candidate_is_promoted_and_worse_one_is_not(client, experiment_id, name, tmp_path):
    def register(fid: float, miou: float):
        return register_version(client, name, _runs_model(client, experiment_id, tmp_path),
                                metrics={"fid": fid, "parser_miou": miou}, identity=IDENTITY)

    first = register(30.0, 0.50)
    decision = promotion_decision(version_metrics(first), champion_metrics(client, name), GATES)
    assert decision.promote and "no champion" in decision.reason
    promote(client, name, first.version, decision.reason)

    worse = register(35.0, 0.55)
    decision = promotion_decision(version_metrics(worse), champion_metrics(client, name), GATES)
    assert not decision.promote and "FID is worse" in decision.reason
    assert version_by_alias(client, name, CHAMPION).version == first.version
    assert version_by_alias(client, name, CANDIDATE).version == worse.version

    better = register(25.0, 0.52)
    decision = promotion_decision(version_metrics(better), champion_metrics(client, name), GATES)
    assert decision.promote, decision.reason
    champion = promote(client, name, better.version, decision.reason)
    assert version_by_alias(client, name, CHAMPION).version == better.version
    assert champion.tags["champion.previous_version"] == str(first.version)
    assert "passes both gates" in champion.tags["champion.reason"]
    assert champion_metrics(client, name) == {"fid": 25.0, "parser_miou": 0.52}


def test_pipeline_identity_names_commit_lock_and_run(tmp_path, monkeypatch):
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    monkeypatch.setenv("FASHION_EDIT_PIPELINE_RUN", "retrain-20261121")
    identity = pipeline_identity(Params(), tmp_path)
    assert identity["pipeline.run"] == "retrain-20261121"
    assert identity["git.commit"] == "unknown" and identity["dvc.params_md5"] == "none"
    assert len(identity["dvc.lock_md5"]) == 32


# ------------------------------------------------------------------------- the gate
@pytest.mark.parametrize(("candidate", "champion", "gates", "promote_it", "why"), [
    ({"fid": 20, "parser_miou": 0.5}, None, GATES, True, "no champion"),
    ({"fid": 19, "parser_miou": 0.5}, {"fid": 20, "parser_miou": 0.5}, GATES, True, "passes both"),
    ({"fid": 21, "parser_miou": 0.6}, {"fid": 20, "parser_miou": 0.5}, GATES, False, "FID is worse"),
    ({"fid": 19, "parser_miou": 0.4}, {"fid": 20, "parser_miou": 0.5}, GATES, False, "parser mIoU is lower"),
    ({"fid": 21, "parser_miou": 0.4}, {"fid": 20, "parser_miou": 0.5}, GATES, False,
     "FID is worse and parser mIoU is lower"),
    ({"fid": 20.5, "parser_miou": 0.49}, {"fid": 20, "parser_miou": 0.5},
     RegisterParams(fid_tolerance=1.0, miou_tolerance=0.02), True, "tolerance 1"),
    ({"fid": math.nan, "parser_miou": 0.9}, {"fid": 20, "parser_miou": 0.5}, GATES, False, "non-finite"),
    ({"fid": 1, "parser_miou": 0.9}, {"fid": 20}, GATES, False, "cannot be compared"),
])
def test_promotion_decision(candidate, champion, gates, promote_it, why):
    decision = promotion_decision(candidate, champion, gates)
    assert decision.promote is promote_it
    assert why in decision.reason


def test_candidate_without_gate_metrics_is_an_error():
    with pytest.raises(RegistryError, match=r"lack \['parser_miou'\]"):
        promotion_decision({"fid": 10.0}, None, GATES)
