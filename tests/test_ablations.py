"""The ablation study: variant params, the foreach stages DVC expands, one tiny run end to end."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from fashion_edit.config import ParamsError
from fashion_edit.evaluation.ablation import variant_metric_files, variant_params
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
