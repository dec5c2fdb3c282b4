"""The generic GAN loop, checkpoints and curves, on a tiny stand-in GAN (no project networks)."""
from __future__ import annotations

import random
import resource
import signal

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from fashion_edit.training.checkpoints import (CheckpointError, atomic_torch_save, capture_rng_state,
                                               load_matching_checkpoint, read_checkpoint, restore_rng_state,
                                               save_checkpoint, apply_checkpoint)
from fashion_edit.training.curves import LossHistory, plot_png, write_csv
from fashion_edit.training.distributed import DistContext
from fashion_edit.training.hooks import CheckpointHook
from fashion_edit.training.loop import (LoopSchedule, LoopState, NonFiniteLossError, TrainingDataError, batch_stream,
                                        run_gan_loop)

SINGLE = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs tiny networks on one thread (see conftest.one_thread)."""


class NoiseImages(Dataset):
    """Items drawn from (epoch, index) like the real dataset."""

    def __init__(self, n: int = 12) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([7, self.epoch, i])
        return {"image": torch.from_numpy(rng.standard_normal((1, 8, 8), dtype=np.float32)),
                "index": torch.tensor(i)}


class TinyTask:
    """A conv G maps a blurred image to the image; hinge D; optional NaN injection."""

    def __init__(self, nan_at_step: int | None = None) -> None:
        self.generator = nn.Conv2d(1, 1, 3, padding=1)
        self.discriminator = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))
        self.nan_at_step, self.calls = nan_at_step, 0

    def generate(self, batch):
        self.calls += 1
        return self.generator(batch["image"] * 0.5)

    def discriminator_terms(self, batch, fake):
        return {"real": torch.relu(1 - self.discriminator(batch["image"])).mean(),
                "fake": torch.relu(1 + self.discriminator(fake.detach())).mean()}

    def generator_terms(self, batch, fake):
        l1 = (fake - batch["image"]).abs().mean()
        if self.calls == self.nan_at_step:
            l1 = l1 * float("nan")
        return {"l1": l1, "gan": -0.1 * self.discriminator(fake).mean()}

    def sample_grid(self, batch, fake):
        return np.zeros((4, 4, 3), np.uint8)


def _train(steps: int, seed: int = 0, start: dict | None = None, ckpt=None, every: int = 2, nan_at: int | None = None):
    torch.manual_seed(seed)
    task = TinyTask(nan_at)
    opt_g = torch.optim.Adam(task.generator.parameters(), 1e-2, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(task.discriminator.parameters(), 4e-2, betas=(0.0, 0.9))
    modules = {"g": task.generator, "d": task.discriminator}
    optimizers = {"g": opt_g, "d": opt_d}
    history, step = LossHistory(), 0
    if start is not None:
        step = apply_checkpoint(start, modules, optimizers)
        history = LossHistory.from_state(start["history"])
        task.calls = step
    state = LoopState(step=step, total_steps=steps, history=history)
    hooks = []
    if ckpt is not None:
        hooks.append(CheckpointHook(lambda s: save_checkpoint(ckpt, step=s, identity="x", modules=modules,
                                                              optimizers=optimizers, history=history.to_state()),
                                    every))
    batches = batch_stream(NoiseImages(), 4, seed, step, SINGLE)
    run_gan_loop(task, batches, opt_g, opt_d, state, LoopSchedule(steps, 100, 2), SINGLE, hooks)
    return task, history


def test_same_seed_gives_identical_losses():
    _, first = _train(5)
    _, second = _train(5)
    assert first.rows == second.rows and len(first) == 5


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    straight, full = _train(7)
    _train(4, ckpt=tmp_path / "c.pt")
    state = read_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 4
    resumed, history = _train(7, start=state)
    assert history.rows == full.rows  # steps 1-4 restored, 5-7 recomputed identically
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        assert torch.equal(a, b)


def test_non_finite_loss_names_step_and_term_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"step 5: loss_g/l1 = nan.*last good checkpoint \(step 4\)"):
        _train(8, ckpt=tmp_path / "c.pt", nan_at=5)
    assert read_checkpoint(tmp_path / "c.pt")["step"] == 4


def test_batch_stream_resumes_mid_epoch_and_crosses_epochs():
    def indices(start: int, count: int) -> list[list[int]]:
        stream = batch_stream(NoiseImages(10), 3, 0, start, SINGLE)
        return [next(stream)["index"].tolist() for _ in range(count)]

    continuous = indices(0, 7)  # 3 batches per epoch (one item dropped), so 7 spans three epochs
    assert indices(4, 3) == continuous[4:]
    assert sorted(sum(continuous[:3], [])) != sorted(sum(continuous[3:6], [])) or continuous[:3] != continuous[3:6]


def test_batch_stream_rejects_a_split_smaller_than_a_batch():
    with pytest.raises(TrainingDataError, match="fewer than batch_size"):
        next(batch_stream(NoiseImages(3), 4, 0, 0, SINGLE))


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    atomic_torch_save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path):
    """A write the OS refuses half-way (a file-size limit: EFBIG, as a full disk gives ENOSPC) is one line."""
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"step": 1}, path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # without this the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(CheckpointError, match=r"cannot write .*checkpoint.pt \(1\.0 MB\): File too large; "
                                                  r"the previous checkpoint.pt is intact"):
            atomic_torch_save({"step": 2, "weights": torch.zeros(1 << 18)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_full_disk_is_refused_before_writing_and_keeps_the_old_checkpoint(small_disk):
    path = small_disk / "checkpoint.pt"
    atomic_torch_save({"step": 1, "weights": torch.zeros(300 * 256)}, path)  # 300 KiB of 512
    with pytest.raises(CheckpointError, match=r"cannot write .*checkpoint.pt \(0\.3 MB\): only 0\.\d MB free on "
                                              r"that disk; the previous checkpoint.pt is intact\. Free space"):
        atomic_torch_save({"step": 2, "weights": torch.ones(300 * 256)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in small_disk.iterdir()] == ["checkpoint.pt"]


def test_corrupt_checkpoint_is_reported_with_the_fix(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="delete it"):
        read_checkpoint(path)


def test_foreign_checkpoint_is_reported(tmp_path):
    atomic_torch_save({"weights": torch.zeros(1)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        read_checkpoint(tmp_path / "checkpoint.pt")


def test_checkpoint_for_other_params_is_ignored(tmp_path):
    layer = nn.Linear(1, 1)
    save_checkpoint(tmp_path / "c.pt", step=3, identity="old", modules={"g": layer},
                    optimizers={"g": torch.optim.Adam(layer.parameters())}, history=LossHistory().to_state())
    state, why = load_matching_checkpoint(tmp_path / "c.pt", "new")
    assert state is None and "other params" in why
    assert load_matching_checkpoint(tmp_path / "c.pt", "old")[0]["step"] == 3


def test_curves_written_as_csv_and_png(tmp_path):
    history = LossHistory()
    for step in range(1, 6):
        history.record(step, {"loss_d/real": 1.0 / step, "loss_g/l1": 2.0 / step})
    write_csv(history, tmp_path / "losses.csv")
    plot_png(history, tmp_path / "losses.png", "demo")
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,loss_d/real,loss_g/l1" and lines[1].startswith("1,1,2") and len(lines) == 6
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    from fashion_edit.training.checkpoints import remove_stale_temporaries

    (tmp_path / ".checkpoint.pt.tmp-123").write_bytes(b"half")
    (tmp_path / "checkpoint.pt").write_bytes(b"kept")
    assert remove_stale_temporaries(tmp_path / "checkpoint.pt") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
