"""The human-parsing segmenter: RGB image -> LIP-20 parsing.

Two jobs (DESIGN.md section 7): the segmentation-consistency metric (SPADE's protocol: segment
the edited images, compare with the parsing they were conditioned on; the segmenter's score on
real test images is the ceiling), and the editor's first step (a user gives a photo, not its
parsing). The network is the parser's encoder-residual-decoder (``FreeFormParser``) on 3 input
channels, trained with cross-entropy on the real training images.

Files:
- ``checkpoints/segmenter/checkpoint.pt``  full training state (resume; DVC ``persist: true``);
- ``artifacts/segmenter/segmenter.pt``     ``{"format", "architecture", "state_dict"}``, weights only;
- ``artifacts/segmenter/info.json``        steps, identity, validation mIoU, MLflow run id, source;
- ``reports/train_segmenter/{losses.csv,losses.png,metrics.json}``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from fashion_edit.config import EvaluateParams, Params
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.data.store import open_split
from fashion_edit.errors import FashionEditError
from fashion_edit.layout import TrainPaths
from fashion_edit.tracking.runs import NullRun, stage_run
from fashion_edit.training.checkpoints import (CHECKPOINT_FILE, apply_checkpoint, atomic_torch_save,
                                               load_matching_checkpoint, save_checkpoint)
from fashion_edit.training.curves import LossHistory, plot_png, write_csv
from fashion_edit.training.distributed import DistContext
from fashion_edit.training.hooks import CheckpointHook, ProgressHook, TrackingHook
from fashion_edit.training.loop import LoopState, batch_stream, checked_total
from fashion_edit.training.runner import seed_everything
from models.parser import FreeFormParser

log = logging.getLogger(__name__)

STAGE = "train_segmenter"
SECTIONS = ("evaluate",)
WEIGHTS_FILE = "segmenter.pt"
FORMAT = "fashion-edit-segmenter/1"
N_DOWNSAMPLE = 3
LOG_EVERY = 10
# keys of the evaluate section that decide the trained weights (a change retrains from scratch)
_RESULT_KEYS = ("segmenter_batch_size", "segmenter_lr", "segmenter_channels", "segmenter_res_blocks", "seed")


class SegmenterError(FashionEditError, RuntimeError):
    """A segmenter weight file is missing or not in this project's format; says how to fix it."""


# ------------------------------------------------------------------ network and file
def weights_file(paths: TrainPaths) -> Path:
    """The trained segmenter's file in its artifacts folder (what evaluate and register load)."""
    return paths.artifacts / WEIGHTS_FILE


def segmenter_architecture(p: EvaluateParams) -> dict[str, int]:
    return {"base_channels": p.segmenter_channels, "n_downsample": N_DOWNSAMPLE,
            "n_res_blocks": p.segmenter_res_blocks, "num_classes": NUM_CLASSES}


def build_segmenter(architecture: Mapping[str, int]) -> FreeFormParser:
    return FreeFormParser(in_channels=3, num_classes=architecture["num_classes"],
                          base_channels=architecture["base_channels"], n_downsample=architecture["n_downsample"],
                          n_res_blocks=architecture["n_res_blocks"])


def save_segmenter(path: Path, model: torch.nn.Module, architecture: Mapping[str, int]) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": FORMAT, "architecture": dict(architecture), "state_dict": state}, path)


