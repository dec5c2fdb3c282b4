"""Loop hooks (rank 0 only): progress bar, MLflow logging, periodic checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from fashion_edit.tracking.runs import NullRun
from fashion_edit.training.loop import Hook, LoopState

THROUGHPUT_METRIC = "images_per_s"


class ProgressHook(Hook):
    """tqdm bar with the total losses and images/s; quiet when stderr is not a terminal."""

    def __init__(self, description: str, log_every: int) -> None:
        self.description, self.log_every = description, log_every
        self.bar: tqdm | None = None

    def on_start(self, state: LoopState) -> None:
        self.bar = tqdm(total=state.total_steps, initial=state.step, desc=self.description, unit="step",
                        disable=None, dynamic_ncols=True)

    def on_step(self, state: LoopState, losses: dict[str, float]) -> None:
        assert self.bar is not None
        self.bar.update(1)
        if state.step % self.log_every == 0 or state.step == state.total_steps:
            shown = {k.replace("loss_", ""): f"{v:.3g}" for k, v in losses.items() if k.endswith("/total")}
            self.bar.set_postfix(**shown, img_s=f"{state.images_per_s:.1f}")

    def on_end(self, state: LoopState) -> None:
        if self.bar is not None:
            self.bar.close()


class TrackingHook(Hook):
    """Per-step losses, throughput every ``log_every`` steps, sample grids as PNG artifacts."""

    def __init__(self, run: NullRun, log_every: int) -> None:
        self.run, self.log_every = run, log_every

    def on_start(self, state: LoopState) -> None:
        # a resumed run re-logs the restored history so its curves are complete on their own
        for row in state.history.rows:
            self.run.log_metrics(dict(zip(state.history.columns, row[1:])), step=int(row[0]))
        self.run.flush()

    def on_step(self, state: LoopState, losses: dict[str, float]) -> None:
        self.run.log_metrics(losses, step=state.step)
        if state.step % self.log_every == 0 or state.step == state.total_steps:
            self.run.log_metrics({THROUGHPUT_METRIC: state.images_per_s}, step=state.step)
            self.run.flush()

    def on_sample(self, state: LoopState, grid: np.ndarray) -> None:
        self.run.log_image(grid, artifact_file=f"samples/step_{state.step:06d}.png")

    def on_end(self, state: LoopState) -> None:
        self.run.flush()


class CheckpointHook(Hook):
    """Calls ``save(step)`` every ``every`` steps and at the last step; records the step saved."""

    def __init__(self, save: Callable[[int], None], every: int, path: Path | None = None) -> None:
        self.save, self.every, self.path = save, every, path  # path: where ``save`` writes (informative)

    def on_step(self, state: LoopState, losses: dict[str, float]) -> None:
        if state.step % self.every == 0 or state.step == state.total_steps:
            self.save(state.step)
            state.last_checkpoint_step = state.step
