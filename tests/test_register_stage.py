"""The register stage against a SQLite registry: logged models, candidate/champion aliases, the gate."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fashion_edit.evaluation.headline import HEADLINE_METRICS
from fashion_edit.layout import EVALUATE_DETAIL, REGISTER_REPORT
from fashion_edit.layout import RegisterPaths
from fashion_edit.networks import parser_input
from fashion_edit.serving.editor import Editor
from fashion_edit.serving.pyfunc import example_batch, load_registered_model
from fashion_edit.tracking import registry
from fashion_edit.tracking.register import gate_and_promote, register_and_gate, register_candidates, register_models
from stages import register as register_stage
from tests.conftest import DVC_METRICS_WIDTH, tiny_params
from tests.test_evaluate import write_random_artifacts
from tests.test_registry import evaluation

METRICS = {**evaluation(fid=100.0, parser_miou=0.5), "parser_miou_hole": 0.3, "hole_l1": 0.1,
           "baselines": {"telea": {"fid": 120.0}}}


def register_paths(root: Path) -> RegisterPaths:
    return RegisterPaths(artifacts=root / "artifacts", evaluation=root / EVALUATE_DETAIL,
                         bundle=root / "artifacts/editor", report=root / REGISTER_REPORT, repo_root=root)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory):
    """One real register run into an empty registry; returns (paths, report, params, client)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("register")
    write_random_artifacts(root / "artifacts")
    paths = register_paths(root)
    paths.evaluation.parent.mkdir(parents=True)
    paths.evaluation.write_text(json.dumps(METRICS))
    params = tiny_params({"mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}})
    report = register_models(params, paths)
    return paths, report, params, MlflowClient(tracking_uri=params.mlflow.tracking_uri)


def logged_models(report: dict) -> dict[str, str]:
    return {name: f"runs:/{report['mlflow_run_id']}/{name}" for name in registry.MODEL_NAMES}


def aliases(client, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_first_registration_becomes_champion(registered):
    paths, report, _, client = registered
    assert report["versions"] == {"parser": "1", "inpainter": "1", "editor": "1"}
    assert report["promoted"] is True and "no champion yet" in report["reason"]
    assert json.loads(paths.report.read_text()) == report
    for name in registry.MODEL_NAMES:
        assert aliases(client, name) == {"candidate": "1", "champion": "1"}


def test_versions_carry_metrics_and_pipeline_identity(registered):
    _, _, _, client = registered
    tags = client.get_model_version("editor", "1").tags
    assert float(tags["metric.fid"]) == 100.0 and float(tags["metric.parser_miou"]) == 0.5
    for key in HEADLINE_METRICS:  # each headline metric and its standard error: what the gate compares
        assert float(tags[f"metric.{key}_se"]) == METRICS[f"{key}_se"]
    assert "metric.baselines" not in " ".join(tags)  # only the model's own numbers are gate material
    for key in ("git.commit", "dvc.lock_md5", "dvc.params_md5", "pipeline.run"):
        assert key in tags


def test_registered_models_load_and_predict(registered):
    paths, _, params, _ = registered
    uri = params.mlflow.tracking_uri
    editor = load_registered_model("models:/editor@champion", uri)
    request = {"image": np.full((40, 40, 3), 120, np.uint8), "mask": np.pad(np.ones((20, 20), np.uint8), 10)}
    [edit] = editor.predict([request], params={"output": "array"})  # arrays: one mapping per edit
    assert np.array_equal(np.asarray(edit["image"], np.uint8), Editor.load(paths.bundle).edit(**request))
    parser = load_registered_model("models:/parser@champion", uri)
    logits = parser.predict(parser_input(example_batch((64, 64), count=3), params.parser.label_strokes).numpy())
    assert logits.shape == (3, 20, 64, 64)
    inpainter = load_registered_model("models:/inpainter/1", uri)
    assert inpainter.predict(np.zeros((1, 30, 64, 64), np.float32)).shape == (1, 3, 64, 64)


def test_worse_candidate_stays_challenger_and_better_one_is_promoted(registered):
    paths, report, params, client = registered
    identity = registry.pipeline_identity(params, paths.repo_root)
    worse_metrics = evaluation(fid=150.0, parser_miou=0.6)
    worse = register_candidates(client, logged_models(report), worse_metrics, identity)
    decision, _ = gate_and_promote(client, worse, worse_metrics, params, params.mlflow.tracking_uri)
    assert not decision.promote and "fid worse" in decision.reason
    for name in registry.MODEL_NAMES:
        assert aliases(client, name) == {"candidate": worse[name], "champion": "1"}

    better_metrics = evaluation(fid=90.0, parser_miou=0.5)
    better = register_candidates(client, logged_models(report), better_metrics, identity)
    decision, _ = gate_and_promote(client, better, better_metrics, params, params.mlflow.tracking_uri)
    assert decision.promote
    for name in registry.MODEL_NAMES:
        assert aliases(client, name) == {"candidate": better[name], "champion": better[name]}
    assert client.get_model_version("editor", better["editor"]).tags["champion.previous_version"] == "1"


def test_a_gain_within_noise_is_not_promoted_unless_noise_z_allows_it(registered):
    paths, report, params, client = registered
    champion_before = aliases(client, "editor")["champion"]
    gain = registry.champion_metrics(client)["fid"] - 3.0  # 1.3 sigma of sqrt(1.6² + 1.6²)
    candidate = evaluation(fid=gain, parser_miou=0.5)
    versions = register_candidates(client, {"editor": logged_models(report)["editor"]}, candidate, {})
    decision, _ = gate_and_promote(client, versions, candidate, params, params.mlflow.tracking_uri)
    assert not decision.promote and "no headline metric better" in decision.reason
    assert aliases(client, "editor")["champion"] == champion_before
    lenient = params.model_copy(update={"registry": params.registry.model_copy(update={"noise_z": 1.0})})
    assert gate_and_promote(client, versions, candidate, lenient, lenient.mlflow.tracking_uri)[0].promote


def test_a_dry_run_decides_and_reports_but_moves_no_alias(registered):
    paths, report, params, client = registered
    champion_before = aliases(client, "editor")["champion"]
    dry = params.model_copy(update={"registry": params.registry.model_copy(update={"promote": False})})
    better = evaluation(fid=1.0, parser_miou=0.9)
    outcome = register_and_gate(client, logged_models(report), better, dry, paths.repo_root, "dry")
    assert outcome["gate_says_promote"] and not outcome["promoted"] and outcome["dry_run"]
    assert outcome["reason"].startswith("dry run (registry.promote=false): ")
    assert outcome["champion"]["editor"] == champion_before == aliases(client, "editor")["champion"]


def test_an_unreachable_tracking_server_changes_no_output(tmp_path: Path):
    import socket

    from fashion_edit.tracking.runs import TrackingError

    write_random_artifacts(tmp_path / "artifacts")
    paths = register_paths(tmp_path)
    paths.evaluation.parent.mkdir(parents=True)
    paths.evaluation.write_text(json.dumps(METRICS))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TrackingError, match="unreachable"):
        register_models(tiny_params({"mlflow": {"tracking_uri": f"http://127.0.0.1:{port}"}}), paths)
    assert not paths.bundle.exists() and not paths.report.exists()  # the bundle is a DVC output


def test_register_stage_reports_missing_evaluation(tmp_path: Path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert register_stage.main(["--params", str(params_file)]) == 1
    err = capsys.readouterr().err
    assert str(EVALUATE_DETAIL) in err and "dvc repro evaluate" in err
    assert not (tmp_path / "mlflow.db").exists()  # failed before touching the registry


@pytest.mark.slow
def test_dvc_stages_evaluate_register_and_the_edit_command(tiny_repo: Path, tmp_path: Path):
    """train_segmenter -> fid_reference -> evaluate -> register through DVC (training stages replaced by random weights),
    then `fashion_edit.serving.cli edit` with the registry's champion, then a no-op rerun registers nothing new."""
    import cv2

    from tests.conftest import run_in

    run_in(tiny_repo, "dvc", "repro", "preprocess")
    write_random_artifacts(tiny_repo / "artifacts")
    for stage in ("train_segmenter", "fid_reference", "evaluate", "register"):
        run_in(tiny_repo, "dvc", "repro", "--single-item", stage)
    shown = json.loads(run_in(tiny_repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]
    # the declared metrics are the headline files alone: one row per method, the same short keys
    # (the ablation report's folder is declared too, but not made by these stages)
    loaded = {path for path, result in metrics.items() if "data" in result}
    assert loaded == {f"reports/metrics/evaluate/{method}.json" for method in ("model", "telea", "mean_fill")}
    assert list(metrics["reports/metrics/evaluate/model.json"]["data"]) == list(HEADLINE_METRICS)
    assert set(metrics["reports/metrics/evaluate/telea.json"]["data"]) == set(HEADLINE_METRICS) - {"parser_miou"}
    table = run_in(tiny_repo, "dvc", "metrics", "show").stdout
    assert "psnr_hole" in table and max(map(len, table.splitlines())) <= DVC_METRICS_WIDTH, table
    detail = json.loads((tiny_repo / EVALUATE_DETAIL).read_text())
    assert {"fid_se", "seg_consistency_miou", "baselines"} <= set(detail)
    assert json.loads((tiny_repo / REGISTER_REPORT).read_text())["promoted"] is True

    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((96, 64, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "mask.png"), np.pad(np.full((30, 30), 255, np.uint8), ((30, 36), (10, 24))))
    run_in(tiny_repo, sys.executable, "-m", "fashion_edit.serving.cli", "edit", "--image", str(image), "--mask",
           str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png"), "--model", "models:/editor@champion")
    assert cv2.imread(str(tmp_path / "out.png")).shape == (96, 64, 3)

    rerun = run_in(tiny_repo, "dvc", "repro", "--single-item", "register")
    assert "didn't change" in rerun.stdout
    assert json.loads((tiny_repo / REGISTER_REPORT).read_text())["versions"]["editor"] == "1"


def test_two_promotions_at_once_leave_one_champion_across_the_three_models(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = tiny_params({"mlflow": {"tracking_uri": uri}})
    client = MlflowClient(uri)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    run = client.create_run(client.create_experiment("race", artifact_location=(tmp_path / "art").as_uri()))
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")

    def candidate(fid: float) -> tuple[dict[str, str], dict[str, float]]:
        metrics = evaluation(fid=fid)
        return {name: str(registry.register_version(client, name, f"runs:/{run.info.run_id}/model", metrics=metrics,
                                                    identity={}).version) for name in registry.MODEL_NAMES}, metrics

    def promote(versions: dict[str, str], metrics: dict[str, float]) -> None:
        gate_and_promote(MlflowClient(uri), versions, metrics, params, uri)

    for fid in (900.0, 600.0, 300.0, 100.0, 30.0, 10.0):  # each pair beats the champion before it
        pair = [candidate(fid * 0.5), candidate(fid * 0.5 - 1.0)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda args: promote(*args), pair))
        champions = {name: aliases(client, name)["champion"] for name in registry.MODEL_NAMES}
        assert len(set(champions.values())) == 1, f"mixed champion {champions}"  # one pair member's three versions
