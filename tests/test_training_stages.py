"""The real trainers on tiny networks and data: determinism, learning, resume, NaN stop, MLflow contents."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from fashion_edit.config import Params
from fashion_edit.data.store import SplitWriter, open_split
from fashion_edit.layout import TrainPaths
from fashion_edit.training.checkpoints import CheckpointError, read_checkpoint
from fashion_edit.training.distributed import DistContext
from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.loop import NonFiniteLossError, TrainingDataError
from fashion_edit.training.parser_trainer import PARSER_SPEC
from fashion_edit.training.runner import adopt, train
from fashion_edit.training.segmenter_trainer import SEGMENTER_SPEC
from fashion_edit.training.stage import EXPECTED_ERRORS
from fashion_edit.weights import NetworkFileError, architecture_of, load_network, save_network
from models.losses import ParserCriterion
from tests.conftest import mount_tmpfs, tiny_params, unmount

SINGLE = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs tiny networks on one thread (see conftest.one_thread)."""


def _paths(root: Path, prepared: Path, name: str) -> TrainPaths:
    return TrainPaths(prepared=prepared, checkpoints=root / "checkpoints" / name, artifacts=root / "artifacts" / name,
                      reports=root / "reports" / f"train_{name}", repo_root=root)


def _params(experiment: str, **train: object) -> Params:
    section = {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "sample_every": 2, "log_every": 2, **train}
    common = {k: v for k, v in section.items() if k not in ("lr_g", "lr_d")}  # the segmenter has no D
    return tiny_params({"mlflow": {"experiment": experiment}, "train_parser": section, "train_inpainter": section,
                        "train_segmenter": common})


@pytest.mark.parametrize("spec", [PARSER_SPEC, INPAINTER_SPEC, SEGMENTER_SPEC], ids=["parser", "inpainter", "segmenter"])
def test_same_params_and_seed_give_identical_losses(spec, tmp_path, prepared_data, mlflow_uri):
    params = _params("determinism", steps=2)
    first = train(params, spec, _paths(tmp_path / "a", prepared_data, spec.name), SINGLE)
    second = train(params, spec, _paths(tmp_path / "b", prepared_data, spec.name), SINGLE)
    assert len(first.history) == 2 and first.history.rows == second.history.rows


def test_resumed_training_equals_uninterrupted_training(tmp_path, prepared_data, mlflow_uri):
    straight = train(_params("resume", steps=4), PARSER_SPEC, _paths(tmp_path / "a", prepared_data, "parser"), SINGLE)
    paths = _paths(tmp_path / "b", prepared_data, "parser")
    first = train(_params("resume", steps=2), PARSER_SPEC, paths, SINGLE)  # "killed" after step 2
    resumed = train(_params("resume", steps=4), PARSER_SPEC, paths, SINGLE)
    assert resumed.resumed_from == 2
    assert resumed.train_seconds > first.train_seconds > 0  # the killed run's step time is carried over
    assert resumed.history.rows == straight.history.rows
    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_other_params_is_not_resumed(tmp_path, prepared_data, mlflow_uri):
    paths = _paths(tmp_path, prepared_data, "parser")
    train(_params("identity", steps=2), PARSER_SPEC, paths, SINGLE)
    again = train(_params("identity", steps=2, lr_g=3e-4), PARSER_SPEC, paths, SINGLE)
    assert again.resumed_from is None and len(again.history) == 2


def _small_subset(prepared: Path, destination: Path, count: int) -> Path:
    """A copy of the prepared store whose train split holds only its first ``count`` items."""
    shutil.copytree(prepared, destination)
    source = open_split(prepared / "train")
    shutil.rmtree(destination / "train")
    height, width = source.size
    writer = SplitWriter(destination / "train", count, height, width, with_eval=False)
    for i in range(count):
        writer.append(source.stems[i], images=source.images[i], parsing=source.parsing[i], sketch=source.sketch[i],
                      colour=source.colour[i])
    writer.close()
    return destination


