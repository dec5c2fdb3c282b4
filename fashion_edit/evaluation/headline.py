"""The headline metrics: the few numbers people compare, their direction, and the files that hold them.

One place for what the evaluation, the ablation report, the promotion gate and ``fashion-edit
compare`` must agree on (no heavy imports: the registry and the CLI read it without torch).

- :data:`HEADLINE_METRICS`: key -> True when higher is better. The gate judges exactly these.
- ``<key>_se`` (:func:`se_key`): the metric's standard error, from a bootstrap over test images
  (``fashion_edit.evaluation.metrics.bootstrap``); written by ``evaluate`` and tagged on registered versions.
- Files (relative to the repository root). ``dvc metrics show`` lists only the headline files,
  one row per method (``reports/metrics/evaluate/<method>.json``: the model and each baseline) and
  per ablation variant (``reports/metrics/ablations/<variant>.json``, means over seeds), all with
  the same keys, so the table stays narrow. Every other number is in a detail file
  (:data:`EVALUATE_DETAIL`, ...), a DVC output that is not declared as metrics.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fashion_edit.layout import headline_file

# key -> higher is better; the order is the order of every table
HEADLINE_METRICS: dict[str, bool] = {
    "fid": False,
    "kid": False,
    "st_lpips": False,
    "psnr_hole": True,
    "parser_miou": True,  # the model and the ablation variants only: the baselines have no parser
}
SE_SUFFIX = "_se"
MODEL = "model"  # the trained editor's row beside the baselines

MODEL_HEADLINE = headline_file(MODEL)


def se_key(key: str) -> str:
    return f"{key}{SE_SUFFIX}"


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The headline entries of ``metrics`` that it has, in table order."""
    return {key: float(metrics[key]) for key in HEADLINE_METRICS if key in metrics}


def write_headline(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write the headline entries of ``metrics`` to ``path`` (NaN stays NaN: a diverged run shows as such)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(headline(metrics), indent=2) + "\n")


def numeric_metrics(path: Path) -> dict[str, float]:
    """The top-level numbers of a metrics file (nested entries such as ``baselines`` left out).

    These are what the register stage tags on a version and the gate reads back. FileNotFoundError
    naming the stage to run when the file does not exist yet.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: evaluation metrics missing (run `dvc repro evaluate`)")
    data = json.loads(path.read_text())
    return {key: float(value) for key, value in data.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
