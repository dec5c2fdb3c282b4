"""The registered models: ``editor`` (an MLflow pyfunc around :class:`fashion_edit.serving.editor.Editor`),
``parser`` and ``inpainter`` (pytorch flavour): how each is saved and loaded.

    model = load_registered_model("models:/editor@champion", tracking_uri)   # or mlflow.pyfunc.load_model
    [edit] = model.predict({"image": base64_png, "mask": base64_mask}, params={"seed": 3})
    [edit] = model.predict([{"image": base64_png, "attributes": {"sleeve_length": 0.4}}])  # no mask needed
    [edit] = model.predict([{"image": base64_png, "to_category": "trousers"}])  # the skirt becomes trousers
    [edit] = model.predict([{"image": base64_png, "mask": base64_mask, "samples": 3}])  # edit["samples"]: 3 images
    edit["image"]    # the edited photo as base64 PNG text; edit["notice"]: None, or why it was downscaled
    edits = model.predict(pandas.DataFrame({"image": [...], "mask": [...]}), params={"output": "array"})

Input: one edit as a mapping with ``image`` and ``mask`` and optionally ``sketch``, ``colour``,
``attributes``, ``to_category`` and ``samples``, or a list of such mappings / a DataFrame with those columns
(missing optional cells: None or NaN). ``to_category`` (text: ``trousers`` or ``skirt``; empty = none) swaps the
photo's lower garment to that category, keeping its texture (:mod:`fashion_edit.serving.category_edit`); like an
attribute edit it erases its own region, so ``mask`` may be omitted. ``samples`` (a whole number, 1 to
:data:`MAX_SAMPLES`, default 1) asks for that many completions of the edit, seeds ``seed`` .. ``seed + samples -
1`` (a stochastic model draws each from its priors; with 1, the edit is the priors' mean). ``attributes`` maps
garment attributes the model learned to strengths, e.g. ``{"sleeve_length": 0.4, "hem_length": -0.2}``, or that
object as JSON text. An object needs one mapping per edit in a list
(or a DataFrame cell; ``dataframe_records`` over REST); a single edit given as a mapping (an ``inputs``
object over REST) takes the JSON text, since MLflow spreads an object there over rows. The edit erases
its own region, so ``mask`` may then be omitted or empty. The names and the strength range are the
parser's (``parser.attributes``, ``parser.max_strength``, :mod:`fashion_edit.serving.attribute_edit`); a
strength of 0 is no edit. Each picture is base64-encoded PNG/JPEG text (a ``data:image/png;base64,`` URI
too) or an array / nested lists of pixel values (conventions in ``fashion_edit.serving.editor``); arrays
go one mapping per edit in a list (or a DataFrame; ``dataframe_records`` over REST), since MLflow spreads
a mapping of arrays over rows. Never a file path: the served model must not read the server's files, so
any other text is refused with the same message whether or not such a file exists (see "pictures
received over the network" below, which also caps a huge photo's size).
Output: one ``{"image": ..., "notice": ...}`` per edit, ``image`` a base64 PNG (param
``output=png``, the default: ~1/10 of the JSON of an array) or nested lists of RGB values
(``output=array``); with ``samples`` > 1 also ``"samples": [...]``, every completion in that format (``image``
is the first). Param ``seed`` (default 0) fixes the noise inside the hole. A JSON request to
``mlflow models serve``: ``{"inputs": {"image": "<base64 PNG>", "mask": "<base64 PNG>"},
"params": {"seed": 3}}`` (README.md has a curl example; an attribute edit: ``{"dataframe_records":
[{"image": ..., "attributes": {"sleeve_length": 0.4}}]}`` or ``{"inputs": {"image": ..., "attributes":
"{\\"sleeve_length\\": 0.4}"}}``; a swap: ``{"inputs": {"image": ..., "to_category": "trousers"}}``),
answered ``{"predictions": [{"image": "<base64 PNG>", "notice": null}]}``; a bad
input is HTTP 400 with the reason as ``message``.
The signature names the input columns, so the registry shows them.

The model folder holds the editor bundle (weights + architectures) as the artifact ``editor`` and
this project's ``fashion_edit`` and ``models`` packages as code, so it loads wherever its pinned
requirements are installed.

``parser`` and ``inpainter`` are saved in MLflow's ``pt2`` format (``torch.export``: no pickled code),
batch size dynamic, spatial size fixed to the training resolution, each with one float32 input:
- parser: (B, 26 or 46 with label strokes, H, W) = ``fashion_edit.networks.parser_input`` -> logits (B, 20, H, W);
- inpainter: (B, 30, H, W) = [incomplete image (3), known foreground M' (1), hole M (1), parsing
  one-hot (20), conditioning E = noise, colour, sketch (5)] -> generated image (B, 3, H, W) in [-1, 1],
  not composited (compose with G * M + I * (1 - M)).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, ColSpec, DataType, ParamSchema, ParamSpec, Schema
from PIL import Image

from fashion_edit.errors import FashionEditError
from fashion_edit.networks import Batch, incomplete_image, inpainter_condition, onehot, parser_input
from fashion_edit.data.categories import SWAP_CATEGORIES, CategorySwapError
from fashion_edit.serving.attribute_edit import AttributeEditError, check_strengths
from fashion_edit.serving.category_edit import check_category
from fashion_edit.serving.editor import (EditInputError, EditInputs, EditResult, Editor, EditorNetworks,
                                         known_foreground)

EDITOR_ARTIFACT = "editor"
REQUIRED_KEYS = ("image", "mask")  # mask: unless attributes are given
OPTIONAL_KEYS = ("sketch", "colour", "attributes", "to_category", "samples")
MAX_SAMPLES = 16  # completions per edit a request may ask for (each is a full pass of the networks)
PICTURE_KEYS = ("image", "mask", "sketch", "colour")
OUTPUT_FORMATS = ("png", "array")
# distributions the editor imports at load/predict time (pinned to the versions installed here)
RUNTIME_DISTRIBUTIONS = ("torch", "numpy", "opencv-python", "pydantic", "pyyaml", "tqdm", "pillow", "mlflow")
PYTORCH_DISTRIBUTIONS = ("torch", "numpy", "mlflow")
EXAMPLE_BATCH = 2  # > 1 so torch.export keeps the batch dimension dynamic
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- pictures received over the network
# A request carries image bytes (base64 text, optionally a data URI) or pixel arrays, never a server path: a string
# is only ever decoded as base64, so a request naming /etc/passwd learns nothing about the server's files. Two
# limits keep a huge photo from exhausting memory: MAX_DECODED_PIXELS (refused before decoding: a 20 kB PNG can
# announce 50,000 x 50,000 pixels) and MAX_SIDE (a longer photo is downscaled with its mask, sketch and colour
# strokes, and the edit carries a notice). The web page (webapp.py) uses the same functions.
MAX_SIDE = 2048  # px, long side of a photo the served editor edits at full size
MAX_DECODED_PIXELS = 50_000_000  # refused before decoding: ~150 MB as RGB
_DATA_URI = re.compile(r"data:(?P<type>[\w.+/-]*);base64,", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
MASK_LIKE = ("mask", "sketch")  # binary pictures: downscaled so thin lines survive
TEXT_RULE = ("a text value must be base64-encoded PNG or JPEG bytes (e.g. `base64 -w0 photo.png`, optionally as a "
             "data:image/png;base64,... URI); file paths are not accepted, send the file's content instead")


def base64_bytes(text: str, name: str) -> bytes:
    """The bytes of base64 ``text`` (a data URI prefix allowed); EditInputError for anything else, such as a path."""
    body = "".join(text.split())
    uri = _DATA_URI.match(body)
    if uri:
        body = body[uri.end():]
    if not body or not _BASE64.fullmatch(body):
        raise EditInputError(f"{name}: {TEXT_RULE}")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise EditInputError(f"{name}: not valid base64 ({exc}); {TEXT_RULE}") from None


def decode_image(data: bytes, name: str, hint: str = "send PNG or JPEG bytes") -> np.ndarray:
    """PNG/JPEG/... bytes as a uint8 RGB(A) or grey array; EditInputError if not an image or too large to decode."""
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # PIL raises many types for non-images
        raise EditInputError(f"{name}: not an image file ({hint})") from None
    if width * height > MAX_DECODED_PIXELS:
        raise EditInputError(f"{name}: {width}x{height} pixels is more than the {MAX_DECODED_PIXELS:,} this server "
                             f"decodes; downscale the photo (a long side of {MAX_SIDE} px is edited at full size)")
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if picture is None:
        raise EditInputError(f"{name}: not an image OpenCV can decode ({hint})")
    if picture.dtype != np.uint8:
        raise EditInputError(f"{name}: a {picture.dtype} image; send an 8-bit PNG or JPEG")
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_BGRA2RGBA if picture.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return picture


def request_picture(value: Any, name: str) -> Any:
    """One input of a network request as the editor takes it: base64 text or bytes decoded, arrays as they are."""
    if isinstance(value, str):
        return decode_image(base64_bytes(value, name), name, TEXT_RULE)
    if isinstance(value, (bytes, bytearray)):
        return decode_image(bytes(value), name)
    if isinstance(value, (np.ndarray, list, tuple)):
        return value
    raise EditInputError(f"{name}: got {type(value).__name__}; send base64-encoded PNG/JPEG text or an array of "
                         "pixel values (H x W or H x W x 3/4, 0-255)")


def downscaled(pictures: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The pictures with the image's long side capped at :data:`MAX_SIDE` (those of the image's size scaled
    alike) and a notice when that happened; (pictures, None) when the image fits."""
    image = np.asarray(pictures["image"]) if pictures.get("image") is not None else None
    if image is None or image.ndim < 2 or max(image.shape[:2]) <= MAX_SIDE:
        return dict(pictures), None
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scaled = {name: _scaled(np.asarray(value), name, (height, width), size) if value is not None else None
              for name, value in pictures.items()}
    notice = (f"the photo is {width}x{height} pixels; it was downscaled to {size[0]}x{size[1]} (long side "
              f"{MAX_SIDE} px) with its mask and strokes, and the result has that size")
    return scaled, notice


