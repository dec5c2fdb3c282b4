"""Everything a training stage does around the training loop, shared by the parser, the inpainter and the
segmenter (a network without a discriminator: the loop then makes only generator steps).

Order (each step can fail with a clear message before the next starts):
tracking probe + run -> seeds -> networks + optimisers -> matching checkpoint (resume) ->
DDP wrap -> data stream -> loop with hooks -> final checkpoint -> exported weights, curves,
sample grid, metrics -> MLflow artifacts.

Outputs (``<name>`` = parser | inpainter | segmenter, ``<stage>`` = train_<name>):
- ``checkpoints/<name>/checkpoint.pt``  full training state (DVC ``persist: true``);
- ``artifacts/<name>/<weights_file>``   the exported network (``fashion_edit.weights`` format) for later stages;
- ``artifacts/<name>/info.json``        steps, identity, params hash, MLflow run id, final losses;
- ``reports/<stage>/losses.csv|.png``   training curves (DVC plots);
- ``reports/<stage>/samples.png``       a sample grid on fixed validation edits;
- ``reports/<stage>/metrics.json``      final losses (moving average) and throughput (a detail
                                        file: DVC output, not a declared metric).
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from fashion_edit import hardware
from fashion_edit.config import GanTrainParams, Params, TrainParams
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.store import open_split
from fashion_edit.layout import TrainPaths
from fashion_edit.tracking.runs import NullRun, mark_run_killed, params_hash, stage_run
from fashion_edit.training.checkpoints import (CHECKPOINT_FILE, apply_checkpoint, checkpoint_misfit,
                                               load_matching_checkpoint, remove_stale_temporaries, save_checkpoint)
from fashion_edit.training.curves import LossHistory, plot_png, write_csv
from fashion_edit.training.distributed import DistContext, ranks_in_sync
from fashion_edit.training.ema import GeneratorEma
from fashion_edit.training.hooks import CheckpointHook, ProgressHook, TrackingHook
from fashion_edit.training.loop import GanTask, Hook, LoopSchedule, LoopState, batch_stream, run_gan_loop, to_device
from fashion_edit.visualize import save_png
from fashion_edit.weights import architecture_of, save_network

log = logging.getLogger(__name__)

# train-section keys that do not change the trained weights: editing them keeps the checkpoint.
# ``steps`` is among them because nothing depends on the total (no LR schedule) and batch k is
# fixed by k: training 300 steps then 200 more equals training 500.
_NON_RESULT_KEYS = frozenset({"steps", "checkpoint_every", "sample_every", "log_every", "num_workers",
                              "distributed", "nproc_per_node", "pretrained"})
SAMPLE_ITEMS = 4


@dataclass(frozen=True)
class TrainerSpec:
    """What differs between the trainers (parser, inpainter, segmenter)."""

    name: str                                  # parser | inpainter | segmenter: the network and its folders
    sections: tuple[str, ...]                  # params sections the stage reads (dvc.yaml, params hash)
    train: Callable[[Params], TrainParams]     # its training section
    build: Callable[[Params, torch.device], tuple[torch.nn.Module, torch.nn.Module | None]]   # (G, D or None)
    task: Callable[[Params, torch.nn.Module, torch.nn.Module | None, torch.nn.Module | None], GanTask]
    # ^ (params, G as trained (maybe DDP), D plain, D as trained (maybe DDP)) -> task
    stage_name: str = ""                       # DVC stage name when not train_<name> (e.g. ablations@full)
    weights_file: str = "generator.pt"         # the exported network under artifacts/<name>/
    # extra metrics of the exported network, e.g. the segmenter's validation mIoU: (params, paths, network)
    score: Callable[[Params, TrainPaths, torch.nn.Module], dict[str, float]] | None = None
    # extra EditingDataset keywords of this task (the parser's attribute holes and values)
    dataset_options: Callable[[Params], dict[str, Any]] = lambda params: {}

    @property
    def stage(self) -> str:
        return self.stage_name or f"train_{self.name}"


@dataclass
class TrainOutcome:
    steps: int
    resumed_from: int | None
    history: LossHistory
    run_id: str | None
    generator: torch.nn.Module
    discriminator: torch.nn.Module | None
    train_seconds: float = 0.0  # time in training steps, including the runs this one resumed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def checkpoint_identity(params: Params, spec: TrainerSpec, manifest_bytes: bytes, world_size: int) -> str:
    """Hash of what decides the trained weights: result-relevant params, the prepared data, processes."""
    data = params.model_dump(mode="json")
    # the training section is taken through spec.train (an ablation reuses train_inpainter) minus non-result keys
    relevant = {s: data[s] for s in spec.sections if s != "mlflow" and not s.startswith("train_")}
    relevant["train"] = {k: v for k, v in spec.train(params).model_dump(mode="json").items()
                         if k not in _NON_RESULT_KEYS}
    payload = json.dumps({"params": relevant, "world_size": world_size,
                          "data": hashlib.sha256(manifest_bytes).hexdigest()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _read_manifest_bytes(prepared: Path) -> bytes:
    path = prepared / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing prepared-data manifest (run `dvc repro preprocess`)")
    return path.read_bytes()


def _sample_dataset(prepared: Path, params: Params, seed: int, options: dict[str, Any]) -> EditingDataset:
    """Fixed validation edits for the final grid; the training split if there is no validation data."""
    val = open_split(prepared / "val")
    if len(val):
        return EditingDataset(val, params.masks, seed=seed, fixed_masks=True, **options)
    return EditingDataset(open_split(prepared / "train"), params.masks, seed=seed, fixed_masks=False, **options)


def _sample_batch(dataset: EditingDataset, ctx: DistContext, channels_last: bool) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in range(min(SAMPLE_ITEMS, len(dataset)))]
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
    return to_device(batch, ctx.device, channels_last)


def _final_grid(task: GanTask, batch: dict[str, torch.Tensor], generator: torch.nn.Module) -> np.ndarray:
    """The task's grid from the plain generator in eval mode (rank 0 alone must not call the DDP
    wrapper: its forward may broadcast buffers and wait for the other ranks forever)."""
    trained = task.generator
    task.generator = generator
    generator.eval()
    try:
        with torch.no_grad():
            return task.sample_grid(batch, task.generate(batch))
    finally:
        generator.train()
        task.generator = trained


def _final_metrics(history: LossHistory, loop_state: LoopState) -> dict[str, float]:
    """Moving average of each loss over the last 10 % of steps (a single GAN step is noise)."""
    tail = max(1, len(history) // 10)
    out: dict[str, float] = {"steps": float(loop_state.step), "images_per_s": round(loop_state.images_per_s, 3),
                             "train_seconds": round(loop_state.train_seconds, 2)}
    for name in history.columns:
        values = history.column(name)[-tail:]
        out[name.replace("/", "_")] = float(np.mean(values)) if values else float("nan")
    return out


def _wrap(module: torch.nn.Module | None, ctx: DistContext) -> torch.nn.Module | None:
    if module is None or not ctx.enabled:
        return module
    return DistributedDataParallel(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def _adam(module: torch.nn.Module, lr: float, t: TrainParams) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(t.beta1, t.beta2))


def _speed_settings(params: Params, spec: TrainerSpec, generator: torch.nn.Module,
                    discriminator: torch.nn.Module | None,
                    paths: TrainPaths, ctx: DistContext, t: TrainParams,
                    state: dict | None) -> tuple[hardware.SpeedSettings, hardware.HardwareProbe]:
    """The stage's speed settings; ``auto`` channels_last is timed on this network (one process), or kept
    from the checkpoint being resumed so the resumed run computes exactly what the interrupted one would."""
    hw = hardware.probe()
    resumed_layout = state["extra"].get("channels_last") if state is not None else None
    keep = t.channels_last == "auto" and isinstance(resumed_layout, bool)
    # ranks of a DDP job must agree, so there the CPU-capability rule decides
    timer = None if keep or ctx.enabled else (
        lambda: _time_layouts(params, spec, generator, discriminator, paths, ctx, t))
    speed = hardware.resolve_speed(params.vgg.bf16 if "vgg" in spec.sections else None,
                                   resumed_layout if keep else t.channels_last, hw=hw, layout_timer=timer)
    if keep:
        speed = dataclasses.replace(speed, reasons={**speed.reasons,
                                                    "channels_last": "auto: as in the checkpoint being resumed"})
    return speed, hw


def _time_layouts(params: Params, spec: TrainerSpec, generator: torch.nn.Module,
                  discriminator: torch.nn.Module | None,
                  paths: TrainPaths, ctx: DistContext, t: TrainParams) -> tuple[float, float]:
    """Seconds of one generator forward + backward on a training batch in NCHW and in channels_last.

    Leaves ``generator`` as it found it (weights, BatchNorm statistics, layout, no gradients)."""
    dataset = EditingDataset(open_split(paths.prepared / "train"), params.masks, seed=t.seed, fixed_masks=False,
                             **spec.dataset_options(params))
    items = [dataset[i] for i in range(min(t.batch_size, len(dataset)))]
    if not items:  # nothing to time; the data stream reports the empty split
        return 0.0, 0.0
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
    snapshot = copy.deepcopy(generator.state_dict())
    task = spec.task(params, generator, discriminator, discriminator)
    seconds = []
    for channels_last in (False, True):
        generator.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        on_device = to_device(batch, ctx.device, channels_last)

        def step() -> None:
            outputs = task.generate(on_device)
            sum(v.float().mean() for v in outputs.values() if v.requires_grad).backward()
        seconds.append(hardware.median_seconds(step))
    generator.to(memory_format=torch.contiguous_format)
    generator.load_state_dict(snapshot)
    generator.zero_grad(set_to_none=True)
    return seconds[0], seconds[1]


def train(params: Params, spec: TrainerSpec, paths: TrainPaths, ctx: DistContext,
          hooks: Sequence[Hook] = ()) -> TrainOutcome:
    """Run (or resume) one training stage end to end; outputs are written by rank 0."""
    t = spec.train(params)
    with stage_run(params, spec.stage, spec.sections, paths.repo_root, is_main=ctx.is_main,
                   extra_tags={"world_size": ctx.world_size}) as run:
        return _train_with_run(params, spec, paths, ctx, t, run, hooks)


def _train_with_run(params: Params, spec: TrainerSpec, paths: TrainPaths, ctx: DistContext, t: TrainParams,
                    run: NullRun, extra_hooks: Sequence[Hook]) -> TrainOutcome:
    identity = checkpoint_identity(params, spec, _read_manifest_bytes(paths.prepared), ctx.world_size)
    checkpoint_path = paths.checkpoints / CHECKPOINT_FILE
    if ctx.is_main:
        remove_stale_temporaries(checkpoint_path)  # a SIGKILL during a write leaves one behind
    state, why = load_matching_checkpoint(checkpoint_path, identity)
    if state is not None and state["step"] > t.steps:
        state, why = None, (f"checkpoint {checkpoint_path} is at step {state['step']}, beyond "
                            f"{spec.stage}.steps={t.steps}: training from scratch")

    seed_everything(t.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    generator, discriminator = spec.build(params, ctx.device)
    speed, hw = _speed_settings(params, spec, generator, discriminator, paths, ctx, t, state)
    if ctx.is_main:
        log.info("%s: %s", spec.stage, hardware.describe(speed, hw))
    run.set_tags(hardware.as_tags(speed, hw))
    if speed.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
        if discriminator is not None:
            discriminator = discriminator.to(memory_format=torch.channels_last)
    opt_g = _adam(generator, t.network_lr, t)
    modules: dict[str, torch.nn.Module] = {"generator": generator}
    optimizers = {"generator": opt_g}
    opt_d = None
    if discriminator is not None:
        assert isinstance(t, GanTrainParams), f"{spec.stage}: a discriminator needs lr_d (GanTrainParams)"
        opt_d = _adam(discriminator, t.lr_d, t)
        modules["discriminator"], optimizers["discriminator"] = discriminator, opt_d
    ema = GeneratorEma(generator, t.ema_decay) if t.ema_decay > 0 else None
    if ema is not None:
        modules["generator_ema"] = ema
    if state is not None and (misfit := checkpoint_misfit(state, modules)) is not None:
        state, why = None, (f"checkpoint {checkpoint_path} does not fit the network ({misfit}; the code changed "
                            "since it was written): training from scratch")
    history, start_step, train_seconds = LossHistory(), 0, 0.0
    if state is not None:
        start_step = apply_checkpoint(state, modules, optimizers)
        history = LossHistory.from_state(state["history"])
        history.truncate(start_step)
        train_seconds = float(state["extra"].get("train_seconds", 0.0))
        previous_run = state["extra"].get("mlflow_run_id")
        if ctx.is_main and previous_run and previous_run != run.run_id:
            mark_run_killed(params, paths.repo_root, previous_run)
        run.set_tags({"resumed_from_step": start_step, "resumed_from_run": previous_run or ""})
    if ctx.rank > 0:
        seed_everything(t.seed + 1000 * ctx.rank + start_step)  # per-rank streams (rank 0 keeps the restored one)
    if ctx.is_main:
        log.info("%s: %s", spec.stage, why)

    def save(step: int) -> None:
        save_checkpoint(checkpoint_path, step=step, identity=identity, modules=modules, optimizers=optimizers,
                        history=history.to_state(), extra={"mlflow_run_id": run.run_id or "",
                                                           "world_size": ctx.world_size,
                                                           "channels_last": speed.channels_last,
                                                           "train_seconds": loop_state.train_seconds})

    g_train, d_train = _wrap(generator, ctx), _wrap(discriminator, ctx)
    task = spec.task(params, g_train, discriminator, d_train)
    dataset = EditingDataset(open_split(paths.prepared / "train"), params.masks, seed=t.seed, fixed_masks=False,
                             **spec.dataset_options(params))
    batches = batch_stream(dataset, t.batch_size, t.seed, start_step, ctx, t.num_workers)
    exported = ema.module if ema is not None else generator  # what later stages evaluate and ship
    loop_state = LoopState(step=start_step, total_steps=t.steps, history=history,
                           last_checkpoint_step=start_step if state is not None else None,
                           train_seconds=train_seconds, exported=exported)
    hooks = [ProgressHook(spec.stage, t.log_every), TrackingHook(run, t.log_every),
             CheckpointHook(save, t.checkpoint_every, checkpoint_path), *extra_hooks]
    schedule = LoopSchedule(steps=t.steps, sample_every=t.sample_every, log_every=t.log_every,
                            warmup_steps=t.warmup_steps)
    run_gan_loop(task, batches, opt_g, opt_d, loop_state, schedule, ctx, hooks, speed.channels_last, ema)

    if not all(ranks_in_sync(m, ctx) for m in (generator, discriminator) if m is not None):
        raise RuntimeError(f"{spec.stage}: parameters differ between ranks after training (DDP out of sync)")
    if ctx.is_main:  # the checkpoint hook has saved the final step
        _write_outputs(params, spec, paths, ctx, task, exported, loop_state, identity, run, t, speed.channels_last)
    return TrainOutcome(steps=loop_state.step, resumed_from=start_step if state is not None else None,
                        history=history, run_id=run.run_id, generator=exported, discriminator=discriminator,
                        train_seconds=loop_state.train_seconds)


def adopt(params: Params, spec: TrainerSpec, paths: TrainPaths, network: torch.nn.Module, source: Path) -> str:
    """Export ``network`` (from ``source``, e.g. ``train_segmenter.pretrained``) as if this stage had
    trained it: the same weights file, info, metrics (step 0, no curves), sample grid and MLflow run."""
    ctx = DistContext(0, 0, 1, torch.device("cpu"))
    paths.checkpoints.mkdir(parents=True, exist_ok=True)  # a declared (persisted) output, empty here
    with stage_run(params, spec.stage, spec.sections, paths.repo_root) as run:
        task = spec.task(params, network, None, None)
        state = LoopState(step=0, total_steps=0, history=LossHistory())
        _write_outputs(params, spec, paths, ctx, task, network, state, f"adopted {source}", run, spec.train(params),
                       channels_last=False, source=str(source))
    return f"adopted {source} -> {paths.artifacts / spec.weights_file}"


def _write_outputs(params: Params, spec: TrainerSpec, paths: TrainPaths, ctx: DistContext, task: GanTask,
                   generator: torch.nn.Module, loop_state: LoopState, identity: str, run: NullRun,
                   t: TrainParams, channels_last: bool, source: str = "trained") -> None:
    history = loop_state.history
    weights = save_network(paths.artifacts / spec.weights_file, spec.name, architecture_of(params, spec.name),
                           generator)
    metrics = _final_metrics(history, loop_state)
    if spec.score is not None:
        metrics |= spec.score(params, paths, generator)
    info = {"stage": spec.stage, "source": source, "steps": loop_state.step, "identity": identity,
            "params_hash": params_hash(params, spec.sections), "mlflow_run_id": run.run_id,
            "world_size": ctx.world_size, "final_losses": metrics}
    (paths.artifacts / "info.json").write_text(json.dumps(info, indent=2) + "\n")

    paths.reports.mkdir(parents=True, exist_ok=True)
    write_csv(history, paths.reports / "losses.csv")
    plot_png(history, paths.reports / "losses.png", title=f"{spec.stage} losses")
    (paths.reports / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    grid = _final_grid(task, _sample_batch(_sample_dataset(paths.prepared, params, t.seed, spec.dataset_options(params)), ctx, channels_last),
                       generator)
    save_png(grid, paths.reports / "samples.png")

    run.log_image(grid, artifact_file="samples/final_validation.png")
    run.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=loop_state.step)
    if (paths.checkpoints / CHECKPOINT_FILE).is_file():  # an adopted network has no training state
        run.log_artifact(paths.checkpoints / CHECKPOINT_FILE, "checkpoint")
    run.log_artifact(weights, "weights")
    run.log_artifact(paths.reports / "losses.png", "curves")
    run.log_artifact(paths.reports / "losses.csv", "curves")
