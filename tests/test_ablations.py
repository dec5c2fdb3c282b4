"""The ablation study: variant params, the foreach stages DVC expands, one tiny run end to end."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from fashion_edit.config import ParamsError
from fashion_edit.evaluation.ablation import (LearningCurveHook, curve_steps, read_curve, reuses_main_inpainter,
                                             variant_metric_files, variant_params)
from fashion_edit.evaluation.headline import HEADLINE_METRICS
from fashion_edit.layout import ABLATION_HEADLINES
from tests.conftest import DVC_METRICS_WIDTH, run_in, tiny_params


def test_variant_applies_overrides_training_length_and_seed_offset():
    params = tiny_params({"ablation": {"steps": 3, "seeds": 2}, "train_inpainter": {"seed": 7}})
    p = variant_params(params, "spade_norm", seed_index=1)
    assert p.inpainter.norm == "spade" and params.inpainter.norm == "anl"
    assert p.train_inpainter.steps == 3 and p.train_inpainter.seed == 8
    assert variant_params(params, "no_gan", 0).inpainter_loss.gan == 0.0


def test_unknown_variant_names_the_key():
    with pytest.raises(ParamsError, match="ablations.nope"):
        variant_params(tiny_params(), "nope", 0)


def test_bad_override_fails_naming_the_variant():
    params = tiny_params({"ablations": {"broken": {"inpainter": {"norm": "batch"}}}})
    with pytest.raises(ParamsError, match="ablations.broken"):
        variant_params(params, "broken", 0)


def test_report_reads_one_file_per_seed_and_variant(tmp_path):
    files = variant_metric_files(tiny_params({"ablation": {"seeds": 2}}), tmp_path)
    assert list(files) == tiny_params().ablation.variants
    assert [f.name for f in files["full"]] == ["seed0.json", "seed1.json"]


def test_curve_points_are_evenly_spaced_and_end_at_the_last_step():
    assert curve_steps(100, 4) == [25, 50, 75, 100]
    assert curve_steps(100, 1) == [100]
    assert curve_steps(3, 5) == [1, 2, 3]


def test_a_learning_curve_trains_the_full_variant_instead_of_reusing_it():
    params = tiny_params({"ablation": {"steps": 6}})  # = train_inpainter.steps
    assert reuses_main_inpainter(params, "full", 0)
    assert not reuses_main_inpainter(tiny_params({"ablation": {"steps": 6, "curve_points": 3}}), "full", 0)


def test_curve_evaluations_do_not_change_training(tmp_path, prepared_data, mlflow_uri):
    """The hook evaluates copies at steps 2 and 4 with a scorer that draws random numbers: the losses and the
    weights equal those of a run without it, and the CSV holds a row per point."""
    import torch

    from fashion_edit.layout import TrainPaths
    from fashion_edit.training.distributed import DistContext
    from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
    from fashion_edit.training.runner import train

    ctx = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    params = tiny_params({"train_inpainter": {"steps": 5}})

    def paths(name: str) -> TrainPaths:
        return TrainPaths(prepared=prepared_data, checkpoints=tmp_path / name / "ck", artifacts=tmp_path / name / "a",
                          reports=tmp_path / name / "r", repo_root=tmp_path / name)

    def noisy_score(network: torch.nn.Module) -> dict[str, float]:
        network.eval()  # a copy: the network being trained stays in training mode
        return {"fid": float(torch.rand(())), "kid": float(torch.randn(())), "psnr_hole": 1.0,
                "seg_consistency_miou": 0.5}

    plain = train(params, INPAINTER_SPEC, paths("plain"), ctx)
    curve_file = tmp_path / "curve.csv"
    curved = train(params, INPAINTER_SPEC, paths("curved"), ctx, hooks=[LearningCurveHook([2, 4], noisy_score,
                                                                                              curve_file)])
    assert curved.history.rows == plain.history.rows
    for a, b in zip(plain.generator.state_dict().values(), curved.generator.state_dict().values()):
        assert torch.equal(a, b)
    rows = read_curve(curve_file)
    assert [row["step"] for row in rows] == [2.0, 4.0] and rows[1]["train_seconds"] > rows[0]["train_seconds"] > 0


@pytest.mark.slow
def test_two_variants_run_end_to_end_and_only_the_edited_one_reruns(tmp_path, monkeypatch):
    from tests.conftest import copy_repo

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_params({"ablations": {"full": {}, "no_gan": {"inpainter_loss": {"gan": 0.0}}},
                          "ablation": {"steps": 2, "seeds": 1, "variants": ["full", "no_gan"]}})
    params = params.model_copy(update={"ablations": {"full": {}, "no_gan": {"inpainter_loss": {"gan": 0.0}}}})
    repo = copy_repo(tmp_path / "repo", params)
    stages = run_in(repo, "dvc", "stage", "list", "--name-only").stdout.split()
    assert [s for s in stages if s.startswith("ablations@")] == ["ablations@full", "ablations@no_gan"]

    run_in(repo, "dvc", "repro", "report", timeout=900)
    table = (repo / "reports" / "ablations.md").read_text()
    assert "| full |" in table and "| no_gan |" in table and "KID ↓" in table
    metrics = json.loads((repo / "reports" / "ablations" / "no_gan" / "seed0.json").read_text())
    assert metrics["steps"] == 2 and metrics["fid"] > 0 and 0 <= metrics["seg_consistency_miou"] <= 1
    assert math.isfinite(metrics["kid"]) and metrics["kid_std"] >= 0
    assert (repo / "reports" / "figures" / "ablations.png").stat().st_size > 1000
    assert (repo / "reports" / "figures" / "ablation_curves.png").stat().st_size > 1000
    assert metrics["g_gflops"] > 0 and "## Published claims" in table
    curve = read_curve(repo / "reports" / "ablations" / "no_gan" / "seed0_curve.csv")
    assert [row["step"] for row in curve] == [2.0] and curve[0]["fid"] == pytest.approx(metrics["fid"])
    # one headline file per variant (the evaluation's short keys), and the default metrics view stays narrow
    headline = json.loads((repo / ABLATION_HEADLINES / "no_gan.json").read_text())
    assert list(headline) == list(HEADLINE_METRICS) and headline["fid"] == metrics["fid"]
    table = run_in(repo, "dvc", "metrics", "show").stdout
    assert "reports/metrics/ablations/no_gan.json" in table, table
    assert max(map(len, table.splitlines())) <= DVC_METRICS_WIDTH, table

    data = yaml.safe_load((repo / "params.yaml").read_text())
    data["ablations"]["no_gan"] = {"inpainter_loss": {"gan": 0.0}, "inpainter": {"attention": False}}
    (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    status = run_in(repo, "dvc", "status", "ablations@full", "ablations@no_gan").stdout
    assert "ablations@no_gan" in status and "ablations@full" not in status