def _scaled(picture: np.ndarray, name: str, original: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    if picture.shape[:2] != original:  # another size: left for the editor's size check to name
        return picture
    if picture.dtype != np.uint8:
        picture = picture.astype(np.uint8) if picture.min() >= 0 and picture.max() <= 255 else picture
    if name == "image":
        return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    if name in MASK_LIKE:  # any covered pixel stays on, so a 1-px sketch line is not averaged away
        on = (picture >= 128) if picture.max() > 1 else (picture > 0)
        return np.where(cv2.resize(on.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 0,
                        255, 0).astype(np.uint8)
    return cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST)  # colour strokes keep their exact colours


def png_bytes(picture: np.ndarray) -> bytes:
    """An RGB, RGBA or grey uint8 array as PNG bytes."""
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGBA2BGRA if picture.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:
        raise EditInputError(f"could not encode a {picture.shape} picture as PNG")
    return encoded.tobytes()


def png_base64(picture: np.ndarray) -> str:
    return base64.b64encode(png_bytes(picture)).decode("ascii")


def pinned_requirements(distributions: tuple[str, ...] = RUNTIME_DISTRIBUTIONS) -> list[str]:
    """``name==installed version`` for each distribution (explicit: MLflow does not infer them).

    A local version label (torch's ``+cpu``) names a wheel index rather than a release, so it is dropped.
    """
    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            raise RuntimeError(f"{name} is not installed, so the model's requirements cannot be pinned; "
                               "install the project (`make install`)") from None
    return pins


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA: how an absent optional cell arrives."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def _unwrapped(value: Any) -> Any:
    """The value inside a 0-d array: `mlflow models serve` turns each value of an ``inputs`` request into
    an array, so a base64 string or a null arrives as one."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def edit_request(row: Mapping[str, Any]) -> dict[str, Any]:
    """Check one request's keys; optional inputs that are None/NaN become None, ``attributes`` a dict
    (:func:`request_attributes`), ``to_category`` a name or None and ``samples`` a count (default 1). ``mask`` may
    be absent when attributes or a category are asked for: the edit erases its own region."""
    unknown = set(row) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)
    if unknown:
        raise EditInputError(f"unknown input(s) {sorted(unknown)}; an edit takes {REQUIRED_KEYS + OPTIONAL_KEYS}")
    values = {key: _unwrapped(row.get(key)) for key in REQUIRED_KEYS + OPTIONAL_KEYS}
    values = {key: None if _missing(value) else value for key, value in values.items()}
    values["attributes"] = request_attributes(values["attributes"])
    values["to_category"] = request_category(values["to_category"])
    values["samples"] = request_samples(values["samples"])
    own_hole = bool(values["attributes"]) or values["to_category"] is not None
    absent = [key for key in REQUIRED_KEYS if values[key] is None and not (key == "mask" and own_hole)]
    if absent:
        raise EditInputError(f"an edit needs {list(REQUIRED_KEYS)}; missing {absent}")
    return values


def request_attributes(value: Any) -> dict[str, float]:
    """The ``attributes`` input as {name: strength}: a mapping, or JSON text of one (columns of objects are
    awkward in CSV or a typed DataFrame); None -> {}. EditInputError naming the field otherwise."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise EditInputError(f"attributes: not a JSON object ({exc}); send e.g. "
                                 '{"sleeve_length": 0.4}') from None
    if not isinstance(value, Mapping):  # a bare number: an object MLflow spread over rows (module docstring)
        raise EditInputError(f"attributes: got {type(value).__name__}; send an object of attribute name -> "
                             'strength, e.g. {"sleeve_length": 0.4} (as JSON text when the edit is a single '
                             "mapping rather than a list of them: MLflow spreads an object there over rows)")
    strengths = {}
    for name, strength in value.items():
        # bool is an int to Python, but `true` is no strength; numpy scalars arrive from DataFrames
        if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, (int, float, np.integer, np.floating)):
            raise EditInputError(f"attributes: the strength of {name!r} must be a number, got {strength!r}")
        strengths[str(name)] = float(strength)
    return strengths


