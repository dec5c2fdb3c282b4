"""Non-learned inpainting baselines reported next to the model (DESIGN.md section 7).

- ``telea``: OpenCV's fast-marching inpainting (Telea 2004), ``cv2.inpaint(..., cv2.INPAINT_TELEA)``;
- ``mean_colour``: the hole filled with the mean colour of the known pixels (a floor any model must beat).
Both only change hole pixels: known pixels are copied back exactly, as the model's output is composited.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import cv2
import numpy as np
import torch

Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check_image_and_hole(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 uint8 image and HxW {0,1} hole; return the hole as a boolean array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"baselines expect an HxWx3 uint8 RGB image; got {image.dtype} {image.shape}")
    if hole.shape != image.shape[:2]:
        raise ValueError(f"hole mask shape {hole.shape} does not match the image's {image.shape[:2]}")
    if not np.isin(hole, (0, 1)).all():
        raise ValueError("hole mask must contain only 0 (known) and 1 (hole)")
    return hole.astype(bool)


def telea_inpaint(image: np.ndarray, hole: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill ``hole`` (HxW, 1 = hole) of an HxWx3 uint8 RGB image with OpenCV Telea inpainting."""
    holes = _check_image_and_hole(image, hole)
    filled = cv2.inpaint(np.ascontiguousarray(image), holes.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return np.where(holes[..., None], filled, image)


def mean_colour_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` with the rounded mean RGB colour of the known pixels."""
    holes = _check_image_and_hole(image, hole)
    if holes.all():
        raise ValueError("the hole covers the whole image: there is no known pixel to take a mean colour from")
    mean = np.round(image[~holes].mean(axis=0)).astype(np.uint8)
    filled = image.copy()
    filled[holes] = mean
    return filled


BASELINES: dict[str, Baseline] = {"telea": telea_inpaint, "mean_colour": mean_colour_fill}


def inpaint_batch(images: torch.Tensor, masks: torch.Tensor, method: str, radius: int = 3) -> torch.Tensor:
    """Apply a baseline to float images (B,3,H,W) in [-1,1] with holes (B,1,H,W), 1 = hole.

    Images round-trip through uint8 for OpenCV, so only hole pixels take the baseline's values and the
    known pixels are the input tensor's, bit for bit (same composition as the model's output).
    ``radius`` is Telea's neighbourhood radius (ignored by ``mean_colour``).
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {sorted(BASELINES)}")
    if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(f"expected images (B,3,H,W) and masks (B,1,H,W); got {tuple(images.shape)} "
                         f"and {tuple(masks.shape)}")
    baseline = partial(telea_inpaint, radius=radius) if method == "telea" else BASELINES[method]
    filled = torch.stack([_fill_one(image, mask[0], baseline)
                          for image, mask in zip(images.detach().cpu(), masks.detach().cpu())])
    return torch.where(masks != 0, filled.to(images.device, images.dtype), images)


def _fill_one(image: torch.Tensor, hole: torch.Tensor, baseline: Baseline) -> torch.Tensor:
    """Run a numpy baseline on one (3,H,W) [-1,1] image and return (3,H,W) [-1,1] float32."""
    pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    filled = baseline(np.ascontiguousarray(pixels), (hole != 0).numpy().astype(np.uint8))
    return torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1
