"""Metrics library: FID (real packaged Inception), parsing confusion matrix, hole L1 / PSNR / SSIM."""
import hashlib
import math

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch

from fashion_edit import pretrained
from fashion_edit.evaluation.metrics import (PSNR_MAX_DB, ConfusionMatrix, FidAccumulator, ImageMetrics,
                                             InceptionFeatures, feature_statistics, fid_from_features, frechet_distance,
                                             hole_l1, psnr, ssim, to_inception_input)
from fashion_edit.evaluation.metrics.bootstrap import bootstrap_indices, mean_replicates, miou_replicates, standard_error
from fashion_edit.evaluation.metrics.fid import (FEATURE_DIM, KID_METRIC_NAME, PairedFid, kid_from_features,
                                                 kid_replicates, mmd2_unbiased)
from fashion_edit.evaluation.metrics.segmentation import confusion_per_image
from fashion_edit.pretrained import WeightsError


# ---------------------------------------------------------------- FID

@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    return InceptionFeatures(batch_size=4)


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    """Four small uint8 'scenes' (gradient background + filled shapes): structured, unlike pure noise."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 64)
    images = []
    for _ in range(4):
        image = np.stack([np.add.outer(ramp * rng.random(), ramp * rng.random()) / 2] * 3, -1)
        image = (image * rng.uniform(0.3, 1.0, 3)).astype(np.uint8)
        for _ in range(3):
            centre = tuple(int(v) for v in rng.integers(8, 56, 2))
            cv2.circle(image, centre, int(rng.integers(4, 14)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        images.append(torch.from_numpy(image).permute(2, 0, 1))
    return torch.stack(images)


def _with_noise(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    floats = images.float() / 127.5 - 1
    noise = torch.randn(floats.shape, generator=torch.Generator().manual_seed(seed))
    return (floats + sigma * noise).clamp(-1, 1)


def test_inception_input_maps_uint8_and_float_to_tf_range_at_299():
    batch = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 5, 7)
    as_input = to_inception_input(batch)
    assert as_input.shape == (2, 3, 299, 299)
    # (u - 128) / 128: 0 -> -1, 255 -> 127/128 (bilinear resize of a constant only adds float rounding)
    torch.testing.assert_close(as_input[0], torch.full_like(as_input[0], -1.0))
    torch.testing.assert_close(as_input[1], torch.full_like(as_input[1], 0.9921875))
    from_float = to_inception_input(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 5, 7))
    torch.testing.assert_close(from_float, as_input)


def test_inception_features_any_size_uint8_equals_float(inception, scenes):
    odd = torch.nn.functional.interpolate(scenes[:2].float(), size=(50, 70), mode="bilinear").round().to(torch.uint8)
    features = inception(odd)
    assert features.shape == (2, 2048) and features.dtype == np.float64
    assert (features >= 0).all()  # ReLU -> average pool
    np.testing.assert_allclose(inception(odd.float() / 127.5 - 1), features, atol=1e-5)


def test_inception_rejects_float_images_outside_minus_one_one(inception, scenes):
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        inception(scenes.float())


def test_fid_of_a_set_with_itself_is_zero(inception, scenes):
    accumulator = FidAccumulator(inception)
    accumulator.update_real(scenes[:2])
    accumulator.update_real(scenes[2:])
    accumulator.update_fake(scenes.float() / 127.5 - 1)
    assert accumulator.counts == (4, 4)
    assert accumulator.compute() == pytest.approx(0.0, abs=1e-3)


def test_fid_grows_with_noise(inception, scenes):
    clean = inception(scenes)
    scores = [fid_from_features(clean, inception(_with_noise(scenes, sigma, seed=1))) for sigma in (0.05, 0.2, 0.6)]
    assert 0 < scores[0] < scores[1] < scores[2], scores


def test_fid_needs_two_images_per_stream(scenes):
    accumulator = FidAccumulator(lambda images: np.zeros((len(images), 2048)))  # the check needs no network
    accumulator.update_real(scenes[:2])
    accumulator.update_fake(scenes[:1])
    with pytest.raises(ValueError, match="at least 2"):
        accumulator.compute()


def test_frechet_distance_one_dimensional_by_hand():
    # (0 - 2)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 5
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([2.0]), np.array([[4.0]])) == pytest.approx(5)


def test_frechet_distance_diagonal_by_hand():
    # |(1, 2)|^2 + (1 + 4) + (9 + 1) - 2 * (sqrt(1*9) + sqrt(4*1)) = 5 + 15 - 10 = 10
    value = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([9.0, 1.0]))
    assert value == pytest.approx(10)


def test_frechet_distance_singular_covariances():
    # both covariances zero (a point mass): only the mean term remains
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.array([1.0, 0, 0]), np.zeros((3, 3))) == pytest.approx(1)


def test_frechet_distance_retries_with_eps_when_sqrtm_is_not_finite(monkeypatch):
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky_sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    value = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([9.0, 1.0]))
    assert len(calls) == 2 and value == pytest.approx(10, abs=1e-4)


def test_frechet_distance_keeps_real_part_of_tiny_imaginary_noise(monkeypatch):
    real_sqrtm = scipy.linalg.sqrtm
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda matrix: real_sqrtm(matrix) + 1e-9j)
    assert frechet_distance(np.zeros(1), np.eye(1), np.full(1, 2.0), 4 * np.eye(1)) == pytest.approx(5)


def test_frechet_distance_rejects_large_imaginary_component(monkeypatch):
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda matrix: matrix + 0.5j)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(1), np.eye(1), np.ones(1), np.eye(1))


@pytest.mark.parametrize("n_real, n_fake", [(5, 7), (40, 50)])
def test_fid_from_features_equals_full_statistics(n_real, n_fake):
    # (5, 7) takes the reduced-basis route (13 <= 32), (40, 50) the full one; both must equal the definition
    rng = np.random.default_rng(3)
    real, fake = rng.gamma(2.0, 0.2, (n_real, 32)), rng.gamma(2.0, 0.3, (n_fake, 32)) + 0.05
    expected = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    assert fid_from_features(real, fake) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- KID

def _direct_kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Bińkowski et al.'s unbiased MMD² written pair by pair (O(n²) Python loops), the reference."""
    d = real.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(real), len(fake)
    xx = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(fake[i], fake[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(real[i], fake[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_the_direct_pairwise_reference():
    rng = np.random.default_rng(5)
    real, fake = rng.gamma(2.0, 0.2, (9, 16)), rng.gamma(2.0, 0.3, (9, 16)) + 0.05
    kid, std = kid_from_features(real, fake)  # equal sizes <= 1000: one subset, the whole data
    assert kid == pytest.approx(_direct_kid(real, fake), abs=1e-10) and std == 0.0
    assert mmd2_unbiased(real, fake[:6]) == pytest.approx(_direct_kid(real, fake[:6]), abs=1e-10)  # unequal sizes
    assert KID_METRIC_NAME == "kid_bilinear299"


def test_kid_matches_torchmetrics_formula():
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(6)
    real, fake = rng.normal(0.3, 0.2, (40, 2048)), rng.normal(0.32, 0.2, (40, 2048))
    expected = float(poly_mmd(torch.from_numpy(real), torch.from_numpy(fake)))  # float64, gamma = 1/d
    assert kid_from_features(real, fake)[0] == pytest.approx(expected, abs=1e-10)


def test_kid_subsets_average_the_direct_reference_and_are_deterministic():
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(12, 8)), rng.normal(0.3, 1.0, (10, 8))
    mean, std = kid_from_features(real, fake, subsets=5, subset_size=6, seed=3)
    draws = np.random.default_rng(3)
    values = [_direct_kid(real[draws.choice(12, 6, replace=False)], fake[draws.choice(10, 6, replace=False)])
              for _ in range(5)]
    assert mean == pytest.approx(np.mean(values), abs=1e-10) and std == pytest.approx(np.std(values), abs=1e-10)
    assert std > 0
    assert kid_from_features(real, fake, subsets=5, subset_size=6, seed=3) == (mean, std)
    assert kid_from_features(real, fake, subsets=5, subset_size=6, seed=4) != (mean, std)


def test_kid_is_near_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(8)
    real, other = rng.normal(size=(200, 64)), rng.normal(size=(200, 64))
    shifted = [kid_from_features(real, other + shift)[0] for shift in (0.1, 0.25, 0.5, 1.0)]
    assert 0 < shifted[0] < shifted[1] < shifted[2] < shifted[3], shifted
    # independent samples of one distribution: unbiased, so about 0 (either sign)
    assert abs(kid_from_features(real, other)[0]) < 0.05 * shifted[0]
    # the very same set: the unbiased estimator then equals -2/m (mean k(x, x) - mean k(x, x')), slightly
    # negative and O(1/m) - small next to a real shift, but not 0
    same = kid_from_features(real, real.copy())[0]
    kernel = (real @ real.T / 64 + 1) ** 3
    off_diagonal = (kernel.sum() - np.trace(kernel)) / (200 * 199)
    assert same == pytest.approx(-2 / 200 * (np.diag(kernel).mean() - off_diagonal), rel=1e-9)
    assert -0.1 < same < 0 and abs(same) < shifted[1]


def test_kid_refuses_fewer_than_two_samples_and_bad_subsets():
    rng = np.random.default_rng(9)
    two, one = rng.normal(size=(2, 4)), rng.normal(size=(1, 4))
    with pytest.raises(ValueError, match="at least 2 real and 2 fake.*got 2 real, 1 fake"):
        kid_from_features(two, one)
    with pytest.raises(ValueError, match="at least 2 real and 2 fake.*got 1 real, 2 fake"):
        kid_from_features(one, two)
    with pytest.raises(ValueError, match="same D"):
        kid_from_features(two, rng.normal(size=(2, 5)))
    with pytest.raises(ValueError, match="subset_size"):
        kid_from_features(two, two, subset_size=3)
    with pytest.raises(ValueError, match="subset"):
        kid_from_features(rng.normal(size=(3, 4)), two, subsets=0)
    accumulator = FidAccumulator(lambda images: np.zeros((len(images), 2048)))
    accumulator.update_real(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 2 real and 2 fake"):
        accumulator.compute_kid()


def test_fid_weights_missing_file_raises_weights_error(monkeypatch):
    package, _, sha, requirement = pretrained.FID_INCEPTION
    monkeypatch.setattr(pretrained, "FID_INCEPTION", (package, "no_such_weights.pt", sha, requirement))
    with pytest.raises(WeightsError, match="not found.*no_such_weights.pt"):
        InceptionFeatures()


def test_fid_weights_wrong_hash_raises_weights_error(monkeypatch):
    package, relative, _, requirement = pretrained.FID_INCEPTION
    monkeypatch.setattr(pretrained, "FID_INCEPTION", (package, relative, "0" * 64, requirement))
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        pretrained.load_fid_inception()


def test_fid_weights_package_missing_raises_weights_error(monkeypatch):
    _, relative, sha, requirement = pretrained.FID_INCEPTION
    monkeypatch.setattr(pretrained, "FID_INCEPTION", ("no_such_package_xyz", relative, sha, requirement))
    with pytest.raises(WeightsError, match="not installed"):
        pretrained.load_fid_inception()


def test_fid_weights_not_torchscript_raises_weights_error(monkeypatch):
    # a file with a matching hash that is not a TorchScript archive (corrupt content)
    not_a_model = "__version__.py"
    path = pretrained.packaged_file((pretrained.FID_INCEPTION[0], not_a_model, "", ""))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(pretrained, "FID_INCEPTION", (pretrained.FID_INCEPTION[0], not_a_model, digest, "x"))
    with pytest.raises(WeightsError, match="cannot load"):
        pretrained.load_fid_inception()


# ---------------------------------------------------------------- segmentation

TARGET = torch.tensor([[0, 0, 1], [1, 2, 2]])
PRED = torch.tensor([[0, 1, 1], [1, 2, 0]])


def test_confusion_matrix_hand_computed():
    matrix = ConfusionMatrix(num_classes=20)
    matrix.update(PRED, TARGET)
    iou = matrix.iou_per_class()
    # class 0: tp 1 / union 3; class 1: 2 / 3; class 2: 1 / 2; classes 3..19 absent -> NaN, excluded
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert torch.isnan(iou[3:]).all()
    assert matrix.miou() == pytest.approx(0.5)
    assert matrix.pixel_accuracy() == pytest.approx(4 / 6)


def test_class_only_in_prediction_counts_as_zero_iou():
    matrix = ConfusionMatrix()
    matrix.update(torch.tensor([[0, 5], [0, 0]]), torch.zeros(2, 2, dtype=torch.long))
    assert matrix.iou_per_class()[5] == 0
    assert matrix.miou() == pytest.approx((3 / 4 + 0) / 2)


@pytest.mark.parametrize("mask_shape", [(2, 3), (1, 1, 2, 3)])
def test_region_mask_counts_only_hole_pixels(mask_shape):
    hole = torch.tensor([[0, 1, 1], [0, 0, 1]]).view(mask_shape)
    matrix = ConfusionMatrix()
    matrix.update(PRED.view(1, 2, 3) if len(mask_shape) == 4 else PRED,
                  TARGET.view(1, 2, 3) if len(mask_shape) == 4 else TARGET, region_mask=hole)
    # hole pixels (target -> pred): 0->1, 1->1, 2->0; IoU = 0, 1/2, 0
    assert matrix.total == 3
    assert matrix.miou() == pytest.approx(1 / 6)
    assert matrix.pixel_accuracy() == pytest.approx(1 / 3)


def test_accumulating_batches_equals_one_update():
    rng = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 20, (4, 8, 8), generator=rng), torch.randint(0, 20, (4, 8, 8), generator=rng)
    whole, split = ConfusionMatrix(), ConfusionMatrix()
    whole.update(pred, target)
    split.update(pred[:1], target[:1])
    split.update(pred[1:], target[1:])
    assert torch.equal(whole.matrix, split.matrix)


def test_out_of_range_label_rejected():
    with pytest.raises(ValueError, match="target has label ids"):
        ConfusionMatrix().update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 20))


def test_label_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        ConfusionMatrix().update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_region_mask_size_mismatch_rejected():
    with pytest.raises(ValueError, match="region_mask"):
        ConfusionMatrix().update(PRED, TARGET, region_mask=torch.ones(2, 2))


def test_miou_without_pixels_is_an_error():
    matrix = ConfusionMatrix()
    matrix.update(PRED, TARGET, region_mask=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="no pixels"):
        matrix.miou()


# ---------------------------------------------------------------- image metrics

def _image_pair(offset: float = 0.0, hole_rows: slice = slice(8, 24)) -> tuple[torch.Tensor, ...]:
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5  # in [-0.5, 0.5)
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, hole_rows] = 1
    return target + offset * hole, target, hole