def request_category(value: Any) -> str | None:
    """The ``to_category`` input: a category name, or None for no swap (None or empty text)."""
    value = value.item() if isinstance(value, np.generic) else value  # a DataFrame's cells are numpy scalars
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise EditInputError(f"to_category: got {type(value).__name__}; send a category name "
                             f"({', '.join(SWAP_CATEGORIES)})")
    return value.strip().lower()


def request_samples(value: Any) -> int:
    """The ``samples`` input as a count from 1 to :data:`MAX_SAMPLES` (None -> 1; a DataFrame's 3.0 is 3)."""
    value = value.item() if isinstance(value, np.generic) else value  # a DataFrame's cells are numpy scalars
    if value is None:
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLES:
        raise EditInputError(f"samples: {value!r} is not a whole number of completions from 1 to {MAX_SAMPLES}")
    return int(value)


def edit_inputs(editor: Editor, pictures: Mapping[str, Any], strengths: Mapping[str, float],
                to_category: str | None = None) -> tuple[EditInputs, dict[str, float], str | None]:
    """The checked inputs of decoded ``pictures`` (keys of :data:`PICTURE_KEYS`), the non-zero attribute
    ``strengths`` and the swap category this editor can apply. Asking for attributes at all (zeros included) or
    for a category makes the mask optional."""
    try:
        nonzero = check_strengths(editor.networks.parser_net, strengths)
    except AttributeEditError as exc:  # a bad input naming the field, as the page and REST report it
        raise EditInputError(f"attributes: {exc}") from None
    try:
        category = check_category(editor.networks.parser_net, to_category)
    except CategorySwapError as exc:
        raise EditInputError(f"to_category: {exc}") from None
    own_hole = bool(strengths) or category is not None
    return EditInputs.read(**pictures, allow_empty_hole=own_hole), nonzero, category


