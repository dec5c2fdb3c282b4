"""End to end through DVC: the training stages in a tiny repository copy, and resume after SIGKILL."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from fashion_edit.training.checkpoints import read_checkpoint
from tests.conftest import repo_env, run_in, tiny_params, write_params

# tiny networks: one thread each is as fast and robust when other jobs share the cores
ENV = {"OMP_NUM_THREADS": "1"}


def _csv_steps(path: Path) -> list[int]:
    with open(path) as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def _mlflow(repo: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


@pytest.mark.slow
def test_dvc_repro_runs_both_trainings_end_to_end(tiny_repo):
    result = run_in(tiny_repo, "dvc", "repro", "train_parser", "train_inpainter", env=repo_env(ENV))
    for stage in ("synthesize", "preprocess", "train_parser", "train_inpainter"):
        assert f"Running stage '{stage}'" in result.stdout
    for name in ("parser", "inpainter"):
        info = json.loads((tiny_repo / "artifacts" / name / "info.json").read_text())
        assert info["steps"] == 6
        assert (tiny_repo / "checkpoints" / name / "checkpoint.pt").is_file()
        reports = tiny_repo / "reports" / f"train_{name}"
        assert _csv_steps(reports / "losses.csv") == list(range(1, 7))
        assert {"losses.png", "samples.png", "metrics.json"} <= {p.name for p in reports.iterdir()}
    # MLflow: the default store is the repo's SQLite file; both stage runs share one pipeline parent
    client = _mlflow(tiny_repo)
    runs = client.search_runs([client.get_experiment_by_name("fashion-edit").experiment_id],
                              filter_string="tags.`fashion_edit.role` = 'stage'")
    assert sorted(r.data.tags["dvc.stage"] for r in runs) == ["train_inpainter", "train_parser"]
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1
    assert (tiny_repo / "mlartifacts").is_dir()
    # nothing to redo; the final losses are a detail file (a DVC output, not a declared metric)
    status = run_in(tiny_repo, "dvc", "status", "train_parser", "train_inpainter", env=repo_env(ENV)).stdout
    assert "up to date" in status, status
    assert "loss_g_total" in json.loads((tiny_repo / "reports/train_inpainter/metrics.json").read_text())
    metrics = run_in(tiny_repo, "dvc", "metrics", "show", "--json", env=repo_env(ENV)).stdout
    assert "reports/train_inpainter/metrics.json" not in metrics

    # a rerun that fails at its start (the tracking server is down) keeps the last reports: DVC does not remove
    # persisted outputs before running the stage, and nothing can restore an uncached one
    reports = tiny_repo / "reports" / "train_parser"
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    changed = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    changed["train_parser"]["steps"] = 8
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    down = repo_env({**ENV, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})  # the discard port: refused at once
    failed = run_in(tiny_repo, "dvc", "repro", "train_parser", env=down, check=False)
    assert failed.returncode != 0 and "unreachable" in failed.stdout + failed.stderr
    assert {p.name: p.read_bytes() for p in reports.iterdir()} == before


@pytest.mark.slow
def test_sigkilled_training_resumes_from_last_checkpoint_on_next_repro(tiny_repo):
    steps = 60
    write_params(tiny_repo / "params.yaml", tiny_params({"train_parser": {
        "steps": steps, "batch_size": 2, "checkpoint_every": 2, "log_every": 5, "sample_every": 20}}))
    env = repo_env(ENV)
    run_in(tiny_repo, "dvc", "repro", "preprocess", env=env)

    checkpoint = tiny_repo / "checkpoints" / "parser" / "checkpoint.pt"
    with open(tiny_repo / "killed.log", "w") as log:
        # own session: SIGKILL reaches dvc and the stage process it started
        victim = subprocess.Popen(["dvc", "repro", "train_parser"], cwd=tiny_repo, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    killed_at = read_checkpoint(checkpoint)["step"]
    assert 2 <= killed_at < steps, f"the stage was not killed mid-training (checkpoint at {killed_at})"
    assert not (tiny_repo / "artifacts" / "parser" / "info.json").exists()

    result = run_in(tiny_repo, "dvc", "repro", "train_parser", env=env)
    resumed_at = read_checkpoint(checkpoint)["step"]
    assert resumed_at == steps
    assert f"resuming from {checkpoint}" in result.stdout + result.stderr
    info = json.loads((tiny_repo / "artifacts" / "parser" / "info.json").read_text())
    assert info["steps"] == steps
    assert _csv_steps(tiny_repo / "reports" / "train_parser" / "losses.csv") == list(range(1, steps + 1))
    client = _mlflow(tiny_repo)
    run = client.get_run(info["mlflow_run_id"])
    resumed_from = int(run.data.tags["resumed_from_step"])
    assert resumed_from >= killed_at  # resumed, not restarted
    killed_run = client.get_run(run.data.tags["resumed_from_run"])
    assert killed_run.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g/ce")] == list(range(1, steps + 1))


@pytest.mark.slow
def test_a_params_typo_stops_dvc_before_any_output_is_removed(tiny_repo):
    run_in(tiny_repo, "dvc", "repro", "preprocess", env=repo_env(ENV))
    report = tiny_repo / "reports" / "preprocess.json"
    before = report.read_text()
    good = (tiny_repo / "params.yaml").read_text()
    typo = yaml.safe_load(good)
    typo["preprocess"]["heigth"] = typo["preprocess"].pop("height")  # the stage that would run reads it
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(typo, sort_keys=False))
    failed = run_in(tiny_repo, "dvc", "repro", "preprocess", env=repo_env(ENV), check=False)
    assert failed.returncode != 0 and "heigth" in failed.stderr and "check_params" in failed.stdout
    assert report.read_text() == before  # nothing was removed
    assert (tiny_repo / "data" / "prepared").is_dir() and (tiny_repo / "data" / "raw").is_dir()
    (tiny_repo / "params.yaml").write_text(good)
    fixed = run_in(tiny_repo, "dvc", "repro", "preprocess", env=repo_env(ENV)).stdout
    assert "Running stage 'preprocess'" not in fixed  # the check's output did not change: nothing reruns
