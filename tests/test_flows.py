"""Prefect flows end to end on a tiny fake DVC project, against a real SQLite MLflow registry."""
from __future__ import annotations

import json
import sys

import pytest

from tests.flows_fixtures import REPO_ROOT, make_fake_project, prefect_harness  # noqa: F401 (fixture)


@pytest.fixture()
def fake_project(tmp_path, monkeypatch, prefect_harness):  # noqa: F811
    project = make_fake_project(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the fake stage imports fashion_edit
    monkeypatch.chdir(project)
    return project


def test_retrain_promotes_first_then_gates_worse_and_better(fake_project):
    from flows.retrain import retrain

    first = retrain(repo=str(fake_project), experiment="first")
    assert first.promoted and first.new_version
    assert "no champion" in first.reason
    assert first.metrics == {"fid": 10.0, "parser_miou": 0.5}
    assert first.champion_versions == {"parser": "1", "inpainter": "1", "editor": "1"}

    worse = retrain(repo=str(fake_project), experiment="worse", overrides=["train_inpainter.steps=50"])
    assert not worse.promoted
    assert "FID is worse" in worse.reason
    assert worse.candidate_versions["editor"] == "2" and worse.champion_versions["editor"] == "1"

    better = retrain(repo=str(fake_project), experiment="better", overrides=["train_inpainter.steps=200"])
    assert better.promoted, better.reason
    assert better.champion_versions == {"parser": "3", "inpainter": "3", "editor": "3"}


def test_unchanged_pipeline_makes_no_new_version(fake_project):
    from flows.retrain import retrain

    retrain(repo=str(fake_project), experiment="first")
    again = retrain(repo=str(fake_project), experiment="again")
    assert not again.promoted and not again.new_version
    assert "already the champion" in again.reason


def test_failing_stage_fails_the_flow_run_with_the_stage_error_in_its_logs(fake_project):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.retrain import retrain

    params_before = (fake_project / "params.yaml").read_text()
    state = retrain(repo=str(fake_project), experiment="broken", data_source="folder", return_state=True)
    assert state.is_failed()
    assert "dvc exp run" in state.message and "FAKE-STAGE-ERROR" in state.message
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    assert any("FAKE-STAGE-ERROR" in log.message for log in logs)
    print((fake_project / "params.yaml").read_text() == params_before)