def run_edit(editor: Editor, inputs: EditInputs, strengths: Mapping[str, float], seed: int,
             to_category: str | None = None, samples: int = 1) -> list[EditResult]:
    """``samples`` completions (``editor.run``, or ``editor.run_samples`` for more than one), with an attribute edit
    or a swap this photo cannot take as a bad input naming the field."""
    try:
        if samples == 1:
            return [editor.run(inputs, seed, strengths, to_category)]
        return editor.run_samples(inputs, samples, seed, strengths, to_category)
    except EditInputError:
        raise
    except CategorySwapError as exc:  # no garment to swap, or already the category asked for
        raise EditInputError(f"to_category: {exc}") from None
    except FashionEditError as exc:  # the photo has no garment an attribute measures, or no figure at all
        raise EditInputError(f"attributes: {exc}") from None


class EditRequestError(EditInputError, MlflowException):
    """A bad edit request, as MLflow's scoring server reports a client error (an ``EditInputError`` too)."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)

    # MLflow's scoring server rewrites ``message`` to "Failed to predict data '<the whole request>'. Error: ...",
    # which puts megabytes of base64 before the reason; the reason stays the message, first and alone.
    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_reason"):
            self._reason = value


class EditorModel(mlflow.pyfunc.PythonModel):
    """pyfunc: image + mask (+ sketch, colour strokes, attribute strengths, a category to swap to, a number of
    samples) -> edited image(s); see the module docstring."""

    # No type hints on predict, on purpose: MLflow would convert the inputs (base64 text or arrays of any size,
    # optional keys) itself. This is MLflow's switch for that (without it every import warns that predict has no
    # usable type hints). The input schema of :func:`editor_signature` names the columns for the registry.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self.editor = Editor.load(context.artifacts[EDITOR_ARTIFACT])

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - see the note above
        params = params or {}
        try:
            return self._edits(model_input, int(params.get("seed", 0)), output_format(params.get("output")))
        except EditInputError as exc:  # `mlflow models serve` answers HTTP 400 with the message, no stack trace
            raise EditRequestError(str(exc)) from None

    def _edits(self, model_input: Any, seed: int, output: str) -> Any:
        if isinstance(model_input, Mapping):  # models saved without an input schema (before issue 13) get the mapping
            return self._edit(model_input, seed, output)
        if hasattr(model_input, "to_dict"):  # a pandas DataFrame (what MLflow makes of any request), one edit per row
            model_input = model_input.to_dict("records")
        if isinstance(model_input, list):
            return [self._edit(row, seed, output) for row in model_input]
        raise EditInputError(f"editor input must be a mapping with {list(REQUIRED_KEYS)} (+ {list(OPTIONAL_KEYS)}), "
                             f"a list of them or a DataFrame; got {type(model_input).__name__}")

    def _edit(self, row: Mapping[str, Any], seed: int, output: str) -> dict[str, Any]:
        """One edit from bytes or arrays (never a path: see :func:`request_picture`)."""
        request = edit_request(row)
        pictures = {key: None if request[key] is None else request_picture(request[key], key) for key in PICTURE_KEYS}
        pictures, notice = downscaled(pictures)
        inputs, strengths, category = edit_inputs(self.editor, pictures, request["attributes"], request["to_category"])
        results = run_edit(self.editor, inputs, strengths, seed, category, request["samples"])
        encoded = [png_base64(r.image) if output == "png" else r.image.tolist() for r in results]
        answer = {"image": encoded[0], "notice": notice}
        if request["samples"] > 1:  # only then: the answer to a request of before issue 14 keeps its two keys
            answer["samples"] = encoded
        return answer


def output_format(value: Any) -> str:
    """The ``output`` param: ``png`` (default, base64 PNG text) or ``array`` (nested lists of RGB values)."""
    chosen = "png" if _missing(value) else str(value)
    if chosen not in OUTPUT_FORMATS:
        raise EditInputError(f"param output={chosen!r}: expected one of {list(OUTPUT_FORMATS)}")
    return chosen


def editor_signature() -> ModelSignature:
    """Named input columns (base64 PNG/JPEG text or arrays, sketch and colour optional; attributes an object or
    its JSON text; to_category text; samples a count), the edit, its notice and any further samples as output,
    and the ``seed`` and ``output`` params: what the registry shows for the model."""
    # every column optional for MLflow: its own check of a missing column answers with the whole request echoed
    # (megabytes of base64); :func:`edit_request` names the missing key instead
    inputs = Schema([ColSpec(AnyType(), key, required=False) for key in REQUIRED_KEYS + OPTIONAL_KEYS])
    outputs = Schema([ColSpec(AnyType(), "image"), ColSpec(DataType.string, "notice", required=False),
                      ColSpec(AnyType(), "samples", required=False)])
    return ModelSignature(inputs=inputs, outputs=outputs,
                          params=ParamSchema([ParamSpec("seed", "long", 0), ParamSpec("output", "string", "png")]))


def save_editor_model(bundle: Path, path: Path) -> Path:
    """Save the editor bundle at ``bundle`` as a pyfunc model folder at ``path``."""
    mlflow.pyfunc.save_model(
        path, python_model=EditorModel(), artifacts={EDITOR_ARTIFACT: str(bundle)},
        code_paths=[str(PACKAGE_ROOT / "fashion_edit"), str(PACKAGE_ROOT / "models")],
        pip_requirements=pinned_requirements(), signature=editor_signature(), input_example=example_request())
    return path


def example_request(height: int = 24, width: int = 16) -> dict[str, str]:
    """A small valid edit as base64 PNGs (grey image, a centred rectangular hole): the model's saved input
    example, run once by MLflow at save time. Any image size works; the editor fits it to its resolution."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4:3 * height // 4, width // 4:3 * width // 4] = 255
    return {"image": png_base64(np.full((height, width, 3), 128, np.uint8)), "mask": png_base64(mask)}


MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


def registered_version(model_uri: str, tracking_uri: str) -> Any:
    """The registry's ModelVersion that ``models:/name@alias`` or ``models:/name/3`` names (MlflowException if there
    is none); None for another kind of URI."""
    from mlflow import MlflowClient

    match = MODEL_URI.fullmatch(model_uri)
    if match is None:
        return None
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, alias, number = match.group("name", "alias", "version")
    return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)


def load_registered_model(model_uri: str, tracking_uri: str) -> Any:
    """The pyfunc at ``model_uri`` (``models:/name@alias``, ``models:/name/3`` or an artifact URI) read from the
    store at ``tracking_uri``, without changing MLflow's process-global URIs. MlflowException if absent."""
    from mlflow.artifacts import download_artifacts

    found = registered_version(model_uri, tracking_uri)
    source = model_uri if found is None else found.source
    return mlflow.pyfunc.load_model(download_artifacts(artifact_uri=source, tracking_uri=tracking_uri))


# ----------------------------------------------------------------------------- pytorch flavour
class PackedInpainter(torch.nn.Module):
    """The inpainter with its five inputs packed along channels, so the registered model takes one array."""

    SPLIT = (3, 1, 1, 20, 5)  # incomplete image, M', M, parsing one-hot, conditioning E

    def __init__(self, inpainter: torch.nn.Module) -> None:
        super().__init__()
        self.inpainter = inpainter

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.inpainter(*torch.split(packed, list(self.SPLIT), dim=1))

    @staticmethod
    def pack(batch: Batch, parsing: torch.Tensor) -> torch.Tensor:
        """The packed input for a dataset-format batch and the parsing labels to follow."""
        return torch.cat([incomplete_image(batch), batch["known_fg"], batch["mask"], onehot(parsing),
                          inpainter_condition(batch)], dim=1)


