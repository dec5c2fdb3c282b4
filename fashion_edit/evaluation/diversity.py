"""Diversity of completions (issue 14, seed 001): N completions of one input, how different they are.

Each test item is completed ``evaluate.samples`` times on its fixed evaluation hole *without* its sketch and
colour strokes (with them the test image's own edges dictate the shape: there is nothing left to vary), each
time with other noise inside the hole and, for a stochastic model (``parser.latent_dim`` /
``inpainter.latent_dim``), another draw from its compatibility priors. A deterministic model differs between
samples by its response to the noise alone, which is the baseline the seed's claim is measured against.

Scores (means over the test items with a hole):
- ``diversity_lpips``: mean pairwise ST-LPIPS between an item's samples (whole images; 0 = identical);
- ``diversity_parsing``: mean pairwise share of hole pixels whose completed label differs;
- ``diversity_garment_classes``: distinct garment classes the parser produces in the hole over all samples
  (a class counts where it covers at least ``CLASS_SHARE`` of the hole);
- ``samples_fid`` / ``samples_kid``: FID / KID of all samples against the real test images (the samples' quality:
  the claim is diversity at an FID that is not worse than the deterministic model's on the same inputs).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from fashion_edit.data.labels import LABEL_ID
from fashion_edit.evaluation.metrics.fid import InceptionFeatures, fid_from_features, kid_from_features
from fashion_edit.networks import Batch
from fashion_edit.serving.editor import EditorNetworks, TwoStageOutput, two_stage
from models.vgg import STLPIPS

GARMENTS = tuple(LABEL_ID[name] for name in ("upper-clothes", "dress", "coat", "pants", "skirt", "scarf"))
CLASS_SHARE = 0.05  # a class "is produced" when it covers this share of the hole (not a few stray pixels)
SAMPLE_SEED_OFFSET = 7919  # the samples' noise streams, apart from the evaluation's own noise


def unguided(batch: Batch) -> Batch:
    """The batch without sketch lines and colour strokes: only the hole and the visible outfit."""
    return batch | {"sketch": torch.zeros_like(batch["sketch"]), "colour": torch.zeros_like(batch["colour"])}


def with_noise(batch: Batch, seed: int) -> Batch:
    """The batch with new N(0, 1) noise inside its holes, drawn from ``seed``."""
    generator = torch.Generator().manual_seed(SAMPLE_SEED_OFFSET + seed)
    noise = torch.randn(batch["noise"].shape, generator=generator) * batch["mask"]
    return batch | {"noise": noise}


def draw_samples(networks: EditorNetworks, batch: Batch, samples: int) -> list[TwoStageOutput]:
    """``samples`` unguided completions of the batch, sample k with noise and prior draw k."""
    plain = unguided(batch)
    return [two_stage(networks, with_noise(plain, k), sample_seed=k) for k in range(samples)]


def parsing_disagreement(a: torch.Tensor, b: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """(B,) share of hole pixels where the labels ``a`` and ``b`` (B,H,W) differ (NaN without a hole)."""
    area = hole.sum(dim=(1, 2))
    differ = ((a != b) & hole).sum(dim=(1, 2)).double()
    return torch.where(area > 0, differ / area.clamp_min(1), torch.full_like(differ, float("nan")))


def garment_classes(parsings: list[torch.Tensor], hole: torch.Tensor, share: float = CLASS_SHARE) -> torch.Tensor:
    """(B,) number of garment classes covering >= ``share`` of the hole in at least one of ``parsings``."""
    area = hole.sum(dim=(1, 2)).clamp_min(1).double()
    produced = torch.zeros(hole.shape[0], len(GARMENTS), dtype=torch.bool)
    for labels in parsings:
        for j, label in enumerate(GARMENTS):
            produced[:, j] |= ((labels == label) & hole).sum(dim=(1, 2)) / area >= share
    return produced.sum(dim=1).double()


class DiversityScores:
    """Accumulates the samples' pairwise distances and Inception features over the test split."""

    def __init__(self, stlpips: STLPIPS, samples: int) -> None:
        if samples < 2:
            raise ValueError(f"diversity needs at least 2 samples per input, got {samples}")
        self.stlpips, self.samples = stlpips, samples
        self.lpips: list[np.ndarray] = []
        self.parsing: list[np.ndarray] = []
        self.classes: list[np.ndarray] = []
        self.features: list[np.ndarray] = []

    def update(self, networks: EditorNetworks, batch: Batch, inception: InceptionFeatures) -> list[TwoStageOutput]:
        """Draw the batch's samples, score them, return them (for the grid)."""
        outs = draw_samples(networks, batch, self.samples)
        hole = batch["mask"][:, 0] > 0
        has_hole = hole.any(dim=(1, 2)).numpy()
        with torch.no_grad():
            features = [self.stlpips.features(out.image) for out in outs]
            pairs = list(itertools.combinations(range(self.samples), 2))
            lpips = torch.stack([self.stlpips.distance(features[i], features[j]).reshape(-1) for i, j in pairs])
        disagreement = torch.stack([parsing_disagreement(outs[i].completed, outs[j].completed, hole) for i, j in pairs])
        self.lpips.append(lpips.mean(dim=0).double().numpy()[has_hole])
        self.parsing.append(disagreement.mean(dim=0).numpy()[has_hole])
        self.classes.append(garment_classes([out.completed for out in outs], hole).numpy()[has_hole])
        self.features += [inception(out.image) for out in outs]
        return outs

    def compute(self, real_features: np.ndarray) -> dict[str, float]:
        fake = np.concatenate(self.features)
        kid, _ = kid_from_features(real_features, fake)
        return {"diversity_lpips": float(np.concatenate(self.lpips).mean()),
                "diversity_parsing": float(np.concatenate(self.parsing).mean()),
                "diversity_garment_classes": float(np.concatenate(self.classes).mean()),
                "samples_fid": fid_from_features(real_features, fake), "samples_kid": float(kid),
                "samples": self.samples}
