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

from fashion_edit.config import ParamsError, load_params
from fashion_edit.layout import RegisterPaths
from fashion_edit.serving.editor import EditorModelError
from fashion_edit.stage_args import stage_parser
from fashion_edit.tracking.register import register_models
from fashion_edit.tracking.registry import RegistryError
from fashion_edit.tracking.runs import TrackingError
from fashion_edit.training.segmenter import SegmenterError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        report = register_models(params, RegisterPaths.default(args.params.resolve().parent))
    except (ParamsError, EditorModelError, SegmenterError, RegistryError, TrackingError, FileNotFoundError) as exc:
        print(f"register: error: {exc}", file=sys.stderr)
        return 1
    versions = ", ".join(f"{name} v{number}" for name, number in report["versions"].items())
    verdict = "promoted to champion" if report["promoted"] else "kept as candidate"
    print(f"register: {versions} {verdict}: {report['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
