"""Learning curve of the inpainter: its test quality against the seconds spent training it, beside the baselines.

    .venv/bin/python -m bench.learning_curve [--params params.yaml] [--budget-minutes 30] [--every-steps 50]
        [--max-steps N] [--out docs/learning_curve] [--work bench_runs/learning_curve]

What is measured: the inpainter of ``params.yaml`` (``train_inpainter``, the ``train_inpainter`` stage's
trainer) is trained in ``--work`` for ``every``, ``2*every``, ... steps; after each point it is evaluated
exactly as an ablation variant is (``fashion_edit.evaluation.evaluate.evaluate(..., model_only=True)``: the fixed test
holes, the pipeline's trained parser and segmenter, the ``fid_reference`` stage's real features). A row is
``steps, train_seconds, images_seen, fid, kid, st_lpips, psnr_hole, ssim``; ``train_seconds`` is the time
spent in training steps only (summed over resumed runs; evaluation and start-up are not counted), and
``images_seen = steps * batch_size``. Training continues from the checkpoint between points (``steps`` does
not change the trained weights), so point k is the same network a single k-step run would give. The loop
stops once ``train_seconds >= --budget-minutes`` (or past ``--max-steps``).

The baselines (OpenCV Telea and mean-colour fill) are read from ``reports/evaluate.json`` (the
``evaluate`` stage, same holes, same metric code) and drawn as horizontal lines; where the model first beats
each of them is printed and stored.

Outputs in ``--out``: ``learning_curve.csv`` (the rows), ``learning_curve.json`` (rows, baselines, crossings,
CPU capability, params summary) and ``learning_curve.png`` (FID, KID, ST-LPIPS, hole PSNR against training
seconds, steps on the top axis). They are rewritten after every point.

Re-running the same command resumes: rows already in the CSV are kept when the JSON's ``identity`` (trained-
weights params, prepared data, evaluation params, parser/segmenter/FID-reference files) still matches, and
training resumes from ``<work>/checkpoints/checkpoint.pt``. A larger budget extends the curve.

Needs the pipeline's outputs (``dvc repro evaluate``). MLflow: each point's training is one run under the
stage name ``learning_curve`` in ``$MLFLOW_TRACKING_URI`` if set, else in ``sqlite:///<work>/mlflow.db``
(never the pipeline's store by default; this overrides ``params.mlflow.tracking_uri``); run artifacts go to
``<work>/mlartifacts`` for a new store.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from fashion_edit.config import Params, load_params
from fashion_edit.data.preprocess import file_sha256
from fashion_edit.evaluation.ablation import SharedNetworks
from fashion_edit.evaluation.evaluate import BASELINES, SECTIONS as EVALUATE_SECTIONS, EvaluationError, evaluate
from fashion_edit.evaluation.fid_reference import FidReferenceError
from fashion_edit.hardware import HardwareProbe, bf16_is_native, probe
from fashion_edit.layout import EVALUATE_DETAIL
from fashion_edit.layout import EvaluatePaths
from fashion_edit.layout import FID_REFERENCE
from fashion_edit.layout import TrainPaths
from fashion_edit.serving.editor import TRAINED_WEIGHTS, EditorModelError, EditorNetworks
from fashion_edit.tracking.runs import ENV_TRACKING_URI, params_hash
from fashion_edit.training.distributed import setup_distributed, teardown_distributed
from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.runner import TrainerSpec, TrainOutcome, checkpoint_identity, train
from fashion_edit.training.stage import EXPECTED_ERRORS
from fashion_edit.weights import NetworkFileError

STAGE = "learning_curve"
SPEC: TrainerSpec = dataclasses.replace(INPAINTER_SPEC, stage_name=STAGE)
DEFAULT_OUT = Path("docs") / "learning_curve"
DEFAULT_WORK = Path("bench_runs") / "learning_curve"
CSV_NAME, JSON_NAME, PNG_NAME = "learning_curve.csv", "learning_curve.json", "learning_curve.png"
EVALUATE_JSON = EVALUATE_DETAIL  # the baselines' scores
ROW_FIELDS = ("steps", "train_seconds", "images_seen", "fid", "kid", "st_lpips", "psnr_hole", "ssim")
INT_FIELDS = frozenset({"steps", "images_seen"})
BASELINE_LABELS = {"telea": "Telea (OpenCV)", "mean_fill": "mean-colour fill"}
EXPECTED = (*EXPECTED_ERRORS, EditorModelError, EvaluationError, FidReferenceError, NetworkFileError)

Row = dict[str, float]


class Metric(NamedTuple):
    key: str
    label: str
    lower_is_better: bool

    def better(self, value: float, than: float) -> bool:
        return value < than if self.lower_is_better else value > than


METRICS = (Metric("fid", "FID", True), Metric("kid", "KID", True), Metric("st_lpips", "ST-LPIPS", True),
           Metric("psnr_hole", "hole PSNR (dB)", False))


class PrerequisiteError(RuntimeError):
    """The pipeline's outputs the curve reads are missing."""


