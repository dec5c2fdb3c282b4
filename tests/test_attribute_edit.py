"""Attribute editing with a strength (issue 15): the parser's attribute mapping, its losses, the edit's checks,
the editor's attribute edits and the sweep stage."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashion_edit.data.attributes import ATTRIBUTES
from fashion_edit.data.store import open_split
from fashion_edit.layout import ATTRIBUTE_STRIPS, ATTRIBUTE_SWEEP_DETAIL, ATTRIBUTE_SWEEP_PLOT
from fashion_edit.serving.attribute_edit import (AttributeEditError, attribute_targets, check_strengths,
                                                 parse_attribute_requests)
from fashion_edit.serving.editor import EditInputs, Editor, EditorNetworks
from models.losses import attribute_regression_loss, orthogonality_loss
from models.parser import FreeFormParser
from tests.conftest import tiny_params, write_params, write_random_artifacts


def _parser_input(seed: int = 0, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 26, size, size, generator=generator)
    x[:, 20] = 0
    x[:, 20, 8:24, 8:24] = 1  # the hole channel
    return x


def _sensitive_parser(attributes: int = 3) -> FreeFormParser:
    """A parser whose output depends on its weights (no zero-initialised prefill head)."""
    torch.manual_seed(0)
    return FreeFormParser(26, 20, 8, 2, 1, prefill=False, attributes=attributes).eval()


# ------------------------------------------------------------------ the network
def test_a_target_equal_to_the_parsers_own_estimate_leaves_the_output_unchanged():
    parser, x = _sensitive_parser(), _parser_input()
    with torch.no_grad():
        plain, code = parser(x, return_attribute_code=True)
        assert torch.allclose(parser(x, attribute_target=code), plain, atol=1e-5)
        assert torch.allclose(parser(x, attribute_target=torch.full_like(code, float("nan"))), plain)


def test_a_shifted_target_changes_only_the_hole_region_code_and_moves_the_estimate_along_its_direction():
    parser, x = _sensitive_parser(), _parser_input()
    with torch.no_grad():
        plain, code = parser(x, return_attribute_code=True)
        target = code.clone()
        target[:, 0] += 0.5
        edited = parser(x, attribute_target=target)
    assert not torch.allclose(edited, plain)
    # the move is along W only: the hole's mean feature moves by 0.5 w_0 (W orthonormal at init)
    w = parser.directions.detach()
    assert torch.allclose(w @ w.t(), torch.eye(3), atol=1e-5)


def test_a_parser_without_attributes_refuses_targets():
    parser = FreeFormParser(26, 20, 8, 2, 1, prefill=False)
    with pytest.raises(ValueError, match="without attributes"):
        parser(_parser_input(), attribute_target=torch.zeros(2, 3))


def test_more_attribute_directions_than_bottleneck_channels_is_refused():
    with pytest.raises(ValueError, match="bottleneck channels"):
        FreeFormParser(26, 20, 2, 1, 1, attributes=5)


def test_orthogonality_loss_is_zero_for_orthonormal_rows_and_the_frobenius_norm_otherwise():
    assert float(orthogonality_loss(torch.eye(3, 8))) == pytest.approx(0.0)
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # WWᵀ - I = [[0, 1], [1, 1]] -> sqrt(3)
    assert float(orthogonality_loss(w)) == pytest.approx(3 ** 0.5)


def test_attribute_regression_ignores_unknown_targets():
    estimate = torch.tensor([[0.2, 0.5], [0.4, 0.1]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [0.4, float("nan")]])
    loss = attribute_regression_loss(estimate, target)
    assert float(loss.detach()) == pytest.approx((0.2 ** 2 + 0.0) / 2)
    loss.backward()
    assert estimate.grad[:, 1].abs().sum() == 0
    none_known = attribute_regression_loss(estimate, torch.full((2, 2), float("nan")))
    assert float(none_known.detach()) == 0.0


# ------------------------------------------------------------------ requests and checks
def test_requests_parse_signed_strengths_and_reject_bad_text():
    assert parse_attribute_requests(["sleeve_length=+0.4", "hem_length=-.25"]) == {"sleeve_length": 0.4,
                                                                                   "hem_length": -0.25}
    for bad in (["sleeve_length"], ["sleeve_length=big"], ["sleeve_length=0.1", "sleeve_length=0.2"]):
        with pytest.raises(AttributeEditError):
            parse_attribute_requests(bad)


def test_strength_checks_name_the_problem():
    net = tiny_params({"parser": {"attributes": ["sleeve_length"], "max_strength": 0.5}}).parser
    assert check_strengths(net, {"sleeve_length": 0.3}) == {"sleeve_length": 0.3}
    assert check_strengths(net, {"sleeve_length": 0.0}) == {}  # a zero strength is no edit
    with pytest.raises(AttributeEditError, match="unknown attribute 'collar'"):
        check_strengths(net, {"collar": 0.1})
    with pytest.raises(AttributeEditError, match="not trained to edit 'hem_length'"):
        check_strengths(net, {"hem_length": 0.1})
    with pytest.raises(AttributeEditError, match=r"outside the trained range \[-0.5, \+0.5\]"):
        check_strengths(net, {"sleeve_length": 0.7})
    with pytest.raises(AttributeEditError, match="outside"):
        check_strengths(net, {"sleeve_length": float("nan")})


def test_unknown_attribute_in_params_is_a_clear_config_error():
    with pytest.raises(ValueError, match=r"parser.attributes: unknown \['collar'\]"):
        tiny_params({"parser": {"attributes": ["collar"]}})


def test_targets_are_the_measured_attributes_plus_the_strengths(prepared_data):
    parsing = np.asarray(open_split(prepared_data / "test").parsing[0])
    net = tiny_params().parser
    plain = attribute_targets(net, parsing, {})
    edited = attribute_targets(net, parsing, {"sleeve_length": 0.25})
    moved = net.attributes.index("sleeve_length")
    assert edited[moved] == pytest.approx(plain[moved] + 0.25)
    assert np.array_equal(np.delete(edited, moved), np.delete(plain, moved))


def test_editing_an_attribute_the_photo_does_not_show_is_refused():
    parsing = np.zeros((64, 64), np.uint8)
    parsing[10:50, 28:36] = 10  # torso skin only: no garment to measure a hem on
    with pytest.raises(AttributeEditError, match="cannot edit 'hem_length'"):
        attribute_targets(tiny_params().parser, parsing, {"hem_length": 0.2})


# ------------------------------------------------------------------ the editor
@pytest.fixture
def editor_and_photo(prepared_data):
    torch.manual_seed(0)
    editor = Editor(EditorNetworks.untrained(tiny_params()), (64, 64))
    photo = np.asarray(open_split(prepared_data / "test").images[0]).copy()
    return editor, photo


def test_zero_strength_is_the_identity_edit(editor_and_photo):
    editor, photo = editor_and_photo
    assert np.array_equal(editor.edit(photo, attributes={"sleeve_length": 0.0}), photo)


def test_an_attribute_edit_changes_only_the_region_it_erases(editor_and_photo):
    editor, photo = editor_and_photo
    result = editor.run(EditInputs.read(photo, None, allow_empty_hole=True), seed=0,
                        attributes={"sleeve_length": 0.3})
    changed = np.any(result.image != photo, axis=2)
    assert changed.any() and result.hole.any() and not result.hole.all()
    assert not (changed & ~result.hole).any()


def test_editor_rejects_unknown_and_out_of_range_attributes(editor_and_photo):
    editor, photo = editor_and_photo
    with pytest.raises(AttributeEditError, match="unknown attribute"):
        editor.edit(photo, attributes={"collar": 0.2})
    with pytest.raises(AttributeEditError, match="outside the trained range"):
        editor.edit(photo, attributes={"hem_length": 5.0})


# ------------------------------------------------------------------ the sweep stage
def test_sweep_stage_writes_metrics_plot_and_strips(tmp_path, prepared_data, mlflow_uri):
    from fashion_edit.evaluation.attribute_sweep import run_attribute_sweep

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(prepared_data)
    write_random_artifacts(tmp_path / "artifacts")
    params = tiny_params({"attribute_sweep": {"figures": 3, "strengths": 3, "strip_figures": 2},
                          "mlflow": {"experiment": "sweep"}})
    write_params(tmp_path / "params.yaml", params)
    summary = run_attribute_sweep(params, tmp_path)
    stored = json.loads((tmp_path / ATTRIBUTE_SWEEP_DETAIL).read_text())
    assert set(stored["attributes"]) == set(params.parser.attributes) == set(summary["attributes"])
    for name, metrics in stored["attributes"].items():
        assert {"spearman", "slope", "others_ratio", "figures", "skipped"} <= set(metrics)
        assert metrics["figures"] + metrics["skipped"] == 3
    assert stored["strengths"] == pytest.approx([-params.parser.max_strength, 0.0, params.parser.max_strength])
    assert (tmp_path / ATTRIBUTE_SWEEP_PLOT).stat().st_size > 1000
    assert (tmp_path / ATTRIBUTE_STRIPS).stat().st_size > 1000


def test_every_attribute_the_params_name_is_measurable():
    assert set(tiny_params().parser.attributes) <= set(ATTRIBUTES)


# ------------------------------------------------------------------ training
def test_soft_measures_of_a_true_parsing_track_the_hard_measures(prepared_data):
    from fashion_edit.data.attributes import figure_frame, measure_attributes
    from fashion_edit.networks import onehot
    from fashion_edit.training.attribute_loss import SOFT_MEASURES, soft_attribute

    parsings = np.asarray(open_split(prepared_data / "train").parsing[:24])
    hard = np.array([measure_attributes(p) for p in parsings])
    frame = torch.tensor([figure_frame(p) for p in parsings], dtype=torch.float32)
    probs = onehot(torch.from_numpy(parsings.astype(np.int64)))
    for name in SOFT_MEASURES:
        column = ATTRIBUTES.index(name)
        inside = np.isfinite(hard[:, column]) & (hard[:, column] > 0) & (hard[:, column] < 1)  # the hard one clips
        soft = soft_attribute(name, probs, frame).numpy()
        assert inside.sum() > 5 and np.abs(soft[inside] - hard[inside, column]).mean() < 0.03, name


def test_counterfactual_targets_change_only_the_holes_attribute_within_its_range():
    from fashion_edit.training.attribute_loss import counterfactual_targets

    trained = ["sleeve_length", "hem_length", "width"]
    target = torch.tensor([[0.9, 0.5, 0.3], [0.2, 0.5, 0.3], [0.2, 0.5, 0.3], [0.2, float("nan"), 0.3]])
    batch = {"attribute_hole": torch.tensor([0, 1, -1, 1]), "attribute_shift": torch.tensor([1.0, -0.5, 0.7, 1.0]),
             "figure_frame": torch.ones(4, 3)}
    changed, column, change = counterfactual_targets(batch, target, trained, max_strength=0.5)
    assert column.tolist() == [0, 1, -1, -1]  # no hole region / unknown truth: nothing asked
    assert changed[0, 0] == pytest.approx(1.0) and change[0] == pytest.approx(0.1)  # 0.9 + 0.5 clipped to 1
    assert changed[1, 1] == pytest.approx(0.25) and change[1] == pytest.approx(-0.25)
    assert torch.allclose(changed[2:], target[2:], equal_nan=True) and change[2:].abs().sum() == 0


def test_parser_training_keeps_directions_orthonormal_and_learns_the_attributes(tmp_path, prepared_data, mlflow_uri):
    from fashion_edit.layout import TrainPaths
    from fashion_edit.training.distributed import DistContext
    from fashion_edit.training.parser_trainer import PARSER_SPEC
    from fashion_edit.training.runner import train

    params = tiny_params({"mlflow": {"experiment": "attributes"}, "parser_loss": {"orthogonality": 1.0},
                          "train_parser": {"steps": 30, "batch_size": 4, "checkpoint_every": 30, "sample_every": 30,
                                           "log_every": 5, "lr_g": 2e-3, "attribute_hole_prob": 0.8}})
    paths = TrainPaths(prepared=prepared_data, checkpoints=tmp_path / "checkpoints", artifacts=tmp_path / "artifacts",
                       reports=tmp_path / "reports", repo_root=tmp_path)
    outcome = train(params, PARSER_SPEC, paths, DistContext(0, 0, 1, torch.device("cpu")))
    w = outcome.generator.directions.detach()
    assert torch.linalg.matrix_norm(w @ w.t() - torch.eye(w.shape[0])) < 0.1
    regression = outcome.history.column("loss_g/attribute")
    assert sum(regression[-2:]) / 2 < 0.75 * sum(regression[:2]) / 2
    assert all(np.isfinite(outcome.history.column("loss_g/counterfactual")))


def test_cli_attribute_edit_writes_the_image_and_refuses_bad_requests(tmp_path, editor_and_photo, capsys):
    import cv2

    from fashion_edit.serving.cli import main

    editor, photo = editor_and_photo
    editor.save(tmp_path / "editor")
    cv2.imwrite(str(tmp_path / "figure.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    common = ["edit", "--image", str(tmp_path / "figure.png"), "--checkpoint", str(tmp_path / "editor")]
    assert main([*common, "--attribute", "sleeve_length=+0.3", "--out", str(tmp_path / "longer.png")]) == 0
    assert cv2.imread(str(tmp_path / "longer.png")).shape == photo.shape
    assert main([*common, "--attribute", "sleeve_length=+0.9", "--out", str(tmp_path / "x.png")]) == 1
    assert "outside the trained range" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "x.png")]) == 1  # neither a mask nor an attribute
    assert "give --mask" in capsys.readouterr().err
