"""Gather the ablation variants' metrics into a markdown table, the claims' verdicts and two plots.

Input: ``{variant: [metrics of seed 0, metrics of seed 1, ...]}`` where each metrics dict is
what the ablation stage writes (evaluation metrics plus parameter counts and wall time).
With more than one seed a cell shows ``mean ± std`` (sample std, ddof=1) so a reader can tell
a real difference from seed noise. Besides the table and the plot: a detail JSON (mean/std/n of
every column per variant) and one headline file per variant (``<variant>.json``: the means over
seeds of the headline metrics, the keys of the evaluation's headline files, see
``fashion_edit.evaluation.headline``). The published claims are judged by ``claims.py``'s rule; the
learning curves of every variant share one figure, FID and KID against training seconds (one point per
run with ``ablation.curve_points: 1``: quality against cost).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fashion_edit.evaluation.claims import judge_all, verdict_table
from fashion_edit.evaluation.headline import HEADLINE_METRICS, write_headline

# metric key -> (column header, True when higher is better); order = table order
COLUMNS: dict[str, tuple[str, bool]] = {
    "fid": ("FID ↓", False),
    "kid": ("KID ↓", False),  # raw scale (not x 100 / x 1000); spread over seeds, not KID's own subset std
    "parser_miou": ("parser mIoU ↑", True),
    "seg_consistency_miou": ("seg. mIoU ↑", True),
    "psnr_hole": ("hole PSNR ↑", True),
    "ssim": ("SSIM ↑", True),
    "st_lpips": ("ST-LPIPS ↓", False),
    # N unguided completions per input (evaluate.samples; fashion_edit/evaluation/diversity.py)
    "diversity_lpips": ("diversity ST-LPIPS ↑", True),
    "diversity_parsing": ("hole labels differing ↑", True),
    "samples_fid": ("samples FID ↓", False),
    "g_params": ("G params", False),
    "d_params": ("D params", False),
    "g_gflops": ("G GFLOP/img", False),
    "train_seconds": ("train s", False),
}
COST_COLUMNS = ("g_params", "d_params", "g_gflops", "train_seconds")  # costs: not bolded as "best"
CURVE_PANELS = (("fid", "FID ↓"), ("kid", "KID ↓"))
PLOTTED = ("fid", "seg_consistency_miou", "psnr_hole", "st_lpips")


def load_variant_metrics(paths: Mapping[str, Sequence[Path]]) -> dict[str, list[dict]]:
    """Read each variant's per-seed metric JSON files; a missing file is an error naming it."""
    out: dict[str, list[dict]] = {}
    for variant, files in paths.items():
        out[variant] = []
        for path in files:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: metrics of ablation variant {variant!r} missing; run `dvc repro`")
            out[variant].append(json.loads(Path(path).read_text()))
    return out


def summarize(runs: Sequence[Mapping[str, float]], key: str) -> tuple[float, float, int]:
    """Mean, sample std (nan for one run) and count of ``key`` over seeds (missing keys ignored)."""
    values = np.array([float(r[key]) for r in runs if key in r and r[key] is not None], dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, 0
    spread = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), spread, int(values.size)


def _format_cell(mean: float, std: float, count: int, key: str) -> str:
    if count == 0:
        return "–"
    if key.endswith("params"):
        return f"{mean / 1e6:.2f} M"
    digits = 0 if key == "train_seconds" else (1 if key.endswith("fid") or key.startswith("psnr") else
                                               4 if key == "kid" else 2 if key == "g_gflops" else 3)
    cell = f"{mean:.{digits}f}"
    return f"{cell} ± {std:.{digits}f}" if count > 1 else cell


