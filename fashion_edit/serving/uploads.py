"""Pictures sent over the network (the REST model and the web page): image bytes in, PNG bytes out.

A request can carry image bytes (base64 text, optionally a ``data:image/...;base64,`` URI) or pixel arrays,
never a server path: a string is only ever decoded as base64, so a request naming ``/etc/passwd`` learns
nothing about the server's files. Two limits keep a huge photo from exhausting memory:

- :data:`MAX_DECODED_PIXELS`: a file whose header announces more pixels is refused before it is decoded
  (a 20 kB PNG can announce 50,000 x 50,000 pixels);
- :data:`MAX_SIDE`: a photo whose long side is longer is downscaled to it, with its mask, sketch and colour
  strokes, and the edit carries a notice saying so.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from PIL import Image

from fashion_edit.serving.editor import EditInputError

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
