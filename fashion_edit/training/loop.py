"""Generic GAN training loop: batches, one D step then one G step per iteration, hooks.

The loop knows nothing about parsing or images: a :class:`GanTask` computes the generator
output and the *weighted, named* loss terms of each side; hooks do the side jobs (progress
bar, MLflow, checkpoints). Order inside an iteration (as in pix2pixHD/SPADE, with one shared
generator forward):

0. both learning rates are set from the warm-up schedule (a function of the step: resume-exact);
1. ``generated = task.generate(batch)`` (G with grad);
2. D step on ``task.discriminator_terms(batch, generated)`` (the task detaches the fakes;
   no terms = no D step; a task without a discriminator, the segmenter, has none);
3. G step on ``task.generator_terms(batch, generated)`` with D's parameters frozen (the task
   calls the *unwrapped* D there, so DDP only synchronises D's gradients in the D step).
4. the generator's weight average (EMA), if any, is updated on every rank.

Before each backward, every term is checked for NaN/inf (over all ranks): a non-finite term
stops training with :class:`NonFiniteLossError` naming the step and the term, before any
weights change, so the last checkpoint on disk stays the last good state.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from fashion_edit.errors import FashionEditError
from fashion_edit.training.curves import LossHistory
from fashion_edit.training.distributed import DistContext, all_reduce_min
from fashion_edit.training.ema import GeneratorEma

Terms = dict[str, torch.Tensor]


class NonFiniteLossError(FashionEditError, FloatingPointError):
    """A loss term became NaN or infinite; training stopped without applying that step."""


class TrainingDataError(FashionEditError, ValueError):
    """The training split cannot feed the configured batches."""


class GanTask(Protocol):
    generator: torch.nn.Module              # what the loop optimises on the G side (possibly DDP-wrapped)
    discriminator: torch.nn.Module | None   # the plain D module (frozen during the G step); None: no D

    def generate(self, batch: dict[str, torch.Tensor]) -> Any: ...
    def discriminator_terms(self, batch: dict[str, torch.Tensor], generated: Any) -> Terms: ...
    def generator_terms(self, batch: dict[str, torch.Tensor], generated: Any) -> Terms: ...
    def sample_grid(self, batch: dict[str, torch.Tensor], generated: Any) -> np.ndarray: ...


@dataclass
class LoopState:
    """What hooks may read: progress, the loss history and the last checkpointed step."""

    step: int
    total_steps: int
    history: LossHistory
    last_checkpoint_step: int | None = None
    images_per_s: float = 0.0
    train_seconds: float = 0.0   # time spent in steps so far, summed over resumed runs (checkpointed)
    extra: dict[str, Any] = field(default_factory=dict)
    exported: torch.nn.Module | None = None  # what the stage exports (the weight average if any): hooks may copy it


class Hook:
    """Side jobs of the loop; every method is optional. Installed on rank 0 only."""

    def on_start(self, state: LoopState) -> None: ...
    def on_step(self, state: LoopState, losses: dict[str, float]) -> None: ...
    def on_sample(self, state: LoopState, grid: np.ndarray) -> None: ...
    def on_end(self, state: LoopState) -> None: ...


@dataclass(frozen=True)
class LoopSchedule:
    steps: int
    sample_every: int
    log_every: int
    warmup_steps: int = 0

    def lr_factor(self, step: int) -> float:
        """Linear warm-up: step k (1-based) trains at k / warmup_steps of the base rates, then at 1.
        A function of the step alone, so a resumed run continues the same schedule."""
        return min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0


def set_lr_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


# ----------------------------------------------------------------------------- data
def steps_per_epoch(num_items: int, batch_size: int, world_size: int) -> int:
    return (num_items // world_size) // batch_size


def batch_stream(dataset: Dataset, batch_size: int, seed: int, start_step: int, ctx: DistContext,
                 num_workers: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches; batch k is the same whether the run started at 0 or resumed at k.

    Epoch e shuffles with ``seed + e`` (DistributedSampler, which also shards over ranks);
    the dataset draws masks/noise from (seed, epoch, index), so the step fixes the data.
    """
    per_epoch = steps_per_epoch(len(dataset), batch_size, ctx.world_size)
    if per_epoch == 0:
        raise TrainingDataError(f"training split has {len(dataset)} items: fewer than batch_size ({batch_size}) x "
                         f"processes ({ctx.world_size}); lower the batch size or prepare more data")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # before the loader copies the dataset into workers
        batches = list(BatchSampler(list(sampler), batch_size, drop_last=True))[skip:]
        # own generator: worker seeding must not draw from the global torch RNG (exact resume)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                            pin_memory=ctx.device.type == "cuda",
                            generator=torch.Generator().manual_seed(seed + epoch))
        yield from loader
        epoch, skip = epoch + 1, 0


