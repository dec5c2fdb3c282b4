"""Evaluation stage and segmenter on the tiny prepared dataset with tiny random-init checkpoints."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fashion_edit.data.store import open_split
from fashion_edit.evaluation.evaluate import BASELINES, GRID_COLUMNS, evaluate, grid_indices, run_evaluation
from fashion_edit.evaluation.fid_reference import FidReferenceError, compute_reference, load_reference, save_reference
from fashion_edit.evaluation.headline import HEADLINE_METRICS, MODEL, se_key
from fashion_edit.evaluation.metrics.fid import InceptionFeatures
from fashion_edit.layout import EvaluatePaths
from fashion_edit.serving.editor import EditorNetworks
from fashion_edit.training.checkpoints import atomic_torch_save
from fashion_edit.weights import NetworkFileError, architecture_of
from tests.conftest import tiny_params, write_random_artifacts

MODEL_KEYS = ("fid", "kid", "kid_std", "parser_miou_hole", "parser_miou", "parser_pixel_acc_hole", "parser_pixel_acc",
              "seg_consistency_miou", "segmenter_ceiling_miou", "hole_l1", "psnr", "ssim", "st_lpips")
IMAGE_KEYS = ("fid", "kid", "kid_std", "hole_l1", "psnr", "psnr_hole", "ssim", "st_lpips", "fid_se", "kid_se",
              "st_lpips_se", "psnr_hole_se")


def evaluate_paths(root: Path, prepared: Path) -> EvaluatePaths:
    return EvaluatePaths(prepared=prepared, artifacts=root / "artifacts", metrics=root / "reports/evaluate.json",
                         headlines=root / "reports/metrics/evaluate", report=root / "reports/evaluate.md",
                         grid=root / "reports/evaluate/samples.png", repo_root=root,
                         diversity_grid=root / "reports/evaluate/diversity.png")


@pytest.fixture(scope="module")
def evaluated(prepared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One evaluation run (MLflow in a module-private SQLite store); returns (paths, metrics, tracking URI)."""
    root = tmp_path_factory.mktemp("evaluate")
    write_random_artifacts(root / "artifacts")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    params = tiny_params({"mlflow": {"tracking_uri": uri}})
    paths = evaluate_paths(root, prepared_data)
    result = run_evaluation(params, paths)
    return paths, result.metrics, uri


def test_metrics_file_has_every_key_in_range(evaluated):
    paths, metrics, _ = evaluated
    written = json.loads(paths.metrics.read_text())
    assert written == metrics
    for key in MODEL_KEYS:
        assert isinstance(written[key], float) and math.isfinite(written[key]), key
    for key in ("parser_miou_hole", "parser_miou", "parser_pixel_acc_hole", "parser_pixel_acc",
                "seg_consistency_miou", "segmenter_ceiling_miou", "ssim"):
        assert 0.0 <= written[key] <= 1.0, key
    assert written["fid"] >= 0 and 0 <= written["hole_l1"] <= 1 and written["st_lpips"] >= 0
    # 4 real vs 4 edited images: KID's one subset is the whole split, so no spread
    assert written["kid_std"] == 0.0
    for name in BASELINES:
        assert math.isfinite(written["baselines"][name]["kid"]) and written["baselines"][name]["kid_std"] == 0.0
    assert written["test_images"] == 4 and written["images_without_hole"] == 0


def test_every_headline_metric_has_a_bootstrap_standard_error(evaluated):
    _, metrics, _ = evaluated
    assert metrics["bootstrap_resamples"] == tiny_params().evaluate.bootstrap_resamples
    for key in HEADLINE_METRICS:
        assert math.isfinite(metrics[se_key(key)]) and metrics[se_key(key)] > 0, key
    for name in BASELINES:
        assert all(metrics["baselines"][name][se_key(key)] > 0 for key in ("fid", "kid", "st_lpips", "psnr_hole"))


def test_headline_files_hold_the_same_short_keys_for_each_method(evaluated):
    paths, metrics, _ = evaluated
    assert sorted(p.name for p in paths.headlines.iterdir()) == sorted(f"{m}.json" for m in (MODEL, *BASELINES))
    model = json.loads((paths.headlines / f"{MODEL}.json").read_text())
    assert model == {key: metrics[key] for key in HEADLINE_METRICS}
    for name in BASELINES:
        baseline = json.loads((paths.headlines / f"{name}.json").read_text())
        assert baseline == {key: metrics["baselines"][name][key] for key in HEADLINE_METRICS if key != "parser_miou"}


