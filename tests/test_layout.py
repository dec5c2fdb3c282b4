"""dvc.yaml and the code name the same paths: fashion_edit/layout.py is the one list."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fashion_edit import layout
from fashion_edit.config import load_params
from tests.conftest import REPO_ROOT

CODE = ("fashion_edit", "models", "stages")
ROOTS = {layout.DATA, layout.REPORTS, layout.CHECKPOINTS, layout.ARTIFACTS, layout.FIGURES, layout.ABLATIONS}
TRAINING_STAGES = {"train_parser": "parser", "train_inpainter": "inpainter", "train_segmenter": "segmenter"}


def _dvc_stages() -> dict[str, dict]:
    """Stage name -> definition; a foreach stage once per item of params.yaml, named ``<stage>@<item>``."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    variants = load_params(REPO_ROOT / "params.yaml").ablation.variants
    out: dict[str, dict] = {}
    for name, stage in stages.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        for item in variants:
            text = yaml.safe_dump(stage["do"]).replace("${item}", item)
            out[f"{name}@{item}"] = yaml.safe_load(text)
    return out


def _entries(stage: dict, *kinds: str) -> list[Path]:
    paths = []
    for kind in kinds:
        for entry in stage.get(kind, []):
            paths.append(Path(entry if isinstance(entry, str) else next(iter(entry))))
    return [p for p in paths if p.parts[0] not in CODE]


def _layout_paths() -> set[Path]:
    """Every path layout.py names for the default params: constants and each stage's ``*Paths`` fields."""
    known = {value for value in vars(layout).values() if isinstance(value, Path)}
    root = Path(".")
    bound = [layout.TrainPaths.default(root, name) for name in TRAINING_STAGES.values()]
    bound += [layout.EvaluatePaths.default(root), layout.RegisterPaths.default(root)]
    for variant in load_params(REPO_ROOT / "params.yaml").ablation.variants:
        seed = layout.TrainPaths.ablation(root, variant, 0)
        bound.append(seed)
        known.update({seed.checkpoints.parent, seed.artifacts.parent, seed.reports.parent})  # a variant's seeds
        known.add(layout.ablation_metrics_file(variant, 0))
    for paths in bound:
        known.update(value for value in vars(paths).values() if isinstance(value, Path) and value != root)
    return known


@pytest.mark.parametrize("name", sorted(_dvc_stages()))
def test_every_path_in_dvc_yaml_comes_from_the_layout(name: str):
    known = _layout_paths()
    stage = _dvc_stages()[name]
    folders = known - ROOTS  # a file of reports/train_parser/ is fine; any file of reports/ is not
    strays = [str(p) for p in _entries(stage, "deps", "outs", "metrics", "plots")
              if not (p in known or p.parent in folders)]
    assert not strays, f"dvc.yaml stage {name!r} names paths fashion_edit/layout.py does not: {strays}"


@pytest.mark.parametrize("stage, name", sorted(TRAINING_STAGES.items()))
def test_each_training_stage_declares_what_it_writes(stage: str, name: str):
    paths = layout.TrainPaths.default(Path("."), name)
    declared = _entries(_dvc_stages()[stage], "outs", "metrics", "plots")
    for written in (paths.checkpoints, paths.artifacts, paths.reports):
        assert any(d == written or written in d.parents for d in declared), f"{stage} writes {written} undeclared"


def test_each_ablation_variant_declares_what_it_writes():
    for name, stage in _dvc_stages().items():
        if not name.startswith("ablations@"):
            continue
        paths = layout.TrainPaths.ablation(Path("."), name.split("@")[1], 0)
        declared = _entries(stage, "outs", "metrics", "plots")
        for written in (paths.checkpoints, paths.artifacts, paths.reports):
            assert any(written == d or d in written.parents for d in declared), f"{name} writes {written} undeclared"
