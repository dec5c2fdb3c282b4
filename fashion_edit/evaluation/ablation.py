"""One ablation variant: train the inpainter with the variant's overrides, evaluate it like the model.

A variant (``params.yaml`` ``ablations.<name>``) overrides the inpainter's sections; its training
length is ``ablation.steps`` and it is trained ``ablation.seeds`` times (seed k adds k to
``train_inpainter.seed``). A variant that also changes the parser (``parser``, ``parser_loss``, e.g. the
``stochastic`` one, issue 14) first trains its own parser for ``train_parser.steps`` (seed k adds k to
``train_parser.seed``) and is evaluated with it instead of the pipeline's. A variant without overrides at the pipeline's training length (``full``,
seed 0) is the pipeline's inpainter: its weights (artifacts/inpainter) are evaluated, not trained
again. Which variants run is ``ablation.variants``. Each seed is evaluated by the same code as the ``evaluate`` stage, on
the same fixed masks, with the pipeline's trained parser and segmenter (the two-stage path), so
the variants differ only in the inpainter. The baselines and the segmenter's ceiling are left out
(``model_only``): the ``evaluate`` stage reports them and they do not depend on the variant; the
real half of the FID is read from the ``fid_reference`` stage's file, shared by every variant.

With ``ablation.curve_points`` = P > 1 each run is also evaluated at P - 1 evenly spaced steps before its
last (a copy of the exported network, the random state restored afterwards, so training proceeds exactly
as without the curve), and ``full`` is trained rather than reused (the pipeline's run has no curve).

Layout for variant ``v``, seed ``k``:
- ``checkpoints/ablations/v/seed<k>/``  training state (persistent: a killed run resumes);
- ``reports/ablations/v/seed<k>.json``   evaluation metrics + parameter counts + generator GFLOP per image +
  seconds spent in training steps (summed over resumed runs);
- ``reports/ablations/v/seed<k>_curve.csv``  the learning curve: step, training seconds, metrics;
- ``reports/ablations/v/seed<k>/``       curves and samples of that training run.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from fashion_edit.config import Params, ParserNet
from fashion_edit.evaluation.evaluate import evaluate
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.store import open_split
from fashion_edit.layout import ARTIFACTS, EvaluatePaths, TrainPaths, ablation_curve_file, ablation_metrics_file
from fashion_edit.networks import build_inpainter_discriminator, count_parameters, run_inpainter
from fashion_edit.serving.editor import EditorNetworks, load_trained
from fashion_edit.tracking.runs import log_to_run
from fashion_edit.training.curves import LossHistory
from fashion_edit.training.distributed import setup_distributed, teardown_distributed
from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.parser_trainer import PARSER_SPEC
from fashion_edit.training.loop import Hook, LoopState
from fashion_edit.training.runner import TrainOutcome, train

STAGE_TEMPLATE = "ablations@{variant}"  # the dvc.yaml foreach stage of one variant
CURVE_METRICS = ("fid", "kid", "psnr_hole", "seg_consistency_miou")
CURVE_COLUMNS = ("step", "train_seconds", *CURVE_METRICS)


def variant_params(params: Params, variant: str, seed_index: int) -> Params:
    """``params`` with the variant's overrides, the ablation training length and the seed's offsets."""
    merged = params.variant(variant)
    t, tp = merged.train_inpainter, merged.train_parser
    train = t.model_copy(update={"steps": params.ablation.steps, "seed": t.seed + seed_index,
                                 "distributed": False})
    train_parser = tp.model_copy(update={"seed": tp.seed + seed_index, "distributed": False})
    return merged.model_copy(update={"train_inpainter": train, "train_parser": train_parser})


def changes_parser(params: Params, variant: str) -> bool:
    """Whether the variant's parser differs from the pipeline's (then it trains its own)."""
    merged = params.variant(variant)
    return (merged.parser, merged.parser_loss) != (params.parser, params.parser_loss)


def variant_parser(params: Params, variant: str, seed_index: int, repo_root: Path,
                   shared: "SharedNetworks") -> "SharedNetworks":
    """The networks a variant is evaluated with: the pipeline's, or its own parser trained first."""
    if not changes_parser(params, variant):
        return shared
    p = variant_params(params, variant, seed_index)
    spec = dataclasses.replace(PARSER_SPEC, stage_name=STAGE_TEMPLATE.format(variant=variant))
    ctx = setup_distributed(False, "ablation")
    try:
        outcome = train(p, spec, TrainPaths.ablation_parser(repo_root, variant, seed_index), ctx)
    finally:
        teardown_distributed()
    return dataclasses.replace(shared, parser=outcome.generator.eval(), parser_net=p.parser)


