"""dvc.yaml cannot drift from the code: every project file a stage imports is one of its deps, and every
params section its code reads is one of its params (else a change there would not rerun the stage, and
`dvc status` would call stale results up to date)."""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

PROJECT_PACKAGES = ("fashion_edit", "models", "stages")
# imported by a stage but cannot change what it computes
NOT_DEPS = {
    "fashion_edit/stage.py": "parses the command line and prints the outcome",
    "fashion_edit/errors.py": "the base class of the errors a stage prints",
}
STAGE_MODULE = re.compile(r"-m (stages\.\w+)")


def _stages() -> dict[str, dict]:
    """name -> stage definition (a foreach stage's `do` block under the stage's name)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST) -> set[str]:
    """Project modules imported anywhere in the file (function-level imports too: they run when called)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {m for m in found if m.split(".")[0] in PROJECT_PACKAGES}


@lru_cache(maxsize=None)
def _parsed(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def import_closure(module: str) -> set[Path]:
    """Files of ``module`` and of every project module it imports, transitively, with their packages' __init__."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            path = _module_file(".".join(parts[:depth]))
            if path is not None and path not in seen:
                seen.add(path)
                pending.extend(_imported_modules(_parsed(path)))
    return seen


def trivial_init(path: Path) -> bool:
    """A package ``__init__`` holding at most a docstring: importing it cannot change a result."""
    if path.name != "__init__.py":
        return False
    body = _parsed(path).body
    return len(body) == 0 or (len(body) == 1 and isinstance(body[0], ast.Expr)
                              and isinstance(body[0].value, ast.Constant))


def _covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO_ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


def _declared_sections(stage: dict) -> set[str]:
    declared: set[str] = set()
    for entry in stage.get("params", []):
        names = entry if isinstance(entry, str) else next(iter(entry.values()))
        declared.update([names] if isinstance(names, str) else names)
    return {name.split(".")[0] for name in declared}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_imported_project_file_is_a_dep_of_the_stage(name: str):
    stage = _stages()[name]
    module = STAGE_MODULE.search(stage["cmd"]).group(1)
    files = import_closure(module)
    missing = sorted(str(p.relative_to(REPO_ROOT)) for p in files if not trivial_init(p)
                     and not _covered(p, stage.get("deps", [])) and str(p.relative_to(REPO_ROOT)) not in NOT_DEPS)
    assert not missing, f"dvc.yaml stage {name!r} imports these files but does not list them (or a folder) under deps"


def _sections_in_code() -> dict[str, tuple[str, ...]]:
    """The params sections each tracked stage hashes into its MLflow run (what its code says it reads)."""
    from fashion_edit.evaluation import attribute_sweep, category_swap, evaluate
    from fashion_edit.tracking import register
    from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
    from fashion_edit.training.parser_trainer import PARSER_SPEC
    from fashion_edit.training.segmenter_trainer import SEGMENTER_SPEC

    return {"train_parser": PARSER_SPEC.sections, "train_inpainter": INPAINTER_SPEC.sections,
            "train_segmenter": SEGMENTER_SPEC.sections, "evaluate": evaluate.SECTIONS, "register": register.SECTIONS,
            "attribute_sweep": attribute_sweep.SECTIONS, "category_swap": category_swap.SECTIONS}


@pytest.mark.parametrize("name", sorted(_sections_in_code()))
def test_the_params_sections_in_dvc_yaml_are_the_ones_the_code_reads(name: str):
    declared = _declared_sections(_stages()[name]) - {"mlflow"}  # where runs are logged never changes results
    assert declared == set(_sections_in_code()[name]) - {"mlflow"}, f"dvc.yaml stage {name!r}"


def test_the_closure_follows_imports_inside_functions_and_packages():
    files = {str(p.relative_to(REPO_ROOT)) for p in import_closure("stages.register")}
    assert {"stages/register.py", "fashion_edit/tracking/register.py", "fashion_edit/tracking/__init__.py",
            "fashion_edit/serving/pyfunc.py", "models/__init__.py"} <= files
    assert "flows/retrain.py" not in files