def test_baselines_are_scored_by_the_same_metrics(evaluated):
    paths, metrics, _ = evaluated
    assert set(metrics["baselines"]) == set(BASELINES) == {"telea", "mean_fill"}
    for name, scores in metrics["baselines"].items():
        assert set(scores) == set(IMAGE_KEYS), name
        assert all(math.isfinite(v) for v in scores.values())
    # both baselines copy the known pixels, so whole-image PSNR beats hole PSNR
    assert all(s["psnr"] > s["psnr_hole"] for s in metrics["baselines"].values())
    report = paths.report.read_text()
    assert "baseline: telea" in report and "baseline: mean_fill" in report and "this model" in report
    assert "KID (kid_bilinear299) ↓" in report and report.count(" ± ") >= 13  # headline metrics ± SE


def test_sample_grid_has_one_row_per_fixed_item_and_five_columns(evaluated, prepared_data: Path):
    import cv2

    paths, _, _ = evaluated
    grid = cv2.imread(str(paths.grid))
    rows = len(grid_indices(4, tiny_params().evaluate.grid_items))
    side, pad, header = 64, 2, 14
    assert grid.shape == (header + rows * (side + pad) + pad, len(GRID_COLUMNS) * (side + pad) + pad, 3)


def test_evaluation_is_logged_to_mlflow(evaluated):
    from mlflow import MlflowClient

    _, metrics, uri = evaluated
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`dvc.stage` = 'evaluate'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    logged = runs[0].data.metrics
    assert logged["fid"] == pytest.approx(metrics["fid"])
    assert logged["baselines.telea.fid"] == pytest.approx(metrics["baselines"]["telea"]["fid"])
    assert logged["kid"] == pytest.approx(metrics["kid"])
    assert logged["baselines.mean_fill.kid"] == pytest.approx(metrics["baselines"]["mean_fill"]["kid"])
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id, "samples")}
    assert "samples/evaluate_grid.png" in names


def test_model_only_evaluation_leaves_out_baselines_and_ceiling(evaluated):
    paths, metrics, _ = evaluated
    networks = EditorNetworks.from_artifacts(tiny_params(), paths.artifacts)
    alone = evaluate(tiny_params(), paths, networks, model_only=True).metrics
    assert "baselines" not in alone and "segmenter_ceiling_miou" not in alone  # the evaluate stage's
    assert alone["fid"] == pytest.approx(metrics["fid"]) and alone["parser_miou"] == metrics["parser_miou"]
    assert alone["kid"] == pytest.approx(metrics["kid"])


def test_diversity_is_scored_and_drawn_and_zero_for_an_untrained_deterministic_model(evaluated, prepared_data):
    """Random-init heads start at exactly zero (residuals on the fills), so the noise changes nothing: the
    deterministic baseline of seed 001's claim, exactly 0 here."""
    paths, metrics, _ = evaluated
    assert metrics["samples"] == 2
    assert metrics["diversity_lpips"] == 0.0 and metrics["diversity_parsing"] == 0.0
    assert metrics["diversity_garment_classes"] >= 0 and math.isfinite(metrics["samples_fid"])
    grid = cv2.imread(str(paths.diversity_grid))
    rows = len(grid_indices(len(open_split(prepared_data / "test")), tiny_params().evaluate.grid_items))
    single = cv2.imread(str(paths.grid))
    assert grid.shape[0] == single.shape[0]  # as many rows as the sample grid, one column per sample + the input
    assert grid.shape[1] < single.shape[1] and rows >= 2
    assert "Diversity" in paths.report.read_text()


def test_grid_items_are_spread_over_the_split():
    assert grid_indices(100, 5) == [0, 25, 50, 74, 99]
    assert grid_indices(3, 8) == [0, 1, 2]


