"""The report stage's table and plot, built from fixture metrics."""
import json
import math

import pytest

from fashion_edit.evaluation.ablation_report import build_report, load_variant_metrics, markdown_table, summarize
from fashion_edit.evaluation.claims import (CLAIMS, CONTRADICTED, HOLDS, NOT_RUN, WITHIN_NOISE, Claim, judge,
                                            judge_all)
from fashion_edit.evaluation.headline import HEADLINE_METRICS


def _metrics(fid: float, miou: float) -> dict:
    return {"fid": fid, "kid": fid / 1000, "kid_std": 0.0, "parser_miou": miou, "seg_consistency_miou": miou - 0.1, "psnr_hole": 20.0,
            "ssim": 0.8, "st_lpips": 0.2, "g_params": 2_500_000, "d_params": 700_000, "train_seconds": 61.0,
            "steps": 16}


def test_summary_mean_and_sample_std():
    mean, std, n = summarize([{"fid": 10.0}, {"fid": 14.0}], "fid")
    assert (mean, n) == (12.0, 2) and std == pytest.approx(math.sqrt(8.0))
    assert math.isnan(summarize([{"fid": 3.0}], "fid")[1])
    assert summarize([{}], "fid")[2] == 0


def test_table_has_one_row_per_variant_and_marks_best():
    table = markdown_table({"full": [_metrics(30.0, 0.6)], "no_gan": [_metrics(45.0, 0.5)]})
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| full |") and lines[3].startswith("| no_gan |")
    assert "**30.0**" in lines[2] and "45.0" in lines[3] and "**45.0**" not in lines[3]
    assert "2.50 M" in lines[2]
    assert lines[0].index("FID ↓") < lines[0].index("KID ↓") < lines[0].index("parser mIoU")
    assert "**0.0300**" in lines[2] and "0.0450" in lines[3]
    old = markdown_table({"old": [{"fid": 30.0}]})  # metrics written before KID existed
    assert "| **30.0** | – |" in old


def test_seeds_above_one_show_spread(tmp_path):
    metrics = {"full": [_metrics(30.0, 0.6), _metrics(34.0, 0.62)], "spade_norm": [_metrics(40.0, 0.5)] * 2}
    text = build_report(metrics, tmp_path / "ablations.md", tmp_path / "ablations.png", tmp_path / "summary.json")
    assert "32.0 ± 2.8" in text and "mean ± sample std" in text
    assert "trained 16 steps per run" in text  # the reader sees how short the training was
    assert (tmp_path / "ablations.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["variants"]["full"]["fid"]["n"] == 2


def test_one_headline_file_per_variant_with_the_means_over_seeds(tmp_path):
    metrics = {"full": [_metrics(30.0, 0.6), _metrics(34.0, 0.62)], "old": [{"fid": 50.0, "psnr_hole": 18.0}]}
    build_report(metrics, tmp_path / "a.md", tmp_path / "a.png", headlines=tmp_path / "headlines")
    full = json.loads((tmp_path / "headlines" / "full.json").read_text())
    assert list(full) == list(HEADLINE_METRICS)  # the keys and order of the evaluation's headline files
    assert full["fid"] == pytest.approx(32.0) and full["parser_miou"] == pytest.approx(0.61)
    assert json.loads((tmp_path / "headlines" / "old.json").read_text()) == {"fid": 50.0, "psnr_hole": 18.0}


def test_missing_variant_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_gan"):
        load_variant_metrics({"no_gan": [tmp_path / "missing.json"]})


def test_empty_ablations_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="ablations"):
        build_report({}, tmp_path / "a.md", tmp_path / "a.png")


