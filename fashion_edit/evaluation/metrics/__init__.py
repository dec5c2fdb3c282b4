"""Evaluation metrics (DESIGN.md section 7): FID, parsing mIoU / pixel accuracy, hole L1 / PSNR / SSIM."""
from fashion_edit.evaluation.metrics.fid import (FEATURE_DIM, FID_METRIC_NAME, FidAccumulator, InceptionFeatures,
                                                 feature_statistics, fid_from_features, frechet_distance,
                                                 to_inception_input)
from fashion_edit.evaluation.metrics.image import PSNR_MAX_DB, ImageMetrics, hole_l1, psnr, ssim, to_unit_range
from fashion_edit.evaluation.metrics.segmentation import ConfusionMatrix

__all__ = [
    "FEATURE_DIM", "FID_METRIC_NAME", "FidAccumulator", "InceptionFeatures", "feature_statistics",
    "fid_from_features", "frechet_distance", "to_inception_input", "PSNR_MAX_DB", "ImageMetrics",
    "hole_l1", "psnr", "ssim", "to_unit_range", "ConfusionMatrix",
]
