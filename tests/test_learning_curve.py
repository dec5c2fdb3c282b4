"""bench.learning_curve on a tiny repository: two points (the second resumed), outputs, missing inputs.

The repository is built in-process instead of with ``dvc repro evaluate`` (which would train three
networks in subprocesses): the session's tiny prepared data, random-init tiny parser and segmenter
weights where the training stages put theirs, the FID reference, and an ``evaluate.json`` with made-up
baselines: one the model cannot beat, one it beats at once (so the crossings are known in advance).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from bench.learning_curve import EVALUATE_JSON, main, required_inputs
from fashion_edit.data.store import open_split
from fashion_edit.evaluation.fid_reference import compute_reference, save_reference
from fashion_edit.evaluation.metrics.fid import InceptionFeatures
from fashion_edit.layout import FID_REFERENCE
from tests.conftest import tiny_params, write_params, write_random_artifacts

METRIC_COLUMNS = ("fid", "kid", "st_lpips", "psnr_hole", "ssim")
# made-up baseline scores (a real evaluation costs seconds): Telea is unbeatable, mean fill beaten at once
BASELINE_SCORES = {
    "telea": {"fid": -1.0, "kid": -1.0, "kid_std": 0.0, "hole_l1": 0.0, "psnr": 1e9, "psnr_hole": 1e9, "ssim": 1.0,
              "st_lpips": -1.0},
    "mean_fill": {"fid": 1e9, "kid": 1e9, "kid_std": 0.0, "hole_l1": 1.0, "psnr": -1e9, "psnr_hole": -1e9,
                  "ssim": 0.0, "st_lpips": 1e9},
}


@pytest.fixture
def curve_repo(prepared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository folder holding what `dvc repro evaluate` leaves behind, for the tiny params."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FASHION_EDIT_PIPELINE_RUN", raising=False)
    params = tiny_params()
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "prepared").symlink_to(prepared_data, target_is_directory=True)
    write_params(repo / "params.yaml", params)
    test = open_split(prepared_data / "test")
    save_reference(repo / FID_REFERENCE, compute_reference(test, InceptionFeatures(batch_size=4)), test)
    write_random_artifacts(repo / "artifacts")
    (repo / EVALUATE_JSON).parent.mkdir(parents=True)
    (repo / EVALUATE_JSON).write_text(json.dumps({"fid": 1.0, "baselines": BASELINE_SCORES}))
    return repo


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_two_points_resumed_with_baselines_and_figure(curve_repo: Path, one_thread, capsys):
    out, work = curve_repo / "docs" / "lc", curve_repo / "bench_runs" / "lc"
    args = ["--params", str(curve_repo / "params.yaml"), "--every-steps", "2", "--out", str(out), "--work", str(work)]
    # a budget spent by the first point stops after it
    assert main([*args, "--budget-minutes", "0.00001"]) == 0
    first = read_csv(out / "learning_curve.csv")
    assert [row["steps"] for row in first] == [2]
    printed = capsys.readouterr().out
    assert printed.count("does not beat Telea (OpenCV) within") == 4  # FID, KID, ST-LPIPS, hole PSNR
    assert printed.count("beats mean-colour fill after") == 4 and "(step 2)" in printed
    # the same command with more budget resumes: the first row is kept, training continues from step 2
    assert main([*args, "--budget-minutes", "60", "--max-steps", "4"]) == 0
    printed = capsys.readouterr().out
    assert "resuming after 1 points" in printed
    rows = read_csv(out / "learning_curve.csv")
    assert [row["steps"] for row in rows] == [2, 4] and rows[0] == first[0]
    assert 0 < rows[0]["train_seconds"] < rows[1]["train_seconds"]
    assert [row["images_seen"] for row in rows] == [8, 16]
    assert all(math.isfinite(row[k]) for row in rows for k in METRIC_COLUMNS)
    assert (out / "learning_curve.png").stat().st_size > 1000

    data = json.loads((out / "learning_curve.json").read_text())
    assert data["baselines"]["telea"]["psnr_hole"] == 1e9 and data["baselines"]["mean_fill"]["fid"] == 1e9
    assert data["params"]["batch_size"] == 4 and data["params"]["resolution"] == [64, 64]
    assert data["hardware"]["cpu_capability"] and len(data["rows"]) == 2
    assert data["crossings"]["fid"] == {"telea": None,
                                        "mean_fill": {"steps": 2, "train_seconds": rows[0]["train_seconds"]}}
    assert (work / "mlflow.db").is_file()  # the curve's runs stay out of the repository's store
    assert not (curve_repo / "mlflow.db").exists()


def test_missing_evaluate_json_exits_1_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_params(tmp_path / "params.yaml", tiny_params())
    for path in required_inputs(tmp_path):  # every other input is present (checked before any is read)
        if path != tmp_path / EVALUATE_JSON:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    assert main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out"),
                 "--work", str(tmp_path / "work")]) == 1
    err = capsys.readouterr().err
    assert f"missing pipeline outputs: {tmp_path / EVALUATE_JSON} (run `dvc repro evaluate` first)" in err
    assert not (tmp_path / "out").exists()
