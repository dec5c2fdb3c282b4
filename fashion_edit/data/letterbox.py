"""The one letterbox: an aspect-keeping resize into the model's size with centre padding, and back.

``preprocess`` fits the training photos with it and the editor fits the user's photo with it, with the same
interpolation, so a photo reaches the networks the same way in training and in serving (a test compares).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


def border_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median colour of the outermost rows and columns: what padding should look like."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


@dataclass(frozen=True)
class Letterbox:
    """Aspect-keeping resize of a picture of size ``source`` into ``target`` with centre padding, and back."""

    source: tuple[int, int]
    target: tuple[int, int]

    @property
    def inner(self) -> tuple[int, int]:
        (h, w), (th, tw) = self.source, self.target
        scale = min(th / h, tw / w)
        return max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))

    @property
    def offset(self) -> tuple[int, int]:
        (ih, iw), (th, tw) = self.inner, self.target
        return (th - ih) // 2, (tw - iw) // 2

    @property
    def shrinks(self) -> bool:
        return self.inner[0] < self.source[0]

    def fit(self, picture: np.ndarray, interpolation: int, pad: Any = 0) -> np.ndarray:
        """``picture`` (source size) resized into the target canvas filled with ``pad``."""
        ih, iw = self.inner
        resized = cv2.resize(picture, (iw, ih), interpolation=interpolation)
        canvas = np.empty((*self.target, *picture.shape[2:]), picture.dtype)
        canvas[...] = pad
        top, left = self.offset
        canvas[top:top + ih, left:left + iw] = resized.reshape(ih, iw, *picture.shape[2:])
        return canvas

    def unfit(self, picture: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`fit`: crop the padding, resize to the source size (bilinear)."""
        (ih, iw), (top, left) = self.inner, self.offset
        crop = picture[top:top + ih, left:left + iw]
        return cv2.resize(crop, self.source[::-1], interpolation=cv2.INTER_LINEAR)


def fit_photo(box: Letterbox, image: np.ndarray) -> np.ndarray:
    """An RGB photo at model size: area averaging when shrinking (no aliasing), bilinear when enlarging,
    padded with its border colour."""
    return box.fit(image, cv2.INTER_AREA if box.shrinks else cv2.INTER_LINEAR, border_colour(image))


def fit_labels(box: Letterbox, labels: np.ndarray) -> np.ndarray:
    """A label map at model size: nearest neighbour, padded with background (0)."""
    return box.fit(labels, cv2.INTER_NEAREST, 0)


def fit_binary(box: Letterbox, on: np.ndarray) -> np.ndarray:
    """A bool map at model size; a pixel is on if any of its source pixels is (thin holes and lines survive)."""
    return box.fit(on.astype(np.float32), cv2.INTER_AREA if box.shrinks else cv2.INTER_NEAREST) > 0