def test_missing_weights_are_reported(prepared_data: Path, tmp_path: Path):
    write_random_artifacts(tmp_path / "artifacts")
    (tmp_path / "artifacts" / "inpainter" / "generator.pt").unlink()
    with pytest.raises(NetworkFileError, match="inpainter/generator.pt.*dvc repro train_inpainter"):
        run_evaluation(tiny_params({"mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"}}),
                       evaluate_paths(tmp_path, prepared_data))


def test_weights_written_before_the_one_format_still_load(prepared_data: Path, tmp_path: Path):
    """A pipeline whose generator.pt files are bare state dicts (and whose segmenter.pt is the segmenter's own
    first format) evaluates the same networks as one in the current format."""
    params = tiny_params()
    write_random_artifacts(tmp_path / "new")
    current = EditorNetworks.from_artifacts(params, tmp_path / "new")
    old = tmp_path / "old"
    for name in ("parser", "inpainter"):
        atomic_torch_save(getattr(current, name).state_dict(), old / name / "generator.pt")
    segmenter_arch = {**architecture_of(params, "segmenter"), "num_classes": 20}
    atomic_torch_save({"format": "fashion-edit-segmenter/1", "architecture": segmenter_arch,
                       "state_dict": current.segmenter.state_dict()}, old / "segmenter" / "segmenter.pt")
    legacy = EditorNetworks.from_artifacts(params, old)
    for name in ("parser", "inpainter", "segmenter"):
        mine, theirs = getattr(current, name).state_dict(), getattr(legacy, name).state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


# ----------------------------------------------------------------------------- FID reference
def test_stored_fid_reference_gives_the_in_process_scores(evaluated, prepared_data: Path):
    """The fid_reference stage's file reproduces the FID computed without it (same real features)."""
    paths, metrics, _ = evaluated
    test = open_split(prepared_data / "test")
    reference = paths.repo_root / "reference" / "test.npz"
    save_reference(reference, compute_reference(test, InceptionFeatures(batch_size=7)), test)
    networks = EditorNetworks.from_artifacts(tiny_params(), paths.artifacts)
    stored = evaluate(tiny_params(), dataclasses.replace(paths, fid_reference=reference), networks).metrics
    assert stored["fid"] == pytest.approx(metrics["fid"], rel=1e-6)
    assert stored["kid"] == pytest.approx(metrics["kid"], rel=1e-6, abs=1e-9)
    assert stored["baselines"]["telea"]["fid"] == pytest.approx(metrics["baselines"]["telea"]["fid"], rel=1e-6)
    assert stored["st_lpips"] == pytest.approx(metrics["st_lpips"], rel=1e-6)


def test_fid_reference_of_other_images_is_refused(prepared_data: Path, tmp_path: Path):
    test, val = open_split(prepared_data / "test"), open_split(prepared_data / "val")
    features = np.random.default_rng(0).normal(size=(len(val), 2048))
    save_reference(tmp_path / "test.npz", features, val)
    with pytest.raises(FidReferenceError, match=r"test\.npz.*other test images.*dvc repro fid_reference"):
        load_reference(tmp_path / "test.npz", test)


def test_missing_or_corrupt_fid_reference_names_the_file(prepared_data: Path, tmp_path: Path):
    test = open_split(prepared_data / "test")
    with pytest.raises(FidReferenceError, match=r"missing\.npz.*missing.*dvc repro fid_reference"):
        load_reference(tmp_path / "missing.npz", test)
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(FidReferenceError, match=r"bad\.npz.*not a readable.*dvc repro fid_reference"):
        load_reference(tmp_path / "bad.npz", test)
    save_reference(tmp_path / "half.npz", np.zeros((len(test), 2048)), test)
    whole = (tmp_path / "half.npz").read_bytes()
    (tmp_path / "half.npz").write_bytes(whole[:len(whole) // 2])  # a copy cut short
    with pytest.raises(FidReferenceError, match=r"half\.npz: not a readable FID reference \(BadZipFile"):
        load_reference(tmp_path / "half.npz", test)


def test_fid_reference_of_fewer_than_two_images_is_refused(prepared_data: Path):
    test = open_split(prepared_data / "test")
    single = dataclasses.replace(test, images=test.images[:1], stems=test.stems[:1])
    with pytest.raises(FidReferenceError, match=r"1 test images; FID needs at least 2"):
        compute_reference(single, InceptionFeatures(net=torch.nn.Identity()))
