"""Pixel metrics for inpainting: hole-region L1, PSNR (whole image and hole), SSIM.

Conventions, fixed so numbers are comparable across stages and papers:
- inputs are the project's float images (B,3,H,W) in [-1, 1] and hole masks (B,1,H,W), 1 = hole;
- every metric is computed on the [0, 1] scale (x + 1) / 2, so L1 is in [0, 1] and PSNR/SSIM use
  data range 1;
- PSNR of identical pixels is infinite; it is capped at ``PSNR_MAX_DB`` (MSE floored at 1e-10) so that
  means stay finite and the metrics JSON stays valid;
- SSIM is torchmetrics' Gaussian SSIM (11x11 window, sigma 1.5, k1 0.01, k2 0.03) over the whole image;
- per-image values are averaged over images (not over pixels); an image with an empty hole has no
  hole-region value and is counted separately instead of contributing a made-up number.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

PSNR_MAX_DB = 100.0
_MSE_FLOOR = 10 ** (-PSNR_MAX_DB / 10)
_RANGE_TOLERANCE = 1e-3


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] float images to [0, 1] float64, refusing NaN/inf and values clearly outside [-1, 1]."""
    if not torch.isfinite(images).all():
        raise ValueError("image metrics got non-finite pixel values (NaN/inf); check the generator output")
    low, high = float(images.min()), float(images.max())
    if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(f"image metrics expect float images in [-1, 1]; got values in [{low:.3g}, {high:.3g}]")
    return ((images.double().clamp(-1, 1) + 1) / 2)


def _check_pair(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor | None = None) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(f"pred and target must both be (B,C,H,W) of one shape; got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if hole is not None and (hole.ndim != 4 or hole.shape[1] != 1 or hole.shape[0] != pred.shape[0]
                             or hole.shape[2:] != pred.shape[2:]):
        raise ValueError(f"hole mask must be (B,1,H,W) matching the images {tuple(pred.shape)}; "
                         f"got {tuple(hole.shape)}")


def _masked_mean(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-image mean of (B,C,H,W) ``values`` over pixels where ``region`` (B,1,H,W) is nonzero; NaN if none."""
    weight = (region != 0).double().expand_as(values)
    count = weight.sum(dim=(1, 2, 3))
    total = (values * weight).sum(dim=(1, 2, 3))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def hole_l1(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Per-image mean |pred - target| over hole pixels and channels, on the [0, 1] scale; (B,), NaN if no hole."""
    _check_pair(pred, target, hole)
    return _masked_mean((to_unit_range(pred) - to_unit_range(target)).abs(), hole)


def psnr(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB on the [0, 1] scale over ``region`` (default: whole image), capped at PSNR_MAX_DB."""
    _check_pair(pred, target, region)
    squared = (to_unit_range(pred) - to_unit_range(target)) ** 2
    if region is None:
        region = torch.ones_like(pred[:, :1])
    mse = _masked_mean(squared, region)
    return 10 * torch.log10(1.0 / mse.clamp(min=_MSE_FLOOR))  # NaN (empty region) stays NaN


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (B,) of whole images on the [0, 1] scale (torchmetrics, data_range 1)."""
    _check_pair(pred, target)
    return structural_similarity_index_measure(to_unit_range(pred).float(), to_unit_range(target).float(),
                                               data_range=1.0, reduction="none")


class ImageMetrics:
    """Collect per-image metrics over batches; :meth:`compute` returns their means over images.

    Keys: ``hole_l1`` and ``psnr_hole`` (images with a non-empty hole only), ``psnr`` and ``ssim``
    (whole images), plus the counts ``images`` and ``images_without_hole``. :meth:`per_image` keeps
    the values themselves (NaN where an image has no hole), for the bootstrap's standard errors.
    """

    KEYS = ("hole_l1", "psnr_hole", "psnr", "ssim")

    def __init__(self) -> None:
        self._values: dict[str, list[torch.Tensor]] = {key: [] for key in self.KEYS}

    def update(self, pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> None:
        """Add a batch: pred/target (B,3,H,W) in [-1,1], hole (B,1,H,W) with 1 = hole."""
        pred, target, hole = pred.detach().cpu(), target.detach().cpu(), hole.detach().cpu()
        self._values["hole_l1"].append(hole_l1(pred, target, hole))  # NaN where the hole is empty
        self._values["psnr_hole"].append(psnr(pred, target, hole))
        self._values["psnr"].append(psnr(pred, target))
        self._values["ssim"].append(ssim(pred, target).double())

    def per_image(self) -> dict[str, np.ndarray]:
        """Each metric's values in the order the images were added (float64; NaN: no hole)."""
        return {key: torch.cat(values).numpy() if values else np.zeros(0) for key, values in self._values.items()}

    @property
    def images(self) -> int:
        return sum(len(values) for values in self._values["psnr"])

    def compute(self) -> dict[str, float]:
        """Means over images; raises if nothing (or no image with a hole) was added."""
        values = self.per_image()
        with_hole = int(np.isfinite(values["hole_l1"]).sum())
        if with_hole == 0:
            raise ValueError(f"no image with a non-empty hole among {self.images} images; "
                             "hole metrics are undefined")
        means = {key: float(np.nanmean(values[key])) for key in self.KEYS}
        return {**means, "images": self.images, "images_without_hole": self.images - with_hole}
