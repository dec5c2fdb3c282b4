"""fashion_edit.tracking.registry against a real SQLite MLflow registry (the session's shared store)."""
from __future__ import annotations

import math
import uuid

import pytest

from fashion_edit.config import Params, RegisterParams
from fashion_edit.evaluation.headline import HEADLINE_METRICS, se_key
from fashion_edit.tracking.registry import (CANDIDATE, CHAMPION, RegistryError, champion_metrics, pipeline_identity,
                                            promote, promotion_decision, register_version, version_by_alias,
                                            version_metrics)

GATES = RegisterParams()
# a plausible evaluation of 120 test images: headline metrics and their bootstrap SEs
EVALUATION = {"fid": 110.342, "fid_se": 1.6, "kid": 0.0096, "kid_se": 0.0011, "st_lpips": 0.0626,
              "st_lpips_se": 0.0021, "psnr_hole": 22.51, "psnr_hole_se": 0.31, "parser_miou": 0.7833,
              "parser_miou_se": 0.0062}


def evaluation(**changes: float) -> dict[str, float]:
    return {**EVALUATION, **changes}
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
    def register(**changes: float):
        return register_version(client, name, _runs_model(client, experiment_id, tmp_path),
                                metrics=evaluation(**changes), identity=IDENTITY)

    first = register()
    decision = promotion_decision(version_metrics(first), champion_metrics(client, name), GATES)
    assert decision.promote and "no champion" in decision.reason
    promote(client, name, first.version, decision.reason)

    worse = register(fid=120.0, parser_miou=0.80)  # mIoU better beyond noise, but FID worse beyond it
    decision = promotion_decision(version_metrics(worse), champion_metrics(client, name), GATES)
    assert not decision.promote and "fid worse" in decision.reason
    assert version_by_alias(client, name, CHAMPION).version == first.version
    assert version_by_alias(client, name, CANDIDATE).version == worse.version

    better = register(fid=100.0)
    decision = promotion_decision(version_metrics(better), champion_metrics(client, name), GATES)
    assert decision.promote, decision.reason
    champion = promote(client, name, better.version, decision.reason)
    assert version_by_alias(client, name, CHAMPION).version == better.version
    assert champion.tags["champion.previous_version"] == str(first.version)
    assert "promoted: fid better" in champion.tags["champion.reason"]
    assert champion_metrics(client, name) == evaluation(fid=100.0)
    assert champion.tags["metric.fid_se"] == repr(EVALUATION["fid_se"])  # each SE is a tag of its own


def test_pipeline_identity_names_commit_lock_and_run(tmp_path, monkeypatch):
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    monkeypatch.setenv("FASHION_EDIT_PIPELINE_RUN", "retrain-20261121")
    identity = pipeline_identity(Params(), tmp_path)
    assert identity["pipeline.run"] == "retrain-20261121"
    assert identity["git.commit"] == "unknown" and identity["dvc.params_md5"] == "none"
    assert len(identity["dvc.lock_md5"]) == 32


# ------------------------------------------------------------------------- the gate
def test_the_issue_19_retrain_with_a_noise_level_fid_gain_is_not_promoted():
    # FID lower by 0.009 with hole PSNR and ST-LPIPS worse and the parser unchanged: noise, not progress
    champion = evaluation()
    candidate = evaluation(fid=110.333, psnr_hole=22.21, st_lpips=0.0651, kid=0.0099)
    decision = promotion_decision(candidate, champion, GATES)
    assert not decision.promote
    assert "no headline metric better than the champion's by more than z·σ" in decision.reason
    assert "fid 110.3330 vs 110.3420 (Δ -0.0090" in decision.reason  # both values at the deciding precision
    assert [c.key for c in decision.comparisons] == list(HEADLINE_METRICS)
    for key in HEADLINE_METRICS:  # every headline metric, with its gap and z·σ
        assert f"{key} " in decision.reason
    fid = decision.comparisons[0]
    assert fid.noise == pytest.approx(2.0 * math.hypot(1.6, 1.6)) and fid.verdict == "within noise"


def test_clearly_better_candidate_is_promoted():
    decision = promotion_decision(evaluation(fid=100.0, psnr_hole=23.8, st_lpips=0.055), evaluation(), GATES)
    assert decision.promote, decision.reason
    assert decision.reason.startswith("promoted: fid, st_lpips, psnr_hole better by more than z·σ")
    assert {c.key: c.verdict for c in decision.comparisons} == {
        "fid": "better", "kid": "within noise", "st_lpips": "better", "psnr_hole": "better",
        "parser_miou": "within noise"}


def test_clearly_worse_candidate_is_not_promoted():
    decision = promotion_decision(evaluation(fid=125.0, kid=0.02, psnr_hole=20.0), evaluation(), GATES)
    assert not decision.promote
    assert decision.reason.startswith("kept as challenger: fid, kid, psnr_hole worse")


def test_one_metric_worse_beyond_noise_blocks_the_others_gains():
    decision = promotion_decision(evaluation(fid=100.0, parser_miou=0.70), evaluation(), GATES)
    assert not decision.promote and "parser_miou worse" in decision.rule


def test_noise_z_sets_how_large_a_gap_must_be():
    candidate = evaluation(fid=105.0)  # 5.3 below: 2.3 sigma of sqrt(1.6² + 1.6²)
    assert promotion_decision(candidate, evaluation(), RegisterParams(noise_z=2.0)).promote
    assert not promotion_decision(candidate, evaluation(), RegisterParams(noise_z=3.0)).promote


def test_champion_without_se_tags_borrows_the_candidates_and_says_so():
    old_champion = {key: value for key, value in evaluation().items() if not key.endswith("_se")}
    decision = promotion_decision(evaluation(fid=100.0), old_champion, GATES)
    assert decision.promote
    assert "champion has no SE tags for fid, kid, st_lpips, psnr_hole, parser_miou" in decision.reason
    assert decision.comparisons[0].noise == pytest.approx(2.0 * math.hypot(1.6, 1.6))


def test_kid_is_printed_with_enough_digits_to_tell_the_values_apart():
    decision = promotion_decision(evaluation(kid=0.00961), evaluation(kid=0.00960), GATES)
    assert "kid 0.009610 vs 0.009600 (Δ +0.000010" in decision.reason


@pytest.mark.parametrize(("candidate", "champion", "promote_it", "why"), [
    (evaluation(), None, True, "no champion"),
    (evaluation(fid=math.nan), evaluation(), False, "non-finite fid=nan"),
    (evaluation(), {"fid": 20.0}, False, "cannot be compared"),
    ({k: v for k, v in evaluation().items() if k != se_key("kid")}, evaluation(), False,
     "no standard errors ['kid_se']"),
])
def test_promotion_decision_special_cases(candidate, champion, promote_it, why):
    decision = promotion_decision(candidate, champion, GATES)
    assert decision.promote is promote_it
    assert why in decision.reason


def test_candidate_without_gate_metrics_is_an_error():
    with pytest.raises(RegistryError, match=r"lack \['kid', 'st_lpips', 'psnr_hole', 'parser_miou'\]"):
        promotion_decision({"fid": 10.0}, None, GATES)
