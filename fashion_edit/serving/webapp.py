"""``fashion-edit serve``: a local web page to edit photos with the registered (or a saved) editor.

The page (``static/editor.html`` + ``editor.js``, plain HTML and canvas, no build step) paints the hole,
sketch lines and colour strokes in the browser and sends them, with the photo, as PNG data URIs: the
same files ``fashion-edit edit`` reads, which the page offers for download so an edit can be replayed
from the command line. This module is the JSON API behind it (FastAPI, served by uvicorn on 127.0.0.1):

    GET  /api/status          the model served (name, version, alias, metrics, the attributes it edits and
                              their strength range, the garment categories it swaps to) or why none is loaded
    POST /api/reload          try loading the model again (after `make run`, or a tracking server restart)
    GET  /api/examples        the prepared test split's photos ({"examples": [...], "note": ...})
    GET  /api/examples/{i}    one of them as PNG
    POST /api/edit            {image, mask, sketch?, colour?, attributes?, to_category?, seed} -> {image, parsing,
                              hole, notice, ...}; attributes: {name: strength}; to_category: "trousers" or
                              "skirt" (swap the lower garment); with either the mask may be omitted

A bad request is HTTP 400 with ``{"error": ...}``; no model is HTTP 503 saying how to get one; the
server keeps serving either way. Pictures are decoded by :mod:`fashion_edit.serving.pyfunc` (bytes
only, size caps). Edits run one at a time: the networks use every core already.
"""
from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, StrictFloat

from fashion_edit.data.letterbox import Letterbox
from fashion_edit.data.store import StoreError, open_split
from fashion_edit.errors import FashionEditError
from fashion_edit.serving.editor import EditInputError, EditInputs, EditResult
from fashion_edit.serving.category_edit import known_categories
from fashion_edit.serving.pyfunc import (MAX_SIDE, PICTURE_KEYS, downscaled, edit_inputs, png_bytes, request_category,
                                         request_picture, run_edit)
from fashion_edit.visualize import colourise_parsing

STATIC = files("fashion_edit.serving") / "static"
MAX_BODY_BYTES = 64 * 1024 * 1024  # four PNGs of a 2048 px photo fit easily
EXAMPLES_LIMIT = 16
HOLE_RGBA = (255, 0, 255, 140)  # the hole toggle: translucent magenta, the colour of the evaluation grids
NO_MODEL_HELP = ("Get a model with `make run` (trains and registers editor@champion), or restart with "
                 "`fashion-edit serve --checkpoint artifacts/editor`; then press Retry.")


class EditBody(BaseModel):
    """One edit as the page sends it: PNG/JPEG data URIs (or base64 text), attribute strengths (the page sends the
    non-zero ones) and a category to swap the lower garment to (absent: keep it); with either the mask may be empty
    or absent."""

    image: str
    mask: str | None = None
    sketch: str | None = None
    colour: str | None = None
    attributes: dict[str, StrictFloat] = {}  # strict: `true` or "0.3" is no strength
    to_category: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Examples:
    """The prepared test split's photos for the page's strip, or why there are none."""

    images: list[np.ndarray]
    stems: list[str]
    note: str | None

    @classmethod
    def read(cls, prepared: Path, limit: int = EXAMPLES_LIMIT) -> "Examples":
        split = prepared / "test"
        if not split.is_dir():
            return cls([], [], f"no example photos: {split} does not exist (`make run` prepares it); upload a photo")
        try:
            opened = open_split(split)
        except StoreError as exc:
            return cls([], [], f"no example photos: {exc}")
        count = min(limit, len(opened))
        return cls([np.array(opened.images[i]) for i in range(count)], opened.stems[:count],
                   None if count else f"no example photos: {split} is empty; upload a photo")