def load_segmenter(path: Path) -> tuple[FreeFormParser, dict[str, int]]:
    """The segmenter saved at ``path`` (eval mode) and its architecture; SegmenterError naming the file if unusable."""
    how = ("Run `dvc repro train_segmenter` to train one, or set evaluate.segmenter_checkpoint to a "
           f"{WEIGHTS_FILE} written by that stage")
    if not path.is_file():
        raise SegmenterError(f"segmenter weights not found: {path}. {how}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle
        raise SegmenterError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}). {how}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise SegmenterError(f"{path} is not a segmenter file of this project (expected format {FORMAT!r}). {how}")
    try:
        model = build_segmenter(saved["architecture"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise SegmenterError(f"{path}: weights do not fit the stored architecture "
                             f"{saved.get('architecture')} ({exc}). {how}") from None
    return model.eval(), dict(saved["architecture"])


@torch.no_grad()
def segment(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Labels (B,H,W) int64 of images (B,3,H,W) in [-1,1]."""
    return model(images).argmax(dim=1)


# ------------------------------------------------------------------------ training
def _identity(params: Params, manifest: Path) -> str:
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: missing prepared-data manifest (run `dvc repro preprocess`)")
    chosen = {k: getattr(params.evaluate, k) for k in _RESULT_KEYS}
    payload = json.dumps({"evaluate": chosen, "data": hashlib.sha256(manifest.read_bytes()).hexdigest()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def validation_miou(model: torch.nn.Module, prepared: Path, split: str, batch_size: int) -> dict[str, float]:
    """mIoU and pixel accuracy of the segmenter on the real images of a prepared split."""
    # imported here: fashion_edit.evaluation.metrics pulls in scipy/torchmetrics, which the editor (and its
    # MLflow model environment) does not need
    from fashion_edit.evaluation.metrics.segmentation import ConfusionMatrix

    data = open_split(prepared / split)
    confusion = ConfusionMatrix()
    model.eval()
    for start in range(0, len(data), batch_size):
        images = torch.from_numpy(data.images[start:start + batch_size].copy()).permute(0, 3, 1, 2)
        labels = segment(model, images.float() * (2.0 / 255.0) - 1.0)
        confusion.update(labels, torch.from_numpy(data.parsing[start:start + batch_size].astype("int64")))
    if confusion.total == 0:
        return {}
    return {"miou": confusion.miou(), "pixel_acc": confusion.pixel_accuracy(), "images": float(len(data))}


def _segmenter_loop(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Any, state: LoopState,
                    ctx: DistContext, hooks: list[Any]) -> None:
    """Cross-entropy steps from ``state.step`` to ``state.total_steps`` (NaN-checked like the GAN loop)."""
    for hook in hooks:
        hook.on_start(state)
    while state.step < state.total_steps:
        step = state.step + 1
        batch = next(batches)
        terms = {"ce": F.cross_entropy(model(batch["image"]), batch["parsing"])}
        total = checked_total(terms, step, "loss", ctx, state.last_checkpoint_step)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        state.step = step
        losses = {"loss/ce": float(total.detach())}
        state.history.record(step, losses)
        for hook in hooks:
            hook.on_step(state, losses)
    for hook in hooks:
        hook.on_end(state)


def train_segmenter(params: Params, paths: TrainPaths) -> dict[str, Any]:
    """Train (or resume) the segmenter; write its weights, curves and metrics; return info.json's content."""
    with stage_run(params, STAGE, SECTIONS, paths.repo_root) as run:
        return _train_with_run(params, paths, run)


def _train_with_run(params: Params, paths: TrainPaths, run: NullRun) -> dict[str, Any]:
    p = params.evaluate
    ctx = DistContext(0, 0, 1, torch.device("cpu"))
    seed_everything(p.seed)
    architecture = segmenter_architecture(p)
    model = build_segmenter(architecture)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.segmenter_lr)
    identity = _identity(params, paths.prepared / "manifest.json")
    checkpoint_path = paths.checkpoints / CHECKPOINT_FILE
    state, why = load_matching_checkpoint(checkpoint_path, identity)
    if state is not None and state["step"] > p.segmenter_steps:
        state, why = None, f"checkpoint is beyond evaluate.segmenter_steps={p.segmenter_steps}: training from scratch"
    log.info("%s: %s", STAGE, why)
    history, start = LossHistory(), 0
    if state is not None:
        start = apply_checkpoint(state, {"segmenter": model}, {"segmenter": optimizer})
        history = LossHistory.from_state(state["history"])
        history.truncate(start)
        run.set_tags({"resumed_from_step": start})

    def save(step: int) -> None:
        save_checkpoint(checkpoint_path, step=step, identity=identity, modules={"segmenter": model},
                        optimizers={"segmenter": optimizer}, history=history.to_state())

    dataset = EditingDataset(open_split(paths.prepared / "train"), params.masks, seed=p.seed, fixed_masks=False)
    batches = batch_stream(dataset, p.segmenter_batch_size, p.seed, start, ctx)
    loop_state = LoopState(step=start, total_steps=p.segmenter_steps, history=history,
                           last_checkpoint_step=start if state is not None else None)
    hooks = [ProgressHook(STAGE, LOG_EVERY), TrackingHook(run, LOG_EVERY),
             CheckpointHook(save, p.segmenter_checkpoint_every, checkpoint_path)]
    model.train()
    _segmenter_loop(model, optimizer, batches, loop_state, ctx, hooks)
    if loop_state.last_checkpoint_step != p.segmenter_steps:
        save(p.segmenter_steps)
    save_segmenter(weights_file(paths), model, architecture)
    val = validation_miou(model, paths.prepared, "val", p.batch_size)
    tail = history.column("loss/ce")[-max(1, len(history) // 10):] if len(history) else []
    metrics = {"steps": loop_state.step, "loss_ce": sum(tail) / len(tail) if tail else float("nan"),
               **{f"val_{k}": v for k, v in val.items()}}
    _write_reports(paths, history, metrics)
    run.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=loop_state.step)
    run.log_artifact(weights_file(paths), "weights")
    run.log_artifact(paths.reports / "losses.png", "curves")
    return _write_info(paths, {"source": "trained", "steps": loop_state.step, "identity": identity,
                               "architecture": architecture, "metrics": metrics, "mlflow_run_id": run.run_id})


def _write_reports(paths: TrainPaths, history: LossHistory, metrics: Mapping[str, float]) -> None:
    paths.reports.mkdir(parents=True, exist_ok=True)
    write_csv(history, paths.reports / "losses.csv")
    plot_png(history, paths.reports / "losses.png", title=f"{STAGE} cross-entropy")
    (paths.reports / "metrics.json").write_text(json.dumps(dict(metrics), indent=2) + "\n")


def _write_info(paths: TrainPaths, info: dict[str, Any]) -> dict[str, Any]:
    paths.artifacts.mkdir(parents=True, exist_ok=True)
    (paths.artifacts / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def use_provided_segmenter(params: Params, paths: TrainPaths, checkpoint: Path) -> dict[str, Any]:
    """Adopt a user's segmenter file instead of training: check it loads, score it on val, copy it in place."""
    model, architecture = load_segmenter(checkpoint)  # SegmenterError naming the file if unusable
    save_segmenter(weights_file(paths), model, architecture)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)  # a declared (persisted) output, unused here
    val = validation_miou(model, paths.prepared, "val", params.evaluate.batch_size)
    metrics = {"steps": 0, **{f"val_{k}": v for k, v in val.items()}}
    _write_reports(paths, LossHistory(), metrics)
    return _write_info(paths, {"source": str(checkpoint), "architecture": architecture, "metrics": metrics})
