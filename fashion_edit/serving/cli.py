"""``fashion-edit`` command line: edit one photo with a registered or saved editor; compare this run
with the registry's champion.

    fashion-edit edit --image in.png --mask m.png [--sketch s.png] [--colour c.png] --out out.png \
        [--model models:/editor@champion | --checkpoint artifacts/editor] [--seed 0]
    fashion-edit edit --image in.png --attribute sleeve_length=+0.4 [--attribute hem_length=-0.2] --out out.png
    fashion-edit edit --image in.png --to trousers --out out.png      # the skirt becomes trousers (or --to skirt)
    fashion-edit edit --image in.png --mask m.png --samples 4 --out out.png   # out.png, out_1.png ... out_3.png
    fashion-edit compare [--model editor] [--params params.yaml] [--tracking-uri URI]
    python -m fashion_edit.serving.cli edit ...            # the same without the console script
    fashion-edit ui [--port 5000]                  # MLflow UI of the pipeline's runs (`make ui`)
    fashion-edit serve [--port 8050] [--model URI | --checkpoint DIR]   # the editing web page (`make edit`)

Mask: white (>= 128) = the region to repaint. Sketch: light lines on dark. Colour: strokes on black,
or on a transparent RGBA canvas. All inputs must have the image's size (``fashion_edit.serving.editor``).
``--attribute NAME=STRENGTH`` (repeatable) changes a garment attribute the parser learned (``parser.attributes``:
sleeve_length, hem_length, width) by that much; it erases its own region, so ``--mask`` becomes optional
(``fashion_edit.serving.attribute_edit``). ``--to trousers`` / ``--to skirt`` swaps the photo's lower garment
(a skirt, or trousers/shorts) to that category, keeping its texture; it also erases its own region
(``fashion_edit.serving.category_edit``). ``--samples N`` writes N completions of the edit, seeds ``--seed`` ..
``--seed + N - 1`` (a stochastic model draws each from its priors): ``--out`` and then ``<stem>_1<suffix>`` ...
``<stem>_<N-1><suffix>`` beside it; without it (N = 1) the one edit is the priors' mean.
The model is the MLflow registry's ``editor@champion`` by default (tracking URI: ``--tracking-uri``,
else params ``mlflow.tracking_uri`` / ``$MLFLOW_TRACKING_URI`` / ``sqlite:///mlflow.db`` next to
``--params``), or an editor folder written by the ``register`` stage (``--checkpoint artifacts/editor``).

``serve`` starts the editing web page on 127.0.0.1 (``fashion_edit.serving.webapp``) over the model that ``edit``
would load, and keeps serving when there is none (the page says how to get one).

``compare`` prints each headline metric of this checkout's evaluation (``reports/evaluate.json``,
the numbers behind ``reports/metrics/evaluate/model.json``, with their standard errors) beside the
champion's version tags: the difference, the noise z·σ and the promotion gate's verdict
(``fashion_edit.tracking.registry.promotion_decision``, the rule the ``register`` stage applies).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fashion_edit.config import MlflowParams, load_params
from fashion_edit.data.categories import SWAP_CATEGORIES
from fashion_edit.errors import FashionEditError
from fashion_edit.evaluation.headline import numeric_metrics
from fashion_edit.layout import EVALUATE_DETAIL, PREPARED
from fashion_edit.serving.attribute_edit import parse_attribute_requests
from fashion_edit.serving.editor import EditInputError, Editor, EditorModelError
from fashion_edit.tracking.runs import UI_ENV, experiment_runs_url, resolve_tracking_uri, ui_server_command

if TYPE_CHECKING:  # mlflow takes seconds to import: only `compare` loads it
    from mlflow.entities.model_registry import ModelVersion

    from fashion_edit.tracking.registry import Decision

DEFAULT_MODEL = "models:/editor@champion"
DEFAULT_SERVE_PORT = 8050
SUPPORTED_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
COMPARE_HEADER = ("metric", "this run", "champion", "Δ", "z·σ", "verdict")


class CompareError(FashionEditError, RuntimeError):
    """``compare`` has nothing to compare (no metrics, no champion); says what to run."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fashion-edit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    edit = commands.add_parser("edit", help="repaint the masked region of a photo",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    edit.add_argument("--image", type=Path, required=True, help="photo to edit (PNG/JPEG)")
    edit.add_argument("--mask", type=Path, help="hole mask, white = repaint, same size as the image (required "
                      "unless --attribute or --to is given)")
    edit.add_argument("--sketch", type=Path, help="sketch lines inside the hole (light on dark)")
    edit.add_argument("--colour", "--color", dest="colour", type=Path, help="colour strokes inside the hole")
    edit.add_argument("--out", type=Path, required=True, help="where to write the edited image")
    add_model_options(edit)
    edit.add_argument("--seed", type=int, default=0, help="seed of the noise inside the hole (default 0)")
    edit.add_argument("--attribute", action="append", default=[], metavar="NAME=STRENGTH",
                      help="change a garment attribute, e.g. sleeve_length=+0.4 (repeatable)")
    edit.add_argument("--to", dest="to_category", choices=list(SWAP_CATEGORIES), metavar="CATEGORY",
                      help=f"swap the lower garment to this category ({', '.join(SWAP_CATEGORIES)}), keeping its "
                           "texture")
    edit.add_argument("--samples", type=positive_int, default=1, metavar="N",
                      help="write N completions (seeds --seed .. --seed+N-1): --out, then <stem>_1 ... beside it")
    compare = commands.add_parser("compare", help="this run's headline metrics against the registry's champion",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("--model", help="registered model whose champion to compare with (default: the "
                                         "gate's model, editor)")
    compare.add_argument("--params", type=Path, default=Path("params.yaml"),
                         help="params file of the run (default params.yaml; its folder holds reports/)")
    compare.add_argument("--tracking-uri", help="MLflow tracking URI (default: as the pipeline's stages resolve it)")
    serve = commands.add_parser("serve", help="a local web page to edit photos with the model (127.0.0.1)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--port", type=int, default=DEFAULT_SERVE_PORT,
                       help=f"port on 127.0.0.1 (default {DEFAULT_SERVE_PORT})")
    add_model_options(serve)
    serve.add_argument("--data", type=Path, default=PREPARED,
                       help=f"prepared data whose test split gives example photos (default {PREPARED})")
    ui = commands.add_parser("ui", help="the MLflow UI of the pipeline's runs and models (one light worker)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file naming the tracking store")
    return parser.parse_args(argv)


def add_model_options(command: argparse.ArgumentParser) -> None:
    """--model / --checkpoint and where --model is looked up: the same for ``edit`` and ``serve``."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    source.add_argument("--checkpoint", type=Path, help="editor folder written by the register stage")
    command.add_argument("--tracking-uri", help="MLflow tracking URI for --model (default: see above)")
    command.add_argument("--params", type=Path, default=Path("params.yaml"),
                         help="params file naming the tracking store, if present (default params.yaml)")


def tracking_uri(explicit: str | None, params_path: Path) -> str:
    """Where ``--model`` is looked up: explicit, else as the pipeline's stages resolve it."""
    if explicit:
        return explicit
    settings = load_params(params_path).mlflow if params_path.is_file() else MlflowParams()
    return resolve_tracking_uri(settings, params_path.resolve().parent)


def _missing_sqlite_store(uri: str) -> Path | None:
    """The SQLite file ``uri`` names when it does not exist (MLflow would silently create an empty one)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            return path
    return None


def _require_sqlite_store(uri: str) -> None:
    path = _missing_sqlite_store(uri)
    if path is not None:
        raise EditorModelError(f"no MLflow store at {path} (tracking URI {uri}): run the pipeline "
                               "(`dvc repro`), pass --tracking-uri, or use --checkpoint artifacts/editor")


@dataclass(frozen=True)
class LoadedEditor:
    """An editor and what it is: the registered model version (name, version, alias, eval metrics from its
    tags) or the folder it was loaded from. ``edit`` and ``serve`` load it the same way."""

    editor: Editor
    source: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if self.version is None:
            return f"editor from {self.source}"
        alias = f" @{self.alias}" if self.alias else ""
        return f"{self.name} v{self.version}{alias} ({self.source})"


def _check_tracking_store(uri: str) -> None:
    """Fail fast with the fix when the store cannot hold the model: a missing SQLite file, a server that does not
    answer (MLflow's client would retry for minutes)."""
    from fashion_edit.tracking.runs import TrackingError, probe_tracking_server

    _require_sqlite_store(uri)
    try:
        probe_tracking_server(uri)
    except TrackingError as exc:
        raise EditorModelError(f"{exc} Or use --checkpoint artifacts/editor.") from None


def registered_editor(model_uri: str, uri: str) -> LoadedEditor:
    """The editor inside the pyfunc at ``model_uri`` and its version; EditorModelError if it cannot be loaded."""
    from mlflow.exceptions import MlflowException

    from fashion_edit.serving.pyfunc import load_registered_model, registered_version
    from fashion_edit.tracking.registry import version_metrics

    _check_tracking_store(uri)
    try:
        version = registered_version(model_uri, uri)
        model = load_registered_model(model_uri, uri)
    except (MlflowException, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise EditorModelError(f"cannot load model {model_uri} from {uri}: {message}. Register one with "
                               "`make run` (or `dvc repro register`), or pass --checkpoint artifacts/editor") from None
    editor = model.unwrap_python_model().editor
    if version is None:  # an artifact URI, not a registry name
        return LoadedEditor(editor, model_uri)
    alias = model_uri.rpartition("@")[2] if "@" in model_uri else None
    return LoadedEditor(editor, f"{model_uri} in {uri}", version.name, str(version.version), alias,
                        version_metrics(version))


def load_editor(model: str | None, checkpoint: Path | None, tracking_uri_arg: str | None,
                params: Path) -> LoadedEditor:
    """The editor of ``--checkpoint`` or ``--model`` (default :data:`DEFAULT_MODEL`), as ``edit`` and ``serve`` take it."""
    if checkpoint is not None:
        return LoadedEditor(Editor.load(checkpoint), str(checkpoint))
    return registered_editor(model or DEFAULT_MODEL, tracking_uri(tracking_uri_arg, params))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def sample_paths(out: Path, count: int) -> list[Path]:
    """Where ``--samples count`` writes: ``out`` itself, then ``<stem>_1<suffix>`` ... beside it."""
    return [out] + [out.with_name(f"{out.stem}_{k}{out.suffix}") for k in range(1, count)]


def write_image(picture: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise EditInputError(f"--out {path}: could not write the image there")


def run_edit(args: argparse.Namespace) -> str:
    """Do one edit; returns the line to print."""
    if args.out.suffix.lower() not in SUPPORTED_OUTPUTS:  # fail before loading a model
        raise EditInputError(f"--out {args.out}: unsupported image type {args.out.suffix!r}; "
                             f"use one of {SUPPORTED_OUTPUTS}")
    for name in ("image", "mask", "sketch", "colour"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise EditInputError(f"--{name} {path}: file not found")
    attributes = parse_attribute_requests(args.attribute)
    if args.mask is None and not attributes and args.to_category is None:
        raise EditInputError("give --mask (the region to repaint), at least one --attribute NAME=STRENGTH, or "
                             f"--to CATEGORY ({', '.join(SWAP_CATEGORIES)})")
    editor = load_editor(args.model, args.checkpoint, args.tracking_uri, args.params).editor
    pictures = {"image": args.image, "mask": args.mask, "sketch": args.sketch, "colour": args.colour}
    started = time.perf_counter()
    if args.samples == 1:
        edited = [editor.edit(**pictures, seed=args.seed, attributes=attributes, to_category=args.to_category)]
    else:
        edited = [result.image for result in editor.samples(**pictures, seed=args.seed, attributes=attributes,
                                                             to_category=args.to_category, count=args.samples)]
    elapsed_ms = (time.perf_counter() - started) * 1000
    paths = sample_paths(args.out, len(edited))
    for picture, path in zip(edited, paths):
        write_image(picture, path)
    size = f"{edited[0].shape[1]}x{edited[0].shape[0]}"
    written = str(args.out) if len(paths) == 1 else f"{len(paths)} files {paths[0]} ... {paths[-1].name}"
    return f"wrote {written} ({size}) in {elapsed_ms:.0f} ms"


# ----------------------------------------------------------------------------- compare
def champion_version(model: str, uri: str) -> "ModelVersion":
    """The champion version of ``model`` in the store at ``uri``; CompareError when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from fashion_edit.tracking import registry

    missing = _missing_sqlite_store(uri)
    if missing is not None:
        raise CompareError(f"no MLflow store at {missing} yet, so no champion: run `dvc repro register` "
                           "(or pass --tracking-uri)")
    try:
        champion = registry.version_by_alias(MlflowClient(tracking_uri=uri, registry_uri=uri), model,
                                             registry.CHAMPION)
    except MlflowException as exc:
        raise CompareError(f"cannot read model {model!r} from {uri}: {exc.message}") from None
    if champion is None:
        raise CompareError(f"model {model!r} has no champion in {uri} yet: run `dvc repro register` "
                           "(the first registered version becomes champion)")
    return champion


def comparison_table(decision: "Decision") -> list[str]:
    """One aligned row per compared headline metric, under :data:`COMPARE_HEADER`."""
    rows = [COMPARE_HEADER] + [(c.key, *c.cells(), c.verdict) for c in decision.comparisons]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COMPARE_HEADER))]
    return ["  ".join(cell.ljust(w) if i in (0, 5) else cell.rjust(w) for i, (cell, w) in
                      enumerate(zip(row, widths))).rstrip() for row in rows]


def run_compare(args: argparse.Namespace) -> str:
    """This run's evaluation against the champion's tags, judged by the promotion gate; the text to print."""
    from fashion_edit.tracking import registry

    params = load_params(args.params)
    detail = args.params.resolve().parent / EVALUATE_DETAIL
    try:
        this_run = numeric_metrics(detail)
    except FileNotFoundError:
        raise CompareError(f"no evaluation metrics at {detail} yet: run `dvc repro evaluate`") from None
    model = args.model or registry.GATE_MODEL
    uri = tracking_uri(args.tracking_uri, args.params)
    champion = champion_version(model, uri)
    try:
        decision = registry.promotion_decision(this_run, registry.version_metrics(champion), params.registry)
    except registry.RegistryError as exc:
        raise CompareError(f"{exc} (re-run `dvc repro evaluate`)") from None
    title = f"this run ({detail}) vs {model} v{champion.version} @{registry.CHAMPION} ({uri})"
    verdict = "would be promoted" if decision.promote else "would stay a challenger"
    if not decision.comparisons:  # decided before comparing (non-finite metric, no SEs, ...)
        return "\n".join([title, f"gate: {verdict}: {decision.reason}"])
    return "\n".join([title, *comparison_table(decision), f"gate: {verdict}: {decision.rule}"])


# ----------------------------------------------------------------------------- serve
def run_serve(args: argparse.Namespace) -> None:
    """Load the model (or say why not, and serve the page anyway: it says how to get one), then serve the page."""
    from fashion_edit.serving.webapp import EditorService, Examples, check_port_free, serve

    check_port_free(args.port)  # before loading a model for seconds
    service = EditorService(lambda: load_editor(args.model, args.checkpoint, args.tracking_uri, args.params))
    examples = Examples.read(args.data)
    served = service.loaded.describe() if service.loaded else f"no model: {service.error}"
    print(f"fashion-edit serve: {served}", flush=True)
    if examples.note:
        print(f"fashion-edit serve: {examples.note}", flush=True)
    print(f"fashion-edit serve: http://127.0.0.1:{args.port}/  (Ctrl-C stops it)", flush=True)
    serve(service, examples, args.port)


# ----------------------------------------------------------------------------- ui
def run_ui(args: argparse.Namespace) -> None:
    """Print the link to the experiment's runs, then become the MLflow server (Ctrl-C stops it)."""
    settings = load_params(args.params).mlflow if args.params.is_file() else MlflowParams()
    uri = tracking_uri(None, args.params)
    url = experiment_runs_url(uri, settings.experiment, f"http://{args.host}:{args.port}")
    print(f"MLflow UI of {uri}: {url}  (Ctrl-C stops it)", flush=True)
    os.execve(sys.executable, ui_server_command(uri, args.host, args.port), {**os.environ, **UI_ENV})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "ui":
            run_ui(args)  # does not return
        if args.command == "serve":
            run_serve(args)  # until Ctrl-C
            return 0
        print(run_compare(args) if args.command == "compare" else run_edit(args))
    except FashionEditError as exc:
        print(f"fashion-edit: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