def test_parser_cross_entropy_falls_when_overfitting_a_few_images(tmp_path, prepared_data, mlflow_uri):
    prepared = _small_subset(prepared_data, tmp_path / "prepared", count=4)
    params = _params("overfit", steps=40, batch_size=4, checkpoint_every=40, sample_every=40, log_every=10,
                     lr_g=1e-3)
    # from scratch (no coarse-fill prior, which starts the cross-entropy near its floor already)
    params = params.model_copy(update={"parser": params.parser.model_copy(update={"prefill": False})})
    outcome = train(params, PARSER_SPEC, _paths(tmp_path, prepared, "parser"), SINGLE)
    ce = outcome.history.column("loss_g/ce")
    first, last = sum(ce[:5]) / 5, sum(ce[-5:]) / 5
    assert last < 0.5 * first, f"cross-entropy did not fall enough: first 5 steps {first:.3f}, last 5 {last:.3f}"


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, prepared_data, mlflow_uri, monkeypatch):
    original, calls = ParserCriterion.generator_losses, {"n": 0}

    def nan_at_third_step(self, *args, **kwargs):
        terms = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            terms["ce"] = terms["ce"] * float("nan")
        return terms

    monkeypatch.setattr(ParserCriterion, "generator_losses", nan_at_third_step)
    paths = _paths(tmp_path, prepared_data, "parser")
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss_g/ce = nan.*last good checkpoint \(step 2\)"):
        train(_params("nan"), PARSER_SPEC, paths, SINGLE)
    assert read_checkpoint(paths.checkpoints / "checkpoint.pt")["step"] == 2
    assert not (paths.artifacts / "generator.pt").exists()
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs(experiment_ids=[client.get_experiment_by_name("nan").experiment_id],
                                filter_string="tags.`fashion_edit.role` = 'stage'")
    assert run.info.status == "FAILED" and "step 3" in run.data.tags["failure"]


def test_full_disk_at_a_checkpoint_fails_the_run_in_one_line_and_keeps_the_last_checkpoint(tmp_path, prepared_data,
                                                                                          mlflow_uri):
    first = _paths(tmp_path / "first", prepared_data, "parser")
    train(_params("full-disk", steps=2), PARSER_SPEC, first, SINGLE)
    size_kib = (first.checkpoints / "checkpoint.pt").stat().st_size // 1024
    paths = _paths(tmp_path / "second", prepared_data, "parser")
    if not mount_tmpfs(paths.checkpoints, size_kib * 3 // 2):  # room for one checkpoint, not for its successor
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        shutil.copy(first.checkpoints / "checkpoint.pt", paths.checkpoints / "checkpoint.pt")
        with pytest.raises(CheckpointError, match=r"free on that disk; the previous checkpoint.pt is intact"):
            train(_params("full-disk", steps=4), PARSER_SPEC, paths, SINGLE)
        assert read_checkpoint(paths.checkpoints / "checkpoint.pt")["step"] == 2
    finally:
        unmount(paths.checkpoints)
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs(experiment_ids=[client.get_experiment_by_name("full-disk").experiment_id],
                              filter_string="tags.`fashion_edit.role` = 'stage'", order_by=["attributes.start_time DESC"])
    assert runs[0].info.status == "FAILED" and "free on that disk" in runs[0].data.tags["failure"]
    assert issubclass(CheckpointError, EXPECTED_ERRORS)  # the stage prints the message as one line, no traceback


def test_mlflow_run_holds_params_metrics_images_checkpoint_and_tags(tmp_path, prepared_data, mlflow_uri):
    params = _params("contents")
    outcome = train(params, PARSER_SPEC, _paths(tmp_path, prepared_data, "parser"), SINGLE)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train_parser.lr_d"] == "0.0004" and run.data.params["parser.base_channels"] == "8"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g/ce")] == [1, 2, 3, 4]
    assert client.get_metric_history(run.info.run_id, "images_per_s")[-1].value > 0
    tags = run.data.tags
    assert tags["dvc.stage"] == "train_parser" and len(tags["params_hash"]) == 16
    assert tags["git_commit"] and tags["mlflow.parentRunId"]
    artifacts = {a.path for folder in ("samples", "checkpoint", "weights", "curves")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"samples/step_000002.png", "samples/step_000004.png", "samples/final_validation.png",
            "checkpoint/checkpoint.pt", "weights/generator.pt", "curves/losses.csv", "curves/losses.png"} <= artifacts
    info = json.loads((tmp_path / "artifacts" / "parser" / "info.json").read_text())
    assert info["mlflow_run_id"] == outcome.run_id and info["steps"] == 4
    weights = torch.load(tmp_path / "artifacts" / "parser" / "generator.pt", weights_only=True)
    assert weights["network"] == "parser" and set(weights["state_dict"]) == set(outcome.generator.state_dict())


