"""Loss history of a training run: kept in the checkpoint, written as a DVC plot (CSV) and a PNG."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch


class LossHistory:
    """Per-step losses with a fixed set of columns (set by the first recorded step)."""

    def __init__(self, columns: list[str] | None = None, rows: list[list[float]] | None = None) -> None:
        self.columns: list[str] = list(columns or [])
        self.rows: list[list[float]] = [list(r) for r in rows or []]

    def record(self, step: int, losses: dict[str, float]) -> None:
        if not self.columns:
            self.columns = list(losses)
        if list(losses) != self.columns:
            raise ValueError(f"loss terms changed at step {step}: {list(losses)} != {self.columns}")
        self.rows.append([float(step), *(float(losses[c]) for c in self.columns)])

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def steps(self) -> list[int]:
        return [int(r[0]) for r in self.rows]

    def column(self, name: str) -> list[float]:
        index = self.columns.index(name) + 1
        return [r[index] for r in self.rows]

    def truncate(self, last_step: int) -> None:
        """Drop rows after ``last_step`` (rows recorded after the checkpoint that is resumed)."""
        self.rows = [r for r in self.rows if r[0] <= last_step]

    # Stored in checkpoints as a tensor + list of str: loadable with weights_only=True.
    def to_state(self) -> dict[str, Any]:
        values = torch.tensor(self.rows, dtype=torch.float64) if self.rows else torch.zeros(0, 0, dtype=torch.float64)
        return {"columns": list(self.columns), "values": values}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LossHistory":
        return cls(state["columns"], state["values"].tolist())


def write_csv(history: LossHistory, path: Path) -> None:
    """``step,<term>,...`` one row per step: a ``dvc plots`` linear plot with x=step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *history.columns])
        for row in history.rows:
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])


def _smoothed(values: list[float], window: int) -> np.ndarray:
    """Trailing moving average (a raw GAN loss is too noisy to read)."""
    data = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(data) < 2:
        return data
    cumulative = np.cumsum(np.insert(data, 0, 0.0))
    out = np.empty_like(data)
    for i in range(len(data)):
        lo = max(0, i + 1 - window)
        out[i] = (cumulative[i + 1] - cumulative[lo]) / (i + 1 - lo)
    return out


def plot_png(history: LossHistory, path: Path, title: str, columns_per_row: int = 3) -> None:
    """One small panel per loss term (own y-scale: weighted terms differ by orders of magnitude),
    raw values faint, moving average bold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state
    from matplotlib.figure import Figure

    names = history.columns
    steps = history.steps
    window = max(1, len(steps) // 20)
    n_rows = max(1, -(-len(names) // columns_per_row))
    fig = Figure(figsize=(3.4 * columns_per_row, 2.3 * n_rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(n_rows, columns_per_row, i + 1)
        colour = "C0" if name.startswith("loss_d") else "C1"
        values = history.column(name)
        ax.plot(steps, values, color=colour, alpha=0.3, linewidth=0.8)
        ax.plot(steps, _smoothed(values, window), color=colour, linewidth=1.6)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title} (x: step; bold: moving average over {window} steps)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