def test_identical_images():
    pred, target, hole = _image_pair()
    assert hole_l1(pred, target, hole).tolist() == [0.0, 0.0]
    assert psnr(pred, target).tolist() == [PSNR_MAX_DB, PSNR_MAX_DB]  # capped, not inf
    assert ssim(pred, target).tolist() == pytest.approx([1.0, 1.0])


def test_constant_offset_in_hole_gives_known_l1_and_psnr():
    # +0.2 on the [-1, 1] scale = +0.1 on the [0, 1] scale: L1 0.1, hole MSE 0.01 -> 20 dB;
    # the hole is half the image, so whole-image MSE 0.005 -> 20 + 10 log10(2) dB
    pred, target, hole = _image_pair(offset=0.2)
    assert hole_l1(pred, target, hole).tolist() == pytest.approx([0.1, 0.1])
    assert psnr(pred, target, hole).tolist() == pytest.approx([20.0, 20.0])
    assert psnr(pred, target).tolist() == pytest.approx([20 + 10 * math.log10(2)] * 2)
    assert (ssim(pred, target) < 1).all()


def test_image_metrics_accumulates_means_and_counts_empty_holes():
    pred, target, hole = _image_pair(offset=0.2)
    no_hole = torch.zeros_like(hole)
    metrics = ImageMetrics()
    metrics.update(pred, target, hole)
    metrics.update(target, target, no_hole)  # two perfect images without a hole
    result = metrics.compute()
    assert result["images"] == 4 and result["images_without_hole"] == 2
    assert result["hole_l1"] == pytest.approx(0.1) and result["psnr_hole"] == pytest.approx(20.0)
    assert result["psnr"] == pytest.approx((2 * (20 + 10 * math.log10(2)) + 2 * PSNR_MAX_DB) / 4)
    assert result["ssim"] == pytest.approx(float(ssim(pred, target).sum() + 2) / 4)


