"""The attribute sweep (issue 15, seed 003's slider figures): does a requested strength move the measured attribute,
and only that one?

For each attribute the parser was trained to edit, the first ``attribute_sweep.figures`` test figures are
edited at ``attribute_sweep.strengths`` strengths from -max_strength to +max_strength, exactly as the editor
edits a photo (``fashion_edit.serving.attribute_edit``) but on the true parsing, so the segmenter's errors do
not blur the answer. Every output parsing is measured (``fashion_edit.data.attributes``) and compared with
the same figure's strength-0 output:

- ``spearman``: rank correlation of the requested change and the measured change of the attribute (all figures
  pooled; the requested change is the strength once the target is kept in the attribute's range: a sleeve
  already at the wrist cannot grow);
- ``slope``: least-squares measured change per unit of strength (1 = the edit does what it says);
- ``others_ratio``: mean |change| of the other attributes over mean |change| of the edited one (0 = untouched);
- ``figures`` used and ``skipped`` (the attribute cannot be measured on them, e.g. hem_length without a lower
  garment).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from fashion_edit.config import Params
from fashion_edit.data.attributes import ATTRIBUTES, attribute_index, measure_attributes
from fashion_edit.data.dataset import to_unit_range
from fashion_edit.data.labels import BACKGROUND
from fashion_edit.data.store import open_split
from fashion_edit.errors import FashionEditError
from fashion_edit.layout import (ARTIFACTS, ATTRIBUTE_STRIPS, ATTRIBUTE_SWEEP_DETAIL,
                                 ATTRIBUTE_SWEEP_PLOT, PREPARED)
from fashion_edit.serving.attribute_edit import attribute_hole, attribute_targets, edit_conditions
from fashion_edit.serving.editor import EditorNetworks, two_stage
from fashion_edit.tracking.runs import stage_run
from fashion_edit.visualize import image_to_uint8, make_grid, save_png

STAGE = "attribute_sweep"
SECTIONS = ("attribute_sweep",)  # the networks' architectures come from their weights files


class SweepError(FashionEditError, ValueError):
    pass


@dataclass
class AttributeSweep:
    name: str
    strengths: np.ndarray          # (S,)
    requested: np.ndarray          # (F, S) the change asked for once kept in the attribute's range
    measured: np.ndarray           # (F, S, len(ATTRIBUTES)) attributes of the output parsings
    images: np.ndarray             # (F, S, H, W, 3) uint8 outputs (for the strip)
    skipped: int

    def changes(self) -> np.ndarray:
        """(F, S, len(ATTRIBUTES)) measured change against each figure's strength-0 output."""
        zero = int(np.argmin(np.abs(self.strengths)))
        return self.measured - self.measured[:, zero:zero + 1]

    def summary(self) -> dict[str, Any]:
        column = attribute_index(self.name)
        change, requested = self.changes(), self.requested
        own = change[..., column]
        known = np.isfinite(own)
        others = np.delete(change, column, axis=2)
        moved = self.strengths != 0
        own_moved = float(np.nanmean(np.abs(own[:, moved]))) if own.size else float("nan")
        other_moved = float(np.nanmean(np.abs(others[:, moved]))) if others.size else 0.0
        rho = spearmanr(requested[known], own[known]).statistic if known.sum() > 2 else float("nan")
        slope = (float(np.polyfit(requested[known], own[known], 1)[0]) if known.sum() > 2 else float("nan"))
        # the others' movement relative to the edited attribute's: undefined when the edit moved nothing
        ratio = other_moved / own_moved if own_moved > 1e-6 else float("nan")
        return {"spearman": float(rho), "slope": slope, "others_ratio": ratio,
                "mean_abs_change": own_moved, "figures": int(self.measured.shape[0]), "skipped": self.skipped}


def _edit_batch(image: np.ndarray, parsing: np.ndarray, name: str, seed: int) -> dict[str, torch.Tensor]:
    """One edit of attribute ``name`` in the dataset's batch format, as the editor builds it."""
    conditions = edit_conditions(image, parsing, attribute_hole(parsing, {name: 1.0}), {name: 1.0}, seed)
    known = torch.from_numpy(parsing.astype(np.int64))[None]
    return {"image": torch.from_numpy(to_unit_range(image))[None], "parsing": known, **conditions,
            "known_fg": (1 - conditions["mask"]) * (known != BACKGROUND)[:, None].float()}


