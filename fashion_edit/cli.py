"""``fashion-edit`` command line: edit one photo with a registered or saved editor.

    fashion-edit edit --image in.png --mask m.png [--sketch s.png] [--colour c.png] --out out.png \
        [--model models:/editor@champion | --checkpoint artifacts/editor] [--seed 0]
    python -m fashion_edit.cli edit ...            # the same without the console script

Mask: white (>= 128) = the region to repaint. Sketch: light lines on dark. Colour: strokes on black,
or on a transparent RGBA canvas. All inputs must have the image's size (``fashion_edit.editor``).
The model is the MLflow registry's ``editor@champion`` by default (tracking URI: ``--tracking-uri``,
else params ``mlflow.tracking_uri`` / ``$MLFLOW_TRACKING_URI`` / ``sqlite:///mlflow.db`` next to
``--params``), or an editor folder written by the ``register`` stage (``--checkpoint artifacts/editor``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from fashion_edit.config import MlflowParams, ParamsError, load_params
from fashion_edit.editor import EditInputError, Editor, EditorModelError
from fashion_edit.tracking import resolve_tracking_uri

DEFAULT_MODEL = "models:/editor@champion"
SUPPORTED_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
EditFunction = Callable[..., np.ndarray]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fashion-edit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    edit = commands.add_parser("edit", help="repaint the masked region of a photo",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    edit.add_argument("--image", type=Path, required=True, help="photo to edit (PNG/JPEG)")
    edit.add_argument("--mask", type=Path, required=True, help="hole mask, white = repaint, same size as the image")
    edit.add_argument("--sketch", type=Path, help="sketch lines inside the hole (light on dark)")
    edit.add_argument("--colour", "--color", dest="colour", type=Path, help="colour strokes inside the hole")
    edit.add_argument("--out", type=Path, required=True, help="where to write the edited image")
    source = edit.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    source.add_argument("--checkpoint", type=Path, help="editor folder written by the register stage")
    edit.add_argument("--tracking-uri", help="MLflow tracking URI for --model (default: see above)")
    edit.add_argument("--params", type=Path, default=Path("params.yaml"),
                      help="params file naming the tracking store, if present (default params.yaml)")
    edit.add_argument("--seed", type=int, default=0, help="seed of the noise inside the hole (default 0)")
    return parser.parse_args(argv)


def tracking_uri(explicit: str | None, params_path: Path) -> str:
    """Where ``--model`` is looked up: explicit, else as the pipeline's stages resolve it."""
    if explicit:
        return explicit
    settings = load_params(params_path).mlflow if params_path.is_file() else MlflowParams()
    return resolve_tracking_uri(settings, params_path.resolve().parent)


def _require_sqlite_store(uri: str) -> None:
    """MLflow would silently create an empty database for a missing SQLite file; say so instead."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise EditorModelError(f"no MLflow store at {path} (tracking URI {uri}): run the pipeline "
                                   "(`dvc repro`), pass --tracking-uri, or use --checkpoint artifacts/editor")


def registered_editor(model_uri: str, uri: str) -> EditFunction:
    """The pyfunc at ``model_uri`` as an edit function; EditorModelError if it cannot be loaded."""
    from mlflow.exceptions import MlflowException

    from fashion_edit.editor_model import load_registered_model

    _require_sqlite_store(uri)
    try:
        model = load_registered_model(model_uri, uri)
    except (MlflowException, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise EditorModelError(f"cannot load model {model_uri} from {uri}: {message}. Register one with "
                               "`dvc repro register`, or pass --checkpoint artifacts/editor") from None

    def edit(*, seed: int, **inputs: Any) -> np.ndarray:
        return model.predict({k: v for k, v in inputs.items() if v is not None}, params={"seed": seed})

    return edit


def load_edit_function(args: argparse.Namespace) -> EditFunction:
    if args.checkpoint is not None:
        return Editor.load(args.checkpoint).edit
    return registered_editor(args.model or DEFAULT_MODEL, tracking_uri(args.tracking_uri, args.params))


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
    edit = load_edit_function(args)
    started = time.perf_counter()
    edited = edit(image=args.image, mask=args.mask, sketch=args.sketch, colour=args.colour, seed=args.seed)
    elapsed_ms = (time.perf_counter() - started) * 1000
    write_image(edited, args.out)
    return f"wrote {args.out} ({edited.shape[1]}x{edited.shape[0]}) in {elapsed_ms:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run_edit(args))
    except (EditInputError, EditorModelError, ParamsError) as exc:
        print(f"fashion-edit: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