# ----------------------------------------------------------------------------- inputs
def required_inputs(repo_root: Path) -> list[Path]:
    """What the curve reads from the pipeline (all produced by ``dvc repro evaluate``)."""
    return [repo_root / "data" / "prepared" / "manifest.json", repo_root / FID_REFERENCE,
            *(repo_root / "artifacts" / TRAINED_WEIGHTS[name][0] for name in ("parser", "segmenter")),
            repo_root / EVALUATE_JSON]


def check_inputs(repo_root: Path) -> None:
    missing = [path for path in required_inputs(repo_root) if not path.is_file()]
    if missing:
        raise PrerequisiteError("missing pipeline outputs: " + ", ".join(str(p) for p in missing)
                                + " (run `dvc repro evaluate` first)")


def load_baselines(evaluate_json: Path) -> dict[str, dict[str, float]]:
    """``baselines.<name>.*`` of the evaluate stage's metrics file, for every baseline it scores."""
    baselines = json.loads(evaluate_json.read_text()).get("baselines", {})
    absent = [name for name in BASELINES if name not in baselines]
    if absent:
        raise PrerequisiteError(f"{evaluate_json}: no baselines {absent} (written by an older `evaluate`; "
                                "run `dvc repro evaluate` first)")
    return {name: {k: float(v) for k, v in baselines[name].items()} for name in BASELINES}


def curve_tracking_uri(work: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a store of the curve's own (the pipeline's stays uncluttered)."""
    return os.environ.get(ENV_TRACKING_URI) or f"sqlite:///{(work / 'mlflow.db').resolve()}"


def curve_params(params: Params, tracking_uri: str) -> Params:
    """``params`` with the curve's MLflow store and single-process training."""
    train_params = params.train_inpainter.model_copy(update={"distributed": False})
    return params.model_copy(update={"mlflow": params.mlflow.model_copy(update={"tracking_uri": tracking_uri}),
                                     "train_inpainter": train_params})


def with_steps(params: Params, steps: int) -> Params:
    return params.model_copy(update={"train_inpainter": params.train_inpainter.model_copy(update={"steps": steps})})


def work_paths(repo_root: Path, work: Path) -> TrainPaths:
    """Training state, weights and curves under ``work``; the prepared data of the pipeline."""
    return TrainPaths(prepared=repo_root / "data" / "prepared", checkpoints=work / "checkpoints",
                      artifacts=work / "artifacts", reports=work / "reports", repo_root=work)


def curve_identity(params: Params, repo_root: Path) -> str:
    """What the rows depend on: the trained weights' identity (as the checkpoint records it), the evaluation
    params and the files the evaluation reads besides the inpainter. Rows of another identity are dropped."""
    manifest = (repo_root / "data" / "prepared" / "manifest.json").read_bytes()
    parts = [checkpoint_identity(params, SPEC, manifest, world_size=1), params_hash(params, EVALUATE_SECTIONS),
             *(file_sha256(path) for path in required_inputs(repo_root)[1:4])]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- rows on disk