def sweep_attribute(networks: EditorNetworks, images: np.ndarray, parsings: np.ndarray, name: str,
                    strengths: np.ndarray, seed: int) -> AttributeSweep:
    """Edit each figure at each strength; figures on which ``name`` cannot be measured are skipped."""
    measured, requested, outputs, skipped = [], [], [], 0
    column = networks.parser_net.attributes.index(name)
    for index, (image, parsing) in enumerate(zip(images, parsings)):
        image, parsing = np.asarray(image), np.asarray(parsing)
        truth = measure_attributes(parsing)[attribute_index(name)]
        if not np.isfinite(truth):
            skipped += 1
            continue
        batch = _edit_batch(image, parsing, name, seed + index)
        rows, asked, pictures = [], [], []
        for strength in strengths:
            target = attribute_targets(networks.parser_net, parsing, {name: float(strength)})
            asked.append(target[column] - truth)
            out = two_stage(networks, batch, torch.from_numpy(target)[None])
            rows.append(measure_attributes(out.completed[0].numpy().astype(np.uint8)))
            pictures.append(image_to_uint8(out.image[0]))
        measured.append(rows)
        requested.append(asked)
        outputs.append(pictures)
    if not measured:
        raise SweepError(f"attribute_sweep: {name} cannot be measured on any of the {len(images)} test figures "
                         "(raise attribute_sweep.figures or check the test split)")
    return AttributeSweep(name, strengths, np.array(requested, np.float32), np.array(measured, np.float32),
                          np.array(outputs), skipped)


def strip_picture(sweep: AttributeSweep, figures: int) -> np.ndarray:
    """Rows: figures; columns: strengths from -max to +max (the slider, left to right)."""
    return make_grid([list(row) for row in sweep.images[:figures]])


def sweep_plot(sweeps: list[AttributeSweep], path: Path) -> None:
    """Measured change against requested strength, per edited attribute, with every attribute's mean curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.6), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        change = sweep.changes()
        for column, attribute in enumerate(ATTRIBUTES):
            mean = np.nanmean(change[..., column], axis=0)
            style = {"linewidth": 2.5} if attribute == sweep.name else {"linestyle": "--", "alpha": 0.7}
            ax.plot(sweep.strengths, mean, marker="o", label=attribute, **style)
        ax.plot(sweep.strengths, sweep.strengths, color="grey", linewidth=0.8, label="requested")
        summary = sweep.summary()
        ax.set_title(f"{sweep.name}: Spearman {summary['spearman']:.2f}, slope {summary['slope']:.2f}")
        ax.set_xlabel("requested strength")
        ax.set_ylabel("measured change")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_safe(value: Any) -> Any:
    """NaN (an attribute that never moved has no correlation) as null: JSON has no NaN and DVC refuses it."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def run_attribute_sweep(params: Params, root: Path) -> dict[str, Any]:
    """The ``attribute_sweep`` stage: metrics JSON, the plot, the strips, one MLflow run."""
    networks = EditorNetworks.from_artifacts(params, root / ARTIFACTS)
    net = networks.parser_net
    metrics_path, plot_path, strips_path = (root / ATTRIBUTE_SWEEP_DETAIL, root / ATTRIBUTE_SWEEP_PLOT,
                                            root / ATTRIBUTE_STRIPS)
    for path in (metrics_path, plot_path, strips_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    if not net.attributes:  # nothing to sweep: say so in the outputs instead of failing the pipeline
        metrics_path.write_text(json.dumps({"attributes": {}, "note": "parser.attributes is empty"}, indent=2) + "\n")
        save_png(np.full((8, 8, 3), 255, np.uint8), plot_path)
        save_png(np.full((8, 8, 3), 255, np.uint8), strips_path)
        return {"attributes": {}}
    cfg = params.attribute_sweep
    test = open_split(root / PREPARED / "test")
    count = min(cfg.figures, len(test))
    strengths = np.linspace(-net.max_strength, net.max_strength, cfg.strengths).round(4)
    with stage_run(params, STAGE, SECTIONS, root) as run:
        sweeps = [sweep_attribute(networks, test.images[:count], test.parsing[:count], name, strengths, cfg.seed)
                  for name in net.attributes]
        summary = {"attributes": {s.name: s.summary() for s in sweeps}, "strengths": strengths.tolist()}
        metrics_path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
        sweep_plot(sweeps, plot_path)
        strips = make_grid([[strip_picture(s, cfg.strip_figures)] for s in sweeps])
        save_png(strips, strips_path)
        run.log_metrics({f"{name}_{key}": value for name, values in summary["attributes"].items()
                         for key, value in values.items()}, step=0)
        run.log_artifact(plot_path, "attribute_sweep")
        run.log_artifact(strips_path, "attribute_sweep")
        run.log_artifact(metrics_path, "attribute_sweep")
    return summary