def example_batch(size: tuple[int, int], count: int = EXAMPLE_BATCH) -> Batch:
    """A deterministic batch in the dataset's format: mid-grey images, all background, a centred square hole."""
    height, width = size
    mask = torch.zeros(count, 1, height, width)
    mask[..., height // 4:3 * height // 4, width // 4:3 * width // 4] = 1
    batch = {"image": torch.zeros(count, 3, height, width), "parsing": torch.zeros(count, height, width, dtype=torch.int64),
             "mask": mask, "sketch": torch.zeros_like(mask), "colour": torch.zeros(count, 3, height, width),
             "noise": torch.randn(count, 1, height, width, generator=torch.Generator().manual_seed(0)) * mask}
    batch["known_fg"] = known_foreground(batch)
    return batch


def save_network_models(networks: EditorNetworks, size: tuple[int, int], folder: Path) -> dict[str, Path]:
    """Save parser and inpainter as pytorch-flavour model folders (pt2, input examples, pinned requirements)."""
    batch = example_batch(size)
    requirements = pinned_requirements(PYTORCH_DISTRIBUTIONS)
    mlflow.pytorch.save_model(networks.parser, folder / "parser",
                              input_example=parser_input(batch, networks.parser_net.label_strokes).numpy(),
                              pip_requirements=requirements)
    mlflow.pytorch.save_model(PackedInpainter(networks.inpainter).eval(), folder / "inpainter",
                              input_example=PackedInpainter.pack(batch, batch["parsing"]).numpy(),
                              pip_requirements=requirements)
    return {"parser": folder / "parser", "inpainter": folder / "inpainter"}