def test_channels_last_layout_trains_the_same_network(tmp_path, prepared_data, mlflow_uri):
    default = train(_params("layout", steps=1), PARSER_SPEC, _paths(tmp_path / "a", prepared_data, "parser"), SINGLE)
    channels_last = train(_params("layout", steps=1, channels_last=True), PARSER_SPEC,
                          _paths(tmp_path / "b", prepared_data, "parser"), SINGLE)
    assert channels_last.history.columns == default.history.columns
    assert channels_last.history.rows[0] == pytest.approx(default.history.rows[0], rel=1e-3)


def test_split_smaller_than_a_batch_is_reported(tmp_path, prepared_data, mlflow_uri):
    prepared = _small_subset(prepared_data, tmp_path / "prepared", count=2)
    with pytest.raises(TrainingDataError, match="2 items: fewer than batch_size \\(4\\)"):
        train(_params("small", batch_size=4), PARSER_SPEC, _paths(tmp_path, prepared, "parser"), SINGLE)


def test_auto_layout_is_timed_on_the_network_and_kept_when_resuming(tmp_path, prepared_data, mlflow_uri,
                                                                     monkeypatch):
    from fashion_edit.training import runner

    calls = []
    monkeypatch.setattr(runner, "_time_layouts", lambda *args: calls.append(1) or (1.0, 0.5))
    paths = _paths(tmp_path, prepared_data, "parser")
    train(_params("layout-auto", steps=2, channels_last="auto"), PARSER_SPEC, paths, SINGLE)
    assert calls and read_checkpoint(paths.checkpoints / "checkpoint.pt")["extra"]["channels_last"] is True
    monkeypatch.setattr(runner, "_time_layouts", lambda *args: (0.5, 1.0))  # would now pick NCHW ...
    train(_params("layout-auto", steps=4, channels_last="auto"), PARSER_SPEC, paths, SINGLE)
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs(client.get_experiment_by_name("layout-auto").experiment_id,
                              order_by=["attributes.start_time DESC"])
    assert runs[0].data.tags["speed.channels_last"] == "true"  # ... but the resumed run keeps the layout
    assert "checkpoint being resumed" in runs[0].data.tags["speed.channels_last_reason"]


def test_layout_timer_leaves_the_generator_untouched(tmp_path, prepared_data):
    from fashion_edit.networks import build_parser, build_parser_discriminator
    from fashion_edit.training.runner import _time_layouts

    params = _params("timer")
    generator, discriminator = build_parser(params), build_parser_discriminator(params)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    nchw, channels_last = _time_layouts(params, PARSER_SPEC, generator, discriminator,
                                        _paths(tmp_path, prepared_data, "parser"), SINGLE, params.train_parser)
    assert nchw > 0 and channels_last > 0
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert all(p.grad is None for p in generator.parameters())
    assert next(generator.parameters()).is_contiguous()


