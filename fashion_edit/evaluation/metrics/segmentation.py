"""Parsing metrics (mIoU, pixel accuracy) from an accumulated confusion matrix.

Accumulating counts (not per-batch means) makes the result independent of batch size and of how
pixels are spread over images, which is the usual protocol for mIoU (e.g. SPADE's segmentation score).
``region_mask`` restricts counting to some pixels, e.g. the hole, to score only the completed parsing.
"""
from __future__ import annotations

import torch

from fashion_edit.data.labels import NUM_CLASSES


class ConfusionMatrix:
    """Counts ``matrix[target, pred]`` over all pixels passed to :meth:`update`.

    mIoU averages IoU over the classes present in the target *or* the prediction; classes absent from
    both have an undefined IoU (0/0) and are excluded rather than counted as 0 or 1.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor, region_mask: torch.Tensor | None = None) -> None:
        """Add label maps ``pred`` and ``target`` (same shape, integer ids); ``region_mask`` nonzero = counted.

        ``region_mask`` may carry a singleton channel axis, e.g. (B,1,H,W) for (B,H,W) labels.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        if region_mask is not None:
            keep = _flat_region(region_mask, target.numel())
            pred, target = pred[keep], target[keep]
        self._check_ids(pred, "pred")
        self._check_ids(target, "target")
        pairs = target * self.num_classes + pred
        self.matrix += torch.bincount(pairs, minlength=self.num_classes ** 2).view(self.num_classes, -1)

    def _check_ids(self, labels: torch.Tensor, name: str) -> None:
        """Out-of-range ids would silently land in another class's cell, so refuse them."""
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{name} has label ids in [{int(labels.min())}, {int(labels.max())}], "
                             f"outside [0, {self.num_classes - 1}]")

    @property
    def total(self) -> int:
        """Number of pixels counted so far."""
        return int(self.matrix.sum())

    def iou_per_class(self) -> torch.Tensor:
        """IoU per class (float64, length num_classes); NaN for classes absent from both target and pred."""
        matrix = self.matrix.double()
        true_positive = matrix.diagonal()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        return torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))

    def miou(self) -> float:
        """Mean IoU over classes present in target or pred."""
        self._require_pixels()
        return float(self.iou_per_class().nanmean())

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels whose predicted label equals the target."""
        self._require_pixels()
        return float(self.matrix.diagonal().sum()) / self.total

    def _require_pixels(self) -> None:
        if self.total == 0:
            raise ValueError("no pixels were counted (empty region masks or no update() calls); "
                             "mIoU and pixel accuracy are undefined")


def confusion_per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(B, C, C) counts ``[target, pred]`` of each image of (B, ...) label maps, for per-image resampling."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    batch = pred.shape[0]
    pred, target = pred.reshape(batch, -1).long().cpu(), target.reshape(batch, -1).long().cpu()
    if pred.numel() and (min(pred.min(), target.min()) < 0 or max(pred.max(), target.max()) >= num_classes):
        raise ValueError(f"label ids outside [0, {num_classes - 1}]")
    image = torch.arange(batch).unsqueeze(1) * num_classes ** 2  # each image's own block of cells
    cells = (image + target * num_classes + pred).reshape(-1)
    return torch.bincount(cells, minlength=batch * num_classes ** 2).view(batch, num_classes, num_classes)


def _flat_region(region_mask: torch.Tensor, numel: int) -> torch.Tensor:
    """Flatten a region mask to a boolean vector matching the flattened labels."""
    keep = region_mask.reshape(-1).cpu() != 0
    if keep.numel() != numel:
        raise ValueError(f"region_mask has {keep.numel()} elements but the label maps have {numel}; "
                         "pass a mask shaped like the labels, optionally with a singleton channel axis")
    return keep