@dataclasses.dataclass(frozen=True)
class SharedNetworks:
    """The pipeline's trained parser and segmenter, used unchanged by every variant."""

    parser: torch.nn.Module
    parser_net: ParserNet
    segmenter: torch.nn.Module
    segmenter_architecture: dict[str, int]

    @classmethod
    def from_artifacts(cls, params: Params, artifacts: Path) -> "SharedNetworks":
        (parser, parser_arch), (segmenter, architecture) = (load_trained(params, artifacts, name)
                                                            for name in ("parser", "segmenter"))
        return cls(parser, ParserNet(**parser_arch), segmenter, architecture)


def reuses_main_inpainter(params: Params, variant: str, seed_index: int) -> bool:
    """A variant without overrides, trained as long as the pipeline's inpainter with its seed, *is* that
    inpainter: its weights are evaluated instead of trained a second time."""
    return (not params.ablations[variant] and seed_index == 0 and params.ablation.curve_points == 1
            and params.ablation.steps == params.train_inpainter.steps)


def main_inpainter_outcome(params: Params, repo_root: Path) -> TrainOutcome:
    """The pipeline's trained inpainter (artifacts/inpainter) in the shape :func:`train` returns."""
    artifacts = TrainPaths.default(repo_root, "inpainter").artifacts
    generator, _ = load_trained(params, artifacts.parent, "inpainter")
    info = json.loads((artifacts / "info.json").read_text())
    losses = info.get("final_losses", {})
    return TrainOutcome(steps=int(info["steps"]), resumed_from=None, history=LossHistory(),
                        run_id=None,  # its training run belongs to train_inpainter; `evaluate` logs its scores
                        generator=generator.eval(),
                        discriminator=build_inpainter_discriminator(params),
                        train_seconds=float(losses.get("train_seconds", 0.0)))


def record_reuse(paths: TrainPaths, outcome: TrainOutcome) -> None:
    """The variant's checkpoint and weights folders (DVC outputs) say which weights stood in for its training."""
    note = {"reused": "artifacts/inpainter/generator.pt", "steps": outcome.steps,
            "train_seconds": outcome.train_seconds}
    for folder in (paths.checkpoints, paths.artifacts):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reused_weights.json").write_text(json.dumps(note, indent=2) + "\n")


def curve_steps(steps: int, points: int) -> list[int]:
    """``points`` evenly spaced steps of a ``steps``-long run, the last being ``steps`` (duplicates dropped)."""
    return sorted({max(1, round(steps * (i + 1) / points)) for i in range(points)})


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Python's, numpy's and torch's global random states as they were before the block."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class LearningCurveHook(Hook):
    """Evaluates a copy of the network being trained at the given steps and appends a row per step to a
    CSV (kept across a resume up to the step resumed from)."""

    def __init__(self, steps: list[int], score: Callable[[torch.nn.Module], dict[str, float]], path: Path) -> None:
        self.steps, self.score, self.path = set(steps), score, path

    def on_start(self, state: LoopState) -> None:
        kept = [row for row in read_curve(self.path) if row["step"] <= state.step]
        write_curve(self.path, kept)

    def on_step(self, state: LoopState, losses: dict[str, float]) -> None:
        if state.step in self.steps and state.exported is not None:
            with preserved_random_state():  # training continues exactly as without the evaluation
                metrics = self.score(copy.deepcopy(state.exported))
            append_curve_row(self.path, {"step": state.step, "train_seconds": state.train_seconds, **metrics})