def read_rows(out: Path, identity: str, every: int) -> list[Row]:
    """Rows of a previous run of the same curve: the points ``every, 2*every, ...`` present without a gap."""
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    if not csv_path.is_file() or not json_path.is_file():
        return []
    if json.loads(json_path.read_text()).get("identity") != identity:
        print(f"{STAGE}: {out} holds a curve of other params, data or networks: starting again")
        return []
    with open(csv_path, newline="") as handle:
        found = {int(r["steps"]): {k: (int(r[k]) if k in INT_FIELDS else float(r[k])) for k in ROW_FIELDS}
                 for r in csv.DictReader(handle)}
    rows = []
    while (len(rows) + 1) * every in found:
        rows.append(found[(len(rows) + 1) * every])
    return rows


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    lines = [",".join(ROW_FIELDS)]
    lines += [",".join(str(row[k]) if k in INT_FIELDS else repr(float(row[k])) for k in ROW_FIELDS) for row in rows]
    _atomic_write(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- one point
def train_to(params: Params, steps: int, paths: TrainPaths) -> TrainOutcome:
    """Train (resuming from the work checkpoint) until ``steps``."""
    ctx = setup_distributed(False, STAGE)
    try:
        return train(with_steps(params, steps), SPEC, paths, ctx)
    finally:
        teardown_distributed()


def evaluate_outcome(params: Params, repo_root: Path, shared: SharedNetworks, outcome: TrainOutcome) -> Row:
    """The evaluate stage's model scores of the trained generator, as one row."""
    networks = EditorNetworks(shared.segmenter, shared.parser, outcome.generator, shared.segmenter_architecture,
                              shared.parser_net, params.inpainter)
    metrics = evaluate(params, EvaluatePaths.default(repo_root), networks, model_only=True).metrics
    row: Row = {"steps": outcome.steps, "train_seconds": round(float(outcome.train_seconds), 3),
                "images_seen": outcome.steps * params.train_inpainter.batch_size}
    row.update({k: float(metrics[k]) for k in ROW_FIELDS if k not in row})
    return row


def describe_row(row: Row) -> str:
    return (f"step {row['steps']}: {row['train_seconds']:.1f} s training, FID {row['fid']:.2f}, KID {row['kid']:.4f}, "
            f"ST-LPIPS {row['st_lpips']:.4f}, hole PSNR {row['psnr_hole']:.2f} dB, SSIM {row['ssim']:.4f}")


# ----------------------------------------------------------------------------- crossings
def crossings(rows: Sequence[Row], baselines: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """``{metric: {baseline: {"steps", "train_seconds"} | None}}``: the first point better than the baseline."""
    found: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        found[metric.key] = {}
        for name, scores in baselines.items():
            first = next((r for r in rows if metric.better(r[metric.key], scores[metric.key])), None)
            found[metric.key][name] = (None if first is None else
                                       {"steps": int(first["steps"]), "train_seconds": first["train_seconds"]})
    return found


def crossing_lines(found: Mapping[str, Mapping[str, Any]], rows: Sequence[Row]) -> list[str]:
    last = rows[-1] if rows else {"train_seconds": 0.0, "steps": 0}
    lines = []
    for metric in METRICS:
        for name, hit in found[metric.key].items():
            label = BASELINE_LABELS.get(name, name)
            if hit is None:
                lines.append(f"{metric.label}: does not beat {label} within {last['train_seconds']:.0f} s "
                             f"({last['steps']} steps)")
            else:
                lines.append(f"{metric.label}: beats {label} after {hit['train_seconds']:.0f} s "
                             f"(step {hit['steps']})")
    return lines


# ----------------------------------------------------------------------------- figure
def _steps_axis(rows: Sequence[Row]) -> tuple[Callable, Callable] | None:
    """seconds <-> steps by piecewise-linear interpolation through (0, 0) and the points, extended beyond the last
    point at the average rate; None if the seconds do not increase (no monotone mapping)."""
    seconds = np.array([0.0] + [r["train_seconds"] for r in rows])
    steps = np.array([0.0] + [float(r["steps"]) for r in rows])
    if len(rows) < 1 or np.any(np.diff(seconds) <= 0):
        return None
    rate = steps[-1] / seconds[-1]

    def forward(x: Any) -> Any:
        x = np.asarray(x, dtype=float)
        return np.where(x <= seconds[-1], np.interp(x, seconds, steps), steps[-1] + (x - seconds[-1]) * rate)

    def inverse(y: Any) -> Any:
        y = np.asarray(y, dtype=float)
        return np.where(y <= steps[-1], np.interp(y, steps, seconds), seconds[-1] + (y - steps[-1]) / rate)

    return forward, inverse


def title(hw: HardwareProbe, params: Params) -> str:
    t, pre = params.train_inpainter, params.preprocess
    device = f"CPU {hw.cpu_capability}" + (", native bf16" if bf16_is_native(hw) else "")
    return (f"Inpainter learning curve ({device}, {hw.threads} threads)\n"
            f"batch {t.batch_size}, {pre.height}x{pre.width}, lr G {t.lr_g:g} / D {t.lr_d:g}")


def plot_curve(rows: Sequence[Row], baselines: Mapping[str, Mapping[str, float]], heading: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [r["train_seconds"] for r in rows]
    mapping = _steps_axis(rows)
    styles = {"telea": ("tab:red", "--"), "mean_fill": ("tab:gray", "--")}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, metric in zip(axes.flat, METRICS):
        ax.plot(seconds, [r[metric.key] for r in rows], "o-", color="tab:blue", label="inpainter")
        for name, scores in baselines.items():
            colour, dash = styles.get(name, ("tab:green", ":"))
            ax.axhline(scores[metric.key], color=colour, linestyle=dash,
                       label=f"{BASELINE_LABELS.get(name, name)} ({scores[metric.key]:.4g})")
        ax.set_title(f"{metric.label} {'↓' if metric.lower_is_better else '↑'}")
        ax.set_xlabel("training seconds")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if mapping is not None:
            ax.secondary_xaxis("top", functions=mapping).set_xlabel("steps", fontsize=8)
    fig.suptitle(heading)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.png")
    fig.savefig(partial, dpi=110)
    plt.close(fig)
    partial.replace(path)


# ----------------------------------------------------------------------------- outputs
def summary(params: Params, rows: Sequence[Row], baselines: Mapping[str, Mapping[str, float]], hw: HardwareProbe,
            identity: str, every: int, budget_minutes: float) -> dict[str, Any]:
    t = params.train_inpainter
    return {
        "identity": identity,
        "rows": list(rows),
        "baselines": {name: {m.key: scores[m.key] for m in METRICS} | {"ssim": scores.get("ssim", math.nan)}
                      for name, scores in baselines.items()},
        "crossings": crossings(rows, baselines),
        "hardware": {**dataclasses.asdict(hw), "bf16_native": bf16_is_native(hw)},
        "params": {"batch_size": t.batch_size, "lr_g": t.lr_g, "lr_d": t.lr_d, "warmup_steps": t.warmup_steps,
                   "ema_decay": t.ema_decay, "seed": t.seed,
                   "resolution": [params.preprocess.height, params.preprocess.width],
                   "every_steps": every, "budget_minutes": budget_minutes},
    }


def write_outputs(out: Path, rows: Sequence[Row], data: Mapping[str, Any], heading: str) -> None:
    write_csv(rows, out / CSV_NAME)
    _atomic_write(out / JSON_NAME, json.dumps(data, indent=2, allow_nan=True) + "\n")
    if rows:
        plot_curve(rows, data["baselines"], heading, out / PNG_NAME)


# ----------------------------------------------------------------------------- the loop
@dataclasses.dataclass(frozen=True)
class CurveSettings:
    repo_root: Path
    out: Path
    work: Path
    every: int
    budget_seconds: float
    max_steps: int | None = None

    def more(self, rows: Sequence[Row]) -> bool:
        """Another point is due: the budget is not spent and the next point is within ``max_steps``."""
        spent = rows[-1]["train_seconds"] if rows else 0.0
        next_steps = (len(rows) + 1) * self.every
        return spent < self.budget_seconds and (self.max_steps is None or next_steps <= self.max_steps)


def run_curve(params: Params, settings: CurveSettings) -> dict[str, Any]:
    """Train and evaluate point after point (resuming), rewriting the outputs after each; returns the summary."""
    repo_root, out, work = settings.repo_root, settings.out, settings.work
    check_inputs(repo_root)
    baselines = load_baselines(repo_root / EVALUATE_JSON)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / ".gitignore").exists():  # checkpoints, weights and MLflow files are not for git
        (work / ".gitignore").write_text("*\n")
    params = curve_params(params, curve_tracking_uri(work))
    hw, identity = probe(), curve_identity(params, repo_root)
    heading, budget_minutes = title(hw, params), settings.budget_seconds / 60
    rows = read_rows(out, identity, settings.every)
    if rows:
        print(f"{STAGE}: resuming after {len(rows)} points ({rows[-1]['steps']} steps, "
              f"{rows[-1]['train_seconds']:.1f} s) from {out / CSV_NAME}")
    shared = SharedNetworks.from_artifacts(params, repo_root / "artifacts")
    paths = work_paths(repo_root, work)
    while settings.more(rows):
        steps = (len(rows) + 1) * settings.every
        outcome = train_to(params, steps, paths)
        started = time.perf_counter()
        rows.append(evaluate_outcome(params, repo_root, shared, outcome))
        print(f"{STAGE}: {describe_row(rows[-1])} (evaluated in {time.perf_counter() - started:.1f} s)", flush=True)
        write_outputs(out, rows, summary(params, rows, baselines, hw, identity, settings.every, budget_minutes),
                      heading)
    data = summary(params, rows, baselines, hw, identity, settings.every, budget_minutes)
    write_outputs(out, rows, data, heading)
    return data


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--budget-minutes", type=float, default=30.0,
                        help="stop once the training seconds reach this (default: %(default)s)")
    parser.add_argument("--every-steps", type=int, default=50, help="steps between points (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="also stop before exceeding this many steps")
    parser.add_argument("--out", type=Path, default=None, help=f"default: <repo>/{DEFAULT_OUT}")
    parser.add_argument("--work", type=Path, default=None, help=f"default: <repo>/{DEFAULT_WORK}")
    args = parser.parse_args(argv)
    if args.every_steps < 1 or args.budget_minutes <= 0 or (args.max_steps is not None and args.max_steps < 1):
        parser.error("--every-steps and --max-steps must be >= 1 and --budget-minutes > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repo_root = args.params.resolve().parent
    settings = CurveSettings(repo_root=repo_root, out=(args.out or repo_root / DEFAULT_OUT).resolve(),
                             work=(args.work or repo_root / DEFAULT_WORK).resolve(), every=args.every_steps,
                             budget_seconds=args.budget_minutes * 60, max_steps=args.max_steps)
    hw = probe()
    print(f"{STAGE}: cpu capability {hw.cpu_capability}, native bf16 {'yes' if bf16_is_native(hw) else 'no'}, "
          f"{hw.threads} threads; budget {args.budget_minutes:g} min of training, a point every "
          f"{args.every_steps} steps")
    try:
        data = run_curve(load_params(args.params), settings)
    except (PrerequisiteError, *EXPECTED) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 1
    for line in crossing_lines(data["crossings"], data["rows"]):
        print(f"{STAGE}: {line}")
    print(f"{STAGE}: wrote {settings.out / CSV_NAME}, {settings.out / JSON_NAME}, {settings.out / PNG_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
