"""`fashion-edit compare`: this checkout's evaluation against the champion of a real SQLite registry."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_edit.serving import cli

from fashion_edit.evaluation.headline import HEADLINE_METRICS
from fashion_edit.layout import EVALUATE_DETAIL
from fashion_edit.tracking import registry
from tests.conftest import repo_env, tiny_params, write_params
from tests.test_registry import IDENTITY, _runs_model, evaluation

CHAMPION_METRICS = evaluation()


def checkout(root: Path, uri: str) -> Path:
    """A folder with the run's params.yaml (naming the registry at ``uri``); returns the params file."""
    root.mkdir(parents=True, exist_ok=True)
    return write_params(root / "params.yaml", tiny_params({"mlflow": {"tracking_uri": uri}}))


def write_evaluation(params_file: Path, metrics: dict) -> None:
    detail = params_file.parent / EVALUATE_DETAIL
    detail.parent.mkdir(parents=True, exist_ok=True)
    detail.write_text(json.dumps({**metrics, "baselines": {"telea": {"fid": 150.0}}}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry whose `editor` champion carries CHAMPION_METRICS (an SE tag per headline metric)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("compare_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("compare", artifact_location=(root / "artifacts").as_uri())
    version = registry.register_version(client, registry.GATE_MODEL, _runs_model(client, experiment, root),
                                        metrics=CHAMPION_METRICS, identity=IDENTITY)
    registry.promote(client, registry.GATE_MODEL, version.version)
    return uri


def compare(params_file: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str, str]:
    code = cli.main(["compare", "--params", str(params_file), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_noise_level_fid_gain_is_shown_with_every_headline_metric_and_not_promoted(store, tmp_path, capsys):
    params_file = checkout(tmp_path, store)
    write_evaluation(params_file, evaluation(fid=110.333, psnr_hole=22.21, st_lpips=0.0651))
    code, out, _ = compare(params_file, capsys)
    assert code == 0
    lines = out.splitlines()
    assert "vs editor v1 @champion" in lines[0]
    assert lines[1].split() == ["metric", "this", "run", "champion", "Δ", "z·σ", "verdict"]
    rows = {line.split()[0]: line for line in lines[2:2 + len(HEADLINE_METRICS)]}
    assert list(rows) == list(HEADLINE_METRICS)
    assert rows["fid"].split()[:5] == ["fid", "110.3330", "110.3420", "-0.0090", "4.5255"]
    assert rows["fid"].endswith("within noise")
    assert lines[-1].startswith("gate: would stay a challenger: kept as challenger: no headline metric better")


def test_clearly_better_run_would_be_promoted(store, tmp_path, capsys):
    params_file = checkout(tmp_path, store)
    write_evaluation(params_file, evaluation(fid=95.0, psnr_hole=23.9))
    code, out, _ = compare(params_file, capsys)
    assert code == 0 and "gate: would be promoted: promoted: fid, psnr_hole better" in out


def test_without_metrics_says_which_stage_to_run(store, tmp_path, capsys):
    code, _, err = compare(checkout(tmp_path, store), capsys)
    assert code == 1
    assert err.strip() == (f"fashion-edit: error: no evaluation metrics at {tmp_path / EVALUATE_DETAIL} yet: "
                           "run `dvc repro evaluate`")


def test_without_a_registry_or_a_champion_says_which_stage_to_run(store, tmp_path, capsys):
    params_file = checkout(tmp_path / "no_store", f"sqlite:///{tmp_path / 'none.db'}")
    write_evaluation(params_file, evaluation())
    code, _, err = compare(params_file, capsys)
    assert code == 1 and "no MLflow store" in err and "run `dvc repro register`" in err
    assert not (tmp_path / "none.db").exists()  # not created as a side effect
    code, _, err = compare(params_file, capsys, "--tracking-uri", store, "--model", "parser")
    assert code == 1 and "model 'parser' has no champion" in err and "run `dvc repro register`" in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_runs_compare(store, tmp_path):
    params_file = checkout(tmp_path, store)
    write_evaluation(params_file, evaluation())
    script = Path(sys.executable).with_name("fashion-edit")
    done = subprocess.run([str(script), "compare"], cwd=tmp_path, env=repo_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gate: would stay a challenger" in done.stdout  # the champion's own numbers: nothing beyond noise