def markdown_table(metrics: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """One row per variant, one column per metric in :data:`COLUMNS`; best value in bold."""
    best = {}
    for key, (_, higher) in COLUMNS.items():
        means = [summarize(runs, key)[0] for runs in metrics.values()]
        finite = [m for m in means if not math.isnan(m)]
        if finite and key not in COST_COLUMNS:
            best[key] = max(finite) if higher else min(finite)
    header = "| variant | seeds | " + " | ".join(h for h, _ in COLUMNS.values()) + " |"
    rule = "|---|---|" + "---|" * len(COLUMNS)
    rows = [header, rule]
    for variant, runs in metrics.items():
        cells = []
        for key in COLUMNS:
            mean, std, count = summarize(runs, key)
            cell = _format_cell(mean, std, count, key)
            cells.append(f"**{cell}**" if key in best and mean == best[key] else cell)
        rows.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def bar_plot(metrics: Mapping[str, Sequence[Mapping[str, float]]], out_png: Path) -> None:
    """One panel per plotted metric, one bar per variant, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(metrics)
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 4 + 0.1 * len(variants)))
    for axis, key in zip(np.atleast_1d(axes), PLOTTED):
        stats = [summarize(metrics[v], key) for v in variants]
        means = [s[0] for s in stats]
        errors = [0.0 if math.isnan(s[1]) else s[1] for s in stats]
        axis.bar(range(len(variants)), means, yerr=errors, capsize=3,
                 color=["#d62728" if v == "full" else "#1f77b4" for v in variants])
        axis.set_xticks(range(len(variants)), variants, rotation=60, ha="right", fontsize=8)
        axis.set_title(COLUMNS[key][0])
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def curves_plot(curves: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], out_png: Path) -> None:
    """FID and KID against training seconds, one line per variant (mean over seeds at each step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(6 * len(CURVE_PANELS), 4.5))
    for axis, (key, title) in zip(np.atleast_1d(axes), CURVE_PANELS):
        for variant, seeds in curves.items():
            steps = sorted({row["step"] for rows in seeds for row in rows})
            at = [[row for rows in seeds for row in rows if row["step"] == step] for step in steps]
            seconds = [float(np.mean([r["train_seconds"] for r in rows])) for rows in at]
            values = [float(np.mean([r[key] for r in rows])) for rows in at]
            axis.plot(seconds, values, marker="o", label=variant, linewidth=2.5 if variant == "full" else 1.2)
        axis.set_xlabel("training seconds (mean over seeds)")
        axis.set_title(title)
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def write_headlines(metrics: Mapping[str, Sequence[Mapping[str, float]]], folder: Path) -> None:
    """``<folder>/<variant>.json``: the mean over seeds of each headline metric the variant reports."""
    for variant, runs in metrics.items():
        means = {key: summarize(runs, key) for key in HEADLINE_METRICS}
        write_headline(folder / f"{variant}.json", {key: mean for key, (mean, _, n) in means.items() if n})


def build_report(metrics: Mapping[str, Sequence[Mapping[str, float]]], out_md: Path, out_png: Path,
                 out_json: Path | None = None, headlines: Path | None = None, z: float = 2.0,
                 curves: Mapping[str, Sequence[Sequence[Mapping[str, float]]]] | None = None,
                 curves_png: Path | None = None) -> str:
    """Write the markdown report (table, verdicts, plot links), the PNGs and optionally a summary JSON and
    the per-variant headline files (in the folder ``headlines``)."""
    if not metrics:
        raise ValueError("no ablation variants to report: the params.yaml `ablations` mapping is empty")
    table = markdown_table(metrics)
    bar_plot(metrics, out_png)
    verdicts = judge_all(metrics, z)
    figures = f"![ablation metrics]({out_png.name})\n"
    if curves_png is not None and curves:  # with one point per run: quality against training cost
        curves_plot(curves, curves_png)
        figures += f"\n![learning curves]({curves_png.name})\n"
    seeds = max(len(runs) for runs in metrics.values())
    note = ("Cells show mean ± sample std over seeds." if seeds > 1
            else "One seed per variant: differences smaller than seed noise cannot be told apart "
                 "(set `ablation.seeds` > 1).")
    steps = sorted({int(run["steps"]) for runs in metrics.values() for run in runs if "steps" in run})
    if steps:  # the training length decides how far the differences can be read
        note = f"Inpainter trained {'/'.join(map(str, steps))} steps per run. {note}"
    text = (f"# Ablation study\n\n{note} Bold = best value in the column; GFLOP: one generator forward per image "
            f"at the training resolution.\n\n{table}\n\n{figures}\n## Published claims\n\n"
            f"{verdict_table(verdicts, z)}\n")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text)
    if out_json is not None:
        summary = {"variants": {v: {k: dict(zip(("mean", "std", "n"), summarize(runs, k))) for k in COLUMNS}
                                for v, runs in metrics.items()},
                   "claims": [{"claim": v.claim.text, "source": v.claim.source, "published": v.claim.published,
                               "gap": v.difference, "se": v.standard_error, "verdict": v.verdict} for v in verdicts]}
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(summary, indent=2, allow_nan=True))
    if headlines is not None:
        write_headlines(metrics, headlines)
    return text
