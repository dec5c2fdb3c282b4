"""DVC stage `register`: log and register `parser`, `inpainter` and `editor` in MLflow, gate, promote.

    python -m stages.register [--params params.yaml]

After `evaluate`: writes the editor bundle artifacts/editor/ (usable offline with
`fashion-edit edit --checkpoint artifacts/editor ...`), logs the three models in one MLflow run,
registers each as a new version with alias `candidate` (tags: the numbers of reports/evaluate.json,
i.e. each headline metric and its standard error, git commit, DVC lock/params hashes, pipeline run),
and moves `champion` to the new versions when the editor passes the noise-aware gate against the
champion (fashion_edit/tracking/registry.py; params `registry.noise_z`), or when there is no champion.
Writes reports/register.json (versions, promoted, reason).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_edit.config import Params
from fashion_edit.layout import RegisterPaths
from fashion_edit.stage import run_stage
from fashion_edit.tracking.register import register_models


def register(params: Params, root: Path, args: argparse.Namespace) -> str:
    report = register_models(params, RegisterPaths.default(root))
    versions = ", ".join(f"{name} v{number}" for name, number in report["versions"].items())
    verdict = "promoted to champion" if report["promoted"] else "kept as candidate"
    return f"{versions} {verdict}: {report['reason']}"


def main(argv: list[str] | None = None) -> int:
    return run_stage("register", __doc__, register, argv, also_expected=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