class EditorService:
    """The loaded editor, or the reason none is loaded, and the edits the page asks for."""

    def __init__(self, loader: Callable[[], Any]) -> None:
        self._loader = loader
        self._lock = threading.Lock()  # one edit at a time: the networks use every core already
        self.loaded: Any = None
        self.error: str | None = None
        self.reload()

    def reload(self) -> None:
        """Load the model (again); on failure keep serving and remember why."""
        try:
            self.loaded, self.error = self._loader(), None
        except FashionEditError as exc:
            self.loaded, self.error = None, f"{exc}. {NO_MODEL_HELP}"

    def status(self) -> dict[str, Any]:
        if self.loaded is None:
            return {"ready": False, "error": self.error, "max_side": MAX_SIDE}
        model = self.loaded
        parser_net = model.editor.networks.parser_net  # the page shows a slider per attribute it learned
        return {"ready": True, "description": model.describe(), "name": model.name, "version": model.version,
                "alias": model.alias, "metrics": model.metrics, "source": model.source,
                "replay": replay_flag(model), "size": list(model.editor.size), "max_side": MAX_SIDE,
                "attributes": list(parser_net.attributes), "max_strength": parser_net.max_strength,
                "categories": known_categories(parser_net)}

    def edit(self, body: EditBody) -> dict[str, Any]:
        """The edit of one request: result, parsing and hole as PNG data URIs, any downscale notice, timing."""
        if self.loaded is None:
            raise ModelUnavailable(self.error or NO_MODEL_HELP)
        if body.mask is None and not body.attributes and not body.to_category:
            raise EditInputError("an edit needs a mask (the region to repaint), attribute strengths or a category "
                                 "to swap the lower garment to")
        pictures = {name: request_picture(value, name) if value is not None else None
                    for name, value in body.model_dump(include=set(PICTURE_KEYS)).items()}
        pictures, notice = downscaled(pictures)
        inputs, strengths, category = edit_inputs(self.loaded.editor, pictures, body.attributes,
                                                  request_category(body.to_category))
        with self._lock:
            started = time.perf_counter()
            [result] = run_edit(self.loaded.editor, inputs, strengths, body.seed, category)
            elapsed_ms = (time.perf_counter() - started) * 1000
        return {"image": data_uri(png_bytes(result.image)),
                "parsing": data_uri(png_bytes(parsing_at_input_size(result, inputs, self.loaded.editor.size))),
                # what was repainted: the painted hole plus the regions the attribute edits and the swap erased
                "hole": data_uri(png_bytes(hole_picture(result.hole))), "notice": notice, "seed": body.seed,
                "networks_ms": round(elapsed_ms, 1), "width": inputs.image.shape[1], "height": inputs.image.shape[0]}


class ModelUnavailable(FashionEditError, RuntimeError):
    """No model is loaded; the message says how to get one."""


def replay_flag(model: Any) -> str:
    """The ``fashion-edit edit`` option that loads the model this page serves."""
    if model.version is None:
        return f"--checkpoint {model.source}"
    return f"--model models:/{model.name}@{model.alias}" if model.alias else f"--model models:/{model.name}/{model.version}"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def parsing_at_input_size(result: EditResult, inputs: EditInputs, size: tuple[int, int]) -> np.ndarray:
    """The completed parsing, colourised, with the letterbox's padding cropped, at the photo's size (nearest)."""
    box = Letterbox(inputs.image.shape[:2], size)
    (height, width), (top, left) = box.inner, box.offset
    labels = result.parsing[top:top + height, left:left + width]
    labels = cv2.resize(labels, inputs.image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return colourise_parsing(labels)


def hole_picture(hole: np.ndarray) -> np.ndarray:
    """The hole as translucent magenta on transparent (RGBA, to lay over the result)."""
    picture = np.zeros((*hole.shape, 4), np.uint8)
    picture[hole] = HOLE_RGBA
    return picture


def create_app(service: EditorService, examples: Examples) -> FastAPI:
    """The page and its API over ``service``."""
    app = FastAPI(title="fashion-edit", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next: Callable) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error(413, f"request of {int(length):,} bytes is larger than the {MAX_BODY_BYTES:,} this page "
                              f"accepts; photos longer than {MAX_SIDE} px are downscaled by the page anyway")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return error(400, f"bad edit request ({problems}): send JSON with image and mask as PNG data URIs, "
                          "attributes as {name: strength} and to_category as a name")

    @app.exception_handler(EditInputError)
    async def bad_input(request: Request, exc: EditInputError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(ModelUnavailable)
    async def no_model(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return error(503, str(exc))

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "editor.html"), headers={"Cache-Control": "no-store"})

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return service.status()

    @app.post("/api/reload")
    def reload() -> dict[str, Any]:
        service.reload()
        return service.status()

    @app.get("/api/examples")
    def example_list() -> dict[str, Any]:
        return {"examples": [{"index": i, "stem": stem} for i, stem in enumerate(examples.stems)],
                "note": examples.note}

    @app.get("/api/examples/{index}")
    def example(index: int) -> Response:
        if not 0 <= index < len(examples.images):
            return error(404, f"no example {index}: there are {len(examples.images)}")
        return Response(png_bytes(examples.images[index]), media_type="image/png")

    @app.post("/api/edit")
    def edit(body: EditBody) -> dict[str, Any]:
        return service.edit(body)

    return app


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class PortInUse(FashionEditError, OSError):
    """The page's port is taken; says which and what to pass instead."""


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """PortInUse naming the port when something listens there (uvicorn would log a bare errno and exit)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"port {port} on {host} is in use ({exc.strerror}): stop what listens there or pass "
                            f"another --port") from None


def serve(service: EditorService, examples: Examples, port: int, host: str = "127.0.0.1") -> None:
    """Run the page until Ctrl-C."""
    import uvicorn

    check_port_free(port, host)
    uvicorn.run(create_app(service, examples), host=host, port=port, log_level="warning")