def read_curve(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def append_curve_row(path: Path, row: dict[str, float]) -> None:
    write_curve(path, [r for r in read_curve(path) if r["step"] != row["step"]] + [row])


def forward_gflops(generator: torch.nn.Module, params: Params, prepared: Path) -> float:
    """GFLOP of one generator forward on one test image at the training resolution (multiply-adds x 2)."""
    dataset = EditingDataset(open_split(prepared / "test"), params.masks, seed=params.evaluate.seed,
                             fixed_masks=True)
    batch = {k: v[None] for k, v in dataset[0].items()}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        run_inpainter(generator, batch, batch["parsing"])
    return counter.get_total_flops() / 1e9


def train_and_evaluate(params: Params, variant: str, seed_index: int, repo_root: Path,
                       shared: SharedNetworks) -> dict[str, Any]:
    """Train one seed of one variant (resuming if interrupted), evaluate it, return its metrics."""
    p = variant_params(params, variant, seed_index)
    paths = EvaluatePaths.default(repo_root)
    shared = variant_parser(params, variant, seed_index, repo_root, shared)

    def score(generator: torch.nn.Module) -> dict[str, float]:
        networks = EditorNetworks(shared.segmenter, shared.parser, generator, shared.segmenter_architecture,
                                  shared.parser_net, p.inpainter)
        metrics = evaluate(p, paths, networks, model_only=True).metrics
        return {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}

    curve = repo_root / ablation_curve_file(variant, seed_index)
    if reuses_main_inpainter(params, variant, seed_index):
        outcome = main_inpainter_outcome(p, repo_root)
        record_reuse(TrainPaths.ablation(repo_root, variant, seed_index), outcome)
    else:
        spec = dataclasses.replace(INPAINTER_SPEC, stage_name=STAGE_TEMPLATE.format(variant=variant))
        points = curve_steps(p.train_inpainter.steps, params.ablation.curve_points)[:-1]  # the last: below
        ctx = setup_distributed(False, "ablation")
        try:
            outcome = train(p, spec, TrainPaths.ablation(repo_root, variant, seed_index), ctx,
                            hooks=[LearningCurveHook(points, score, curve)])
        finally:
            teardown_distributed()
    metrics: dict[str, Any] = score(outcome.generator)
    append_curve_row(curve, {"step": outcome.steps, "train_seconds": outcome.train_seconds, **metrics})
    metrics.update(variant=variant, seed=p.train_inpainter.seed, steps=outcome.steps,
                   g_params=count_parameters(outcome.generator), d_params=count_parameters(outcome.discriminator),
                   g_gflops=forward_gflops(outcome.generator, p, paths.prepared),
                   train_seconds=outcome.train_seconds, resumed_from=outcome.resumed_from)
    if outcome.run_id:  # the variant's MLflow run gets its evaluation beside its training curves
        log_to_run(p, repo_root, outcome.run_id, metrics={f"eval/{k}": float(v) for k, v in metrics.items()
                                                          if isinstance(v, (int, float)) and v is not None},
                   tags={"ablation.variant": variant, "ablation.seed_index": seed_index})
    return metrics


def run_variant(params: Params, variant: str, repo_root: Path) -> list[dict[str, Any]]:
    """Every seed of ``variant``; writes one metrics JSON per seed and returns them."""
    shared = SharedNetworks.from_artifacts(params, repo_root / ARTIFACTS)  # fails early if weights are missing
    runs = []
    for seed_index in range(params.ablation.seeds):
        metrics = train_and_evaluate(params, variant, seed_index, repo_root, shared)
        path = repo_root / ablation_metrics_file(variant, seed_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")
        runs.append(metrics)
    return runs


def variant_metric_files(params: Params, repo_root: Path) -> dict[str, list[Path]]:
    """The per-seed metrics files the ``report`` stage gathers, by variant (params order)."""
    return {name: [repo_root / ablation_metrics_file(name, k) for k in range(params.ablation.seeds)]
            for name in params.ablation.variants}
