"""Training of the human-parsing segmenter: RGB image -> LIP-20 parsing, cross-entropy, no discriminator.

Two jobs (DESIGN.md section 7): the segmentation-consistency metric (SPADE's protocol: segment the
edited images, compare with the parsing they were conditioned on; its score on real test images
is the ceiling) and the editor's first step (a user gives a photo, not its parsing). The network
is the parser's encoder-residual-decoder on 3 channels (``networks.build_segmenter``), trained by
the same runner as the GANs: the task has no discriminator terms, so the loop makes generator
steps only. Exported to ``artifacts/segmenter/segmenter.pt`` with its validation mIoU.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fashion_edit.config import Params
from fashion_edit.data.store import open_split
from fashion_edit.layout import TrainPaths
from fashion_edit.networks import build_segmenter, segment
from fashion_edit.training.runner import TrainerSpec
from fashion_edit.visualize import colourise_parsing, image_to_uint8, make_grid

Batch = dict[str, torch.Tensor]
# params sections the stage reads (dvc.yaml lists the same; also the params-hash tag); masks: the data stream
SECTIONS = ("masks", "segmenter", "train_segmenter")
WEIGHTS_FILE = "segmenter.pt"


class SegmenterTask:
    """Cross-entropy of the segmenter's logits against the ground-truth parsing."""

    def __init__(self, params: Params, generator: torch.nn.Module, discriminator: torch.nn.Module | None,
                 d_train: torch.nn.Module | None) -> None:
        self.generator, self.discriminator = generator, discriminator

    def generate(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"logits": self.generator(batch["image"])}

    def discriminator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def generator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"ce": F.cross_entropy(generated["logits"], batch["parsing"])}

    def sample_grid(self, batch: Batch, generated: dict[str, torch.Tensor]) -> np.ndarray:
        """Rows: photo | segmented parsing | ground truth."""
        predicted = generated["logits"].argmax(dim=1)
        return make_grid([[image_to_uint8(batch["image"][i]), colourise_parsing(predicted[i]),
                           colourise_parsing(batch["parsing"][i])] for i in range(min(4, predicted.shape[0]))])


def validation_miou(params: Params, paths: TrainPaths, segmenter: torch.nn.Module) -> dict[str, float]:
    """``val_miou`` / ``val_pixel_acc`` of the segmenter on the real images of the validation split."""
    # imported here: the metrics package pulls in scipy/torchmetrics, which the editor's environment lacks
    from fashion_edit.evaluation.metrics.segmentation import ConfusionMatrix

    data, batch_size = open_split(paths.prepared / "val"), params.train_segmenter.batch_size
    confusion = ConfusionMatrix()
    was_training = segmenter.training
    segmenter.eval()
    for start in range(0, len(data), batch_size):
        images = torch.from_numpy(data.images[start:start + batch_size].copy()).permute(0, 3, 1, 2)
        labels = segment(segmenter, images.float() * (2.0 / 255.0) - 1.0)
        confusion.update(labels, torch.from_numpy(data.parsing[start:start + batch_size].astype("int64")))
    segmenter.train(was_training)
    if confusion.total == 0:
        return {}
    return {"val_miou": confusion.miou(), "val_pixel_acc": confusion.pixel_accuracy(), "val_images": float(len(data))}


def _build(params: Params, device: torch.device) -> tuple[torch.nn.Module, None]:
    return build_segmenter(params).to(device), None


SEGMENTER_SPEC = TrainerSpec(name="segmenter", sections=SECTIONS, train=lambda p: p.train_segmenter, build=_build,
                             task=SegmenterTask, weights_file=WEIGHTS_FILE, score=validation_miou)