def test_empty_hole_gives_nan_per_image():
    pred, target, _ = _image_pair()
    assert torch.isnan(hole_l1(pred, target, torch.zeros(2, 1, 32, 32))).all()


def test_image_metrics_without_any_hole_is_an_error():
    _, target, hole = _image_pair()
    metrics = ImageMetrics()
    metrics.update(target, target, torch.zeros_like(hole))
    with pytest.raises(ValueError, match="no image with a non-empty hole"):
        metrics.compute()


def test_image_metrics_reject_wrong_range():
    pred, target, hole = _image_pair()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        hole_l1(pred * 255, target, hole)


def test_image_metrics_reject_nan():
    pred, target, hole = _image_pair()
    pred[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        psnr(pred, target)


def test_image_metrics_reject_mask_shape_mismatch():
    pred, target, _ = _image_pair()
    with pytest.raises(ValueError, match="hole mask"):
        hole_l1(pred, target, torch.ones(2, 3, 32, 32))


# ---------------------------------------------------------------- bootstrap standard errors

@pytest.mark.parametrize("n, d", [(30, 64), (80, 16)])
def test_paired_fid_low_rank_identity_equals_the_sqrtm_fid(n, d):
    # (30, 64): singular covariances (n < d); (80, 16): full rank. Repeats in the draw are allowed.
    rng = np.random.default_rng(11)
    real = rng.gamma(2.0, 0.2, (n, d))
    fake = 0.7 * real + rng.gamma(2.0, 0.1, (n, d))
    paired = PairedFid(real, fake)
    everything = np.arange(n)
    assert paired(everything) == pytest.approx(
        frechet_distance(*feature_statistics(real), *feature_statistics(fake)), rel=1e-6)
    draw = rng.integers(0, n, n)
    assert paired(draw) == pytest.approx(
        frechet_distance(*feature_statistics(real[draw]), *feature_statistics(fake[draw])), rel=1e-6)


def test_paired_fid_on_inception_sized_features_equals_fid_from_features():
    rng = np.random.default_rng(12)
    real = rng.gamma(2.0, 0.2, (40, FEATURE_DIM))
    fake = real + rng.normal(0, 0.1, real.shape) + 0.02
    draw = rng.integers(0, 40, 40)
    assert PairedFid(real, fake)(draw) == pytest.approx(fid_from_features(real[draw], fake[draw]), rel=1e-6)


def test_kid_replicates_equal_mmd_without_repeats_and_skip_self_pairs_with_them():
    rng = np.random.default_rng(13)
    real, fake = rng.gamma(2.0, 0.2, (10, 16)), rng.gamma(2.0, 0.3, (10, 16))
    assert kid_replicates(real, fake, np.arange(10)[None])[0] == pytest.approx(mmd2_unbiased(real, fake), abs=1e-12)
    assert kid_replicates(real, fake, rng.permutation(10)[None])[0] == pytest.approx(mmd2_unbiased(real, fake),
                                                                                    abs=1e-12)
    # a draw of images {0, 0, 1}: within-set terms average only k(x0, x1) (each ordered pair of distinct images)
    draw = np.array([[0, 0, 1]])
    kernel = lambda a, b: (a @ b / 16 + 1) ** 3  # noqa: E731
    expected = (kernel(real[0], real[1]) + kernel(fake[0], fake[1])
                - 2 * sum(kernel(real[i], fake[j]) for i in (0, 0, 1) for j in (0, 0, 1)) / 9)
    assert kid_replicates(real, fake, draw)[0] == pytest.approx(expected, rel=1e-12)


def test_mean_and_miou_replicates_equal_the_metrics_on_the_drawn_images():
    rng = np.random.default_rng(14)
    draws = bootstrap_indices(6, 20, seed=1)
    assert draws.shape == (20, 6) and np.array_equal(draws, bootstrap_indices(6, 20, seed=1))
    values = np.array([1.0, np.nan, 3.0, 4.0, np.nan, 6.0])  # NaN: an image without a hole
    replicates = mean_replicates(values, draws)
    for row, value in zip(draws, replicates):
        drawn = values[row]
        if np.isfinite(drawn).any():
            assert value == pytest.approx(np.nanmean(drawn))
    pred = torch.from_numpy(rng.integers(0, 4, (6, 5, 5)))
    target = torch.from_numpy(rng.integers(0, 4, (6, 5, 5)))
    per_image = confusion_per_image(pred, target)
    assert per_image.shape == (6, 20, 20) and int(per_image.sum()) == 6 * 25
    for row, value in zip(draws, miou_replicates(per_image.numpy(), draws)):
        matrix = ConfusionMatrix()
        matrix.update(pred[row], target[row])
        assert value == pytest.approx(matrix.miou(), rel=1e-12)
    assert standard_error(np.array([1.0, 2.0, 3.0, np.nan])) == pytest.approx(1.0)


def test_bootstrap_se_shrinks_with_more_images():
    rng = np.random.default_rng(15)
    small, large = rng.normal(size=50), rng.normal(size=800)
    se_small = standard_error(mean_replicates(small, bootstrap_indices(50, 400)))
    se_large = standard_error(mean_replicates(large, bootstrap_indices(800, 400)))
    assert se_small == pytest.approx(1 / math.sqrt(50), rel=0.25)
    assert se_large == pytest.approx(1 / math.sqrt(800), rel=0.25)


def test_image_metrics_keep_per_image_values():
    pred, target, hole = _image_pair(offset=0.2)
    metrics = ImageMetrics()
    metrics.update(pred, target, hole)
    metrics.update(target, target, torch.zeros_like(hole))
    values = metrics.per_image()
    assert values["psnr_hole"][:2] == pytest.approx([20.0, 20.0]) and np.isnan(values["psnr_hole"][2:]).all()
    assert np.nanmean(values["hole_l1"]) == pytest.approx(metrics.compute()["hole_l1"])