# ----------------------------------------------------------------------------- segmenter (no discriminator)
def test_segmenter_trains_on_the_gan_runner_exports_its_file_and_resumes(tmp_path, prepared_data, mlflow_uri):
    paths = _paths(tmp_path, prepared_data, "segmenter")
    first = train(_params("segmenter", steps=3), SEGMENTER_SPEC, paths, SINGLE)
    assert first.discriminator is None and set(first.history.columns) == {"loss_g/ce", "loss_g/total"}
    network, architecture = load_network(paths.artifacts / "segmenter.pt", "segmenter", "test")
    assert architecture == architecture_of(tiny_params(), "segmenter")
    with torch.no_grad():
        assert network(torch.zeros(1, 3, 64, 64)).shape == (1, 20, 64, 64)
    metrics = json.loads((paths.reports / "metrics.json").read_text())
    assert 0 <= metrics["val_miou"] <= 1 and metrics["val_images"] == len(open_split(prepared_data / "val"))
    resumed = train(_params("segmenter", steps=5), SEGMENTER_SPEC, paths, SINGLE)
    lines = (paths.reports / "losses.csv").read_text().splitlines()
    assert resumed.resumed_from == 3 and [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5]
    assert (paths.reports / "samples.png").is_file()


def test_segmenter_cross_entropy_falls(tmp_path, prepared_data, mlflow_uri):
    section = {"steps": 30, "batch_size": 4, "lr": 3e-3, "checkpoint_every": 30, "sample_every": 30}
    outcome = train(tiny_params({"train_segmenter": section}), SEGMENTER_SPEC,
                    _paths(tmp_path, prepared_data, "segmenter"), SINGLE)
    ce = outcome.history.column("loss_g/ce")
    assert sum(ce[-5:]) / 5 < 0.8 * sum(ce[:5]) / 5


def test_pretrained_segmenter_is_adopted_unchanged(tmp_path, prepared_data, mlflow_uri):
    params = tiny_params()
    mine = save_network(tmp_path / "my_segmenter.pt", "segmenter", architecture_of(params, "segmenter"),
                        SEGMENTER_SPEC.build(params, torch.device("cpu"))[0])
    paths = _paths(tmp_path / "repo", prepared_data, "segmenter")
    adopt(params, SEGMENTER_SPEC, paths, load_network(mine, "segmenter", "test")[0], mine)
    info = json.loads((paths.artifacts / "info.json").read_text())
    assert info["source"] == str(mine) and info["steps"] == 0 and "val_miou" in info["final_losses"]
    adopted = load_network(paths.artifacts / "segmenter.pt", "segmenter", "test")[0].state_dict()
    original = load_network(mine, "segmenter", "test")[0].state_dict()
    assert adopted.keys() == original.keys() and all(torch.equal(adopted[k], original[k]) for k in adopted)


def test_foreign_or_misplaced_weights_files_are_reported(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(NetworkFileError, match="not a segmenter file of this project"):
        load_network(foreign, "segmenter", "dvc repro train_segmenter")
    with pytest.raises(NetworkFileError, match="not found.*dvc repro train_segmenter"):
        load_network(tmp_path / "absent.pt", "segmenter", "dvc repro train_segmenter")
    params = tiny_params()
    parser = save_network(tmp_path / "parser.pt", "parser", architecture_of(params, "parser"),
                          PARSER_SPEC.build(params, torch.device("cpu"))[0])
    with pytest.raises(NetworkFileError, match="holds a parser network, not a segmenter"):
        load_network(parser, "segmenter", "dvc repro train_segmenter")


def test_a_missing_pretrained_segmenter_is_one_line_naming_the_key(tmp_path, capsys):
    from stages.train_segmenter import main
    from tests.conftest import write_params

    path = write_params(tmp_path / "params.yaml", tiny_params({"train_segmenter": {"pretrained": "absent.pt"}}))
    assert main(["--params", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.pt" in err[0] and "train_segmenter.pretrained" in err[0]