def to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


# ----------------------------------------------------------------------------- one step
def checked_total(terms: Terms, step: int, side: str, ctx: DistContext, last_good: int | None) -> torch.Tensor:
    """Sum of the terms; raise NonFiniteLossError (on every rank) if any term is NaN/inf."""
    if not terms:
        raise ValueError(f"{side} loss has no terms")
    values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
    finite = all_reduce_min(torch.isfinite(values).float().to(ctx.device), ctx)
    if not bool(finite.all()):
        bad = []
        for i, name in enumerate(terms):
            if finite[i] == 0:
                local = values[i].item()
                bad.append(f"{side}/{name} = {local:g}" if not math.isfinite(local)
                           else f"{side}/{name} (non-finite on another rank)")
        kept = (f"the last good checkpoint (step {last_good}) is kept" if last_good is not None
                else "no checkpoint was written yet")
        raise NonFiniteLossError(f"non-finite loss at step {step}: {', '.join(bad)}; training stopped, {kept}")
    return sum(terms.values())  # type: ignore[return-value]


@contextmanager
def frozen(module: torch.nn.Module | None) -> Iterator[None]:
    """Parameters stop collecting gradients (D during the G step), restored afterwards."""
    if module is None:
        yield
        return
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _as_floats(prefix: str, terms: Terms, total: torch.Tensor) -> dict[str, float]:
    out = {f"{prefix}/{name}": float(value.detach()) for name, value in terms.items()}
    out[f"{prefix}/total"] = float(total.detach())
    return out


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the one the average mirrors)."""
    return getattr(module, "module", module)


def run_gan_loop(task: GanTask, batches: Iterator[dict[str, torch.Tensor]], opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer | None, state: LoopState, schedule: LoopSchedule, ctx: DistContext,
                 hooks: Sequence[Hook] = (), channels_last: bool = False,
                 ema: GeneratorEma | None = None) -> LoopState:
    """Train from ``state.step`` to ``schedule.steps``; hooks run on rank 0 only (``opt_d`` None: no D)."""
    hooks = list(hooks) if ctx.is_main else []
    for hook in hooks:
        hook.on_start(state)
    window_start, window_images = time.perf_counter(), 0
    while state.step < schedule.steps:
        step, step_started = state.step + 1, time.perf_counter()
        batch = to_device(next(batches), ctx.device, channels_last)
        images_per_step = next(iter(batch.values())).shape[0] * ctx.world_size

        for optimizer in filter(None, (opt_g, opt_d)):
            set_lr_factor(optimizer, schedule.lr_factor(step))
        generated = task.generate(batch)
        d_terms = task.discriminator_terms(batch, generated)
        if d_terms:  # no terms: the objective has no adversarial part (e.g. the no-GAN ablation)
            d_total = checked_total(d_terms, step, "loss_d", ctx, state.last_checkpoint_step)
            opt_d.zero_grad(set_to_none=True)
            d_total.backward()
            opt_d.step()

        with frozen(task.discriminator):
            g_terms = task.generator_terms(batch, generated)
        g_total = checked_total(g_terms, step, "loss_g", ctx, state.last_checkpoint_step)
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        if ema is not None:  # on every rank, so each holds the same average (hooks run on rank 0 only)
            ema.update(_unwrapped(task.generator))

        state.step = step
        state.train_seconds += time.perf_counter() - step_started
        losses = {**(_as_floats("loss_d", d_terms, d_total) if d_terms else {}),
                  **_as_floats("loss_g", g_terms, g_total)}
        state.history.record(step, losses)
        window_images += images_per_step
        if step % schedule.log_every == 0 or step == schedule.steps:
            now = time.perf_counter()
            state.images_per_s = window_images / max(now - window_start, 1e-9)
            window_start, window_images = now, 0
        for hook in hooks:
            hook.on_step(state, losses)
        if hooks and (step % schedule.sample_every == 0 or step == schedule.steps):
            with torch.no_grad():
                grid = task.sample_grid(batch, generated)
            for hook in hooks:
                hook.on_sample(state, grid)
    for hook in hooks:
        hook.on_end(state)
    return state
