"""Every path a stage reads or writes, relative to the repository root (the folder of ``params.yaml``).

``dvc.yaml`` declares the same paths; ``tests/test_layout.py`` checks that each path there is one of these and
that each stage writes only paths its ``outs`` declare. The ``*Paths`` classes bind the paths of one stage to a
repository root.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARAMS = Path("params.yaml")  # its folder is the repository root
DATA = Path("data")
RAW = DATA / "raw"
PREPARED = DATA / "prepared"
SWAP_PAIRS = DATA / "swap_pairs"  # the paired category-swap test set (issue 14)
FID_REFERENCE_DIR = DATA / "fid_reference"
FID_REFERENCE = FID_REFERENCE_DIR / "test.npz"  # real test-image features (the fid_reference stage)
CHECKPOINTS = Path("checkpoints")
ARTIFACTS = Path("artifacts")
EDITOR_BUNDLE = ARTIFACTS / "editor"
REPORTS = Path("reports")
FIGURES = REPORTS / "figures"

PARAMS_CHECK = REPORTS / "params_check.txt"
CONTACT_SHEET = FIGURES / "synthesize_contact_sheet.png"
PREPROCESS_REPORT = REPORTS / "preprocess.json"
EVALUATE_DETAIL = REPORTS / "evaluate.json"  # every number of the evaluate stage, with the SEs
EVALUATE_HEADLINES = REPORTS / "metrics" / "evaluate"  # <method>.json, what `dvc metrics show` lists
EVALUATE_REPORT = REPORTS / "evaluate.md"
EVALUATE_GRID = REPORTS / "evaluate" / "samples.png"
DIVERSITY_GRID = REPORTS / "evaluate" / "diversity.png"  # N unguided completions per input (issue 14)
# the attribute_sweep stage: every number (an `outs` file: its keys are not the headline metrics' few, and
# `dvc metrics show` stays narrow), the requested-vs-measured plot, one strip per attribute
ATTRIBUTE_SWEEP_DETAIL = REPORTS / "attribute_sweep.json"
ATTRIBUTE_SWEEP_PLOT = FIGURES / "attribute_sweep.png"
ATTRIBUTE_STRIPS = FIGURES / "attribute_strips.png"
# the category_swap stage (issue 14): both methods' numbers (an `outs` file, like the sweep's) and the edits' figure
CATEGORY_SWAP_DETAIL = REPORTS / "category_swap.json"
CATEGORY_SWAP_FIGURE = FIGURES / "category_swap.png"
REGISTER_REPORT = REPORTS / "register.json"  # versions, promoted, reason: the one gate's decision
ABLATIONS = Path("ablations")  # below checkpoints/, artifacts/ and reports/: one folder per variant
ABLATION_REPORTS = REPORTS / ABLATIONS  # <variant>/seed<k>.json, gathered by the report stage
ABLATION_DETAIL = REPORTS / "ablations.json"  # mean / std / n of every reported metric per variant, verdicts
ABLATION_HEADLINES = REPORTS / "metrics" / "ablations"  # <variant>.json
ABLATION_TABLE = REPORTS / "ablations.md"
ABLATION_PLOT = FIGURES / "ablations.png"
ABLATION_CURVES_PLOT = FIGURES / "ablation_curves.png"  # FID/KID against training seconds, every variant


def headline_file(method: str) -> Path:
    """One row of `dvc metrics show`: the model or a baseline (``reports/metrics/evaluate/<method>.json``)."""
    return EVALUATE_HEADLINES / f"{method}.json"


def ablation_metrics_file(variant: str, seed_index: int) -> Path:
    return ABLATION_REPORTS / variant / f"seed{seed_index}.json"


def ablation_curve_file(variant: str, seed_index: int) -> Path:
    """The seed's learning curve: evaluation metrics at ``ablation.curve_points`` steps (CSV)."""
    return ABLATION_REPORTS / variant / f"seed{seed_index}_curve.csv"


@dataclass(frozen=True)
class TrainPaths:
    """Where one training reads its data and writes checkpoints (persistent), weights and reports."""

    prepared: Path
    checkpoints: Path
    artifacts: Path
    reports: Path
    repo_root: Path

    @classmethod
    def default(cls, repo_root: Path, name: str) -> "TrainPaths":
        """The training stage of network ``name`` (parser, inpainter, segmenter)."""
        return cls._under(repo_root, Path(name), REPORTS / f"train_{name}")

    @classmethod
    def ablation(cls, repo_root: Path, variant: str, seed_index: int) -> "TrainPaths":
        """One seed of one ablation variant."""
        folder = ABLATIONS / variant / f"seed{seed_index}"
        return cls._under(repo_root, folder, REPORTS / folder)

    @classmethod
    def ablation_parser(cls, repo_root: Path, variant: str, seed_index: int) -> "TrainPaths":
        """The parser of one seed of a variant that changes the parser (e.g. ``stochastic``)."""
        folder = ABLATIONS / variant / f"seed{seed_index}" / "parser"
        return cls._under(repo_root, folder, REPORTS / folder)

    @classmethod
    def _under(cls, repo_root: Path, folder: Path, reports: Path) -> "TrainPaths":
        return cls(prepared=repo_root / PREPARED, checkpoints=repo_root / CHECKPOINTS / folder,
                   artifacts=repo_root / ARTIFACTS / folder, reports=repo_root / reports, repo_root=repo_root)


@dataclass(frozen=True)
class EvaluatePaths:
    prepared: Path
    artifacts: Path
    metrics: Path  # the detail file: every number
    headlines: Path  # folder of <method>.json headline files (what `dvc metrics show` lists)
    report: Path
    grid: Path
    repo_root: Path
    fid_reference: Path | None = None  # the fid_reference stage's real features; None: computed here
    diversity_grid: Path | None = None  # N completions per input (with evaluate.samples > 1); None: not written

    @classmethod
    def default(cls, repo_root: Path) -> "EvaluatePaths":
        return cls(prepared=repo_root / PREPARED, artifacts=repo_root / ARTIFACTS,
                   metrics=repo_root / EVALUATE_DETAIL, headlines=repo_root / EVALUATE_HEADLINES,
                   report=repo_root / EVALUATE_REPORT, grid=repo_root / EVALUATE_GRID, repo_root=repo_root,
                   fid_reference=repo_root / FID_REFERENCE, diversity_grid=repo_root / DIVERSITY_GRID)


@dataclass(frozen=True)
class RegisterPaths:
    artifacts: Path
    evaluation: Path
    bundle: Path
    report: Path
    repo_root: Path

    @classmethod
    def default(cls, repo_root: Path) -> "RegisterPaths":
        return cls(artifacts=repo_root / ARTIFACTS, evaluation=repo_root / EVALUATE_DETAIL,
                   bundle=repo_root / EDITOR_BUNDLE, report=repo_root / REGISTER_REPORT, repo_root=repo_root)
