"""Standard errors of evaluation metrics from a bootstrap over test images.

Each replicate draws ``n`` test images with replacement and recomputes the metric on them. The same
draws serve every metric and method of one evaluation (row ``r`` of :func:`bootstrap_indices`), and
the edited and real images of a test item always stay together: they are pairs, not two samples.
The standard error is the sample std of the replicates. Per-image means (hole PSNR, ST-LPIPS) and
the pooled parser mIoU resample per-image values; FID and KID resample Inception features
(``fashion_edit.evaluation.metrics.fid.PairedFid``, :func:`fashion_edit.evaluation.metrics.fid.kid_replicates`).
"""
from __future__ import annotations

import numpy as np

BOOTSTRAP_SEED = 0  # fixed: the same test split and resamples give the same SEs


def bootstrap_indices(count: int, resamples: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, count) test-image indices drawn with replacement."""
    if count < 2 or resamples < 2:
        raise ValueError(f"a bootstrap needs at least 2 images and 2 resamples; got {count} and {resamples}")
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def standard_error(replicates: np.ndarray) -> float:
    """Sample std of the bootstrap replicates (non-finite replicates, e.g. an all-NaN draw, left out)."""
    finite = replicates[np.isfinite(replicates)]
    return float(finite.std(ddof=1)) if finite.size > 1 else float("nan")


def mean_replicates(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mean of per-image ``values`` over each draw; NaN values (no hole in that image) are left out."""
    drawn = np.asarray(values, dtype=np.float64)[indices]
    kept = np.isfinite(drawn)
    counts = kept.sum(axis=1)
    sums = np.where(kept, drawn, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def miou_replicates(per_image: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """mIoU of the confusion matrix pooled over each draw; ``per_image`` (n, C, C) ``[target, pred]`` counts.

    A draw's matrix is the per-image matrices weighted by how often each image was drawn, so the
    replicate is exactly what ``ConfusionMatrix`` would report on the drawn images.
    """
    weights = np.stack([np.bincount(row, minlength=per_image.shape[0]) for row in indices]).astype(np.float64)
    pooled = np.tensordot(weights, per_image.astype(np.float64), axes=1)  # (resamples, C, C)
    hits = np.diagonal(pooled, axis1=1, axis2=2)
    union = pooled.sum(axis=1) + pooled.sum(axis=2) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, hits / union, np.nan)  # classes absent from target and prediction: no IoU
    return np.nanmean(iou, axis=1)