def test_the_report_stage_writes_under_the_params_root_and_ends_its_run_when_logging_fails(tmp_path, mlflow_uri,
                                                                                          monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from fashion_edit.layout import ablation_metrics_file
    from fashion_edit.tracking.runs import StageRun
    from stages import report
    from tests.conftest import tiny_params, write_params

    root = tmp_path / "repo"
    params = tiny_params({"mlflow": {"experiment": "report-fails"}, "ablation": {"variants": ["full"], "seeds": 1}})
    root.mkdir()
    params_path = write_params(root / "params.yaml", params)
    (root / ablation_metrics_file("full", 0)).parent.mkdir(parents=True)
    (root / ablation_metrics_file("full", 0)).write_text(json.dumps(_metrics(30.0, 0.6)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def failing_upload(self, path, artifact_path=None):
        raise OSError("artifact store unavailable")

    monkeypatch.setattr(StageRun, "log_artifact", failing_upload)
    assert report.main(["--params", str(params_path)]) == 1
    assert "report: error: artifact store unavailable" in capsys.readouterr().err
    assert (root / "reports" / "ablations.md").is_file() and (root / "reports" / "metrics" / "ablations" / "full.json").is_file()
    assert not any(elsewhere.iterdir())  # nothing lands in the working directory
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("report-fails").experiment_id],
                                filter_string="tags.`fashion_edit.role` = 'stage'")
    assert run.info.status == "FAILED" and "artifact store unavailable" in run.data.tags["failure"]


# ----------------------------------------------------------------------------- claims and verdicts
def _seeds(key: str, *values: float) -> list[dict]:
    return [{key: v} for v in values]


def test_verdict_rule_compares_the_gap_with_z_standard_errors():
    claim = Claim("full", "no_gan", "fid", True, "test")
    # gap 10, SE = sqrt(1/3 + 1/3) = 0.816: far beyond 2 SE
    holds = judge(claim, {"full": _seeds("fid", 29, 30, 31), "no_gan": _seeds("fid", 39, 40, 41)}, z=2)
    assert holds.verdict == HOLDS and holds.difference == pytest.approx(10.0)
    assert holds.standard_error == pytest.approx(math.sqrt(2 / 3))
    backwards = judge(claim, {"full": _seeds("fid", 39, 40, 41), "no_gan": _seeds("fid", 29, 30, 31)}, z=2)
    assert backwards.verdict == CONTRADICTED and backwards.difference == pytest.approx(-10.0)
    noisy = judge(claim, {"full": _seeds("fid", 20, 30, 40), "no_gan": _seeds("fid", 25, 35, 45)}, z=2)
    assert noisy.verdict == WITHIN_NOISE
    assert judge(claim, {"full": _seeds("fid", 30), "no_gan": _seeds("fid", 40, 41)}, z=2).verdict == NOT_RUN
    assert judge(claim, {"full": _seeds("fid", 30, 31)}, z=2).verdict == NOT_RUN  # a variant not in the study


def test_higher_is_better_metrics_count_the_gap_the_other_way():
    claim = Claim("full", "no_sketch_colour", "psnr_hole", False, "test")
    verdict = judge(claim, {"full": _seeds("psnr_hole", 24, 25, 26), "no_sketch_colour": _seeds("psnr_hole", 19, 20, 21)},
                    z=2)
    assert verdict.verdict == HOLDS and verdict.difference == pytest.approx(5.0)


def test_every_claim_names_variants_of_params_yaml_and_the_report_lists_the_verdicts(tmp_path):
    from tests.conftest import tiny_params

    known = set(tiny_params().ablations)
    assert all(c.better in known and c.worse in known for c in CLAIMS)
    published = {c.worse: c.published for c in CLAIMS if c.better == "full" and c.published}
    assert published["no_gan"] == (23.07, 35.90)  # seed 001 Table 4-1
    metrics = {"full": [_metrics(30.0, 0.6), _metrics(31.0, 0.6)], "no_gan": [_metrics(45.0, 0.5), _metrics(46.0, 0.5)]}
    text = build_report(metrics, tmp_path / "a.md", tmp_path / "a.png", tmp_path / "a.json", z=2.0)
    assert "| full better than no_gan (fid) | seed 001 Table 4-1 | 23.07 vs 35.9 | +15 ± 0.71 | holds |" in text
    assert "| full better than spade_norm (fid) |" in text and "not run (seeds 2/0)" in text
    claims = json.loads((tmp_path / "a.json").read_text())["claims"]
    assert len(claims) == len(judge_all(metrics, 2.0)) and claims[6]["verdict"] == "holds"


def test_learning_curves_share_one_figure(tmp_path):
    curve = [{"step": s, "train_seconds": 2.0 * s, "fid": 100.0 / s, "kid": 0.1 / s} for s in (1, 2, 4)]
    metrics = {"full": [_metrics(30.0, 0.6)], "no_gan": [_metrics(45.0, 0.5)]}
    text = build_report(metrics, tmp_path / "a.md", tmp_path / "a.png", curves={"full": [curve], "no_gan": [curve]},
                        curves_png=tmp_path / "curves.png")
    assert "![learning curves](curves.png)" in text and (tmp_path / "curves.png").stat().st_size > 1000
