"""Stochastic completion (seed 001, the two-stage completion thesis after FiNet): a latent code z for the hole.

Two encoders map to diagonal Gaussians over z (dimension ``latent_dim``):
- the *posterior* encoder (the thesis' E_s / E_a) sees what belongs in the hole: the true parsing (parser)
  or the true image (inpainter) there;
- the *compatibility prior* encoder (E_sc / E_ac) sees only what the editor sees: the visible outfit.

Training draws z from the posterior (reparameterised) and adds D_KL(posterior || prior) to the loss (thesis
eq. 2-18, weight λ_KL), so the prior learns which completions fit the visible outfit; at test time z is drawn
from the prior: one input, several compatible completions. z enters the generator at its bottleneck as a
learned shift of the features *inside the (downsampled) hole*: the thesis concatenates the spatially tiled z
to the input, but a spatially constant map would be erased by the instance norms of our generators.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.layers import conv2d

ENCODER_WIDTH = 32
LOGVAR_RANGE = (-8.0, 4.0)  # keeps exp(logvar) finite in the KL early in training


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """D_KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) of diagonal Gaussians (B, D): summed over D, batch mean.

    Closed form per dimension: ½ (logvar_p − logvar_q + (e^logvar_q + (mu_q − mu_p)²) / e^logvar_p − 1)."""
    per_dim = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)
    return per_dim.sum(dim=1).mean()


class GaussianEncoder(nn.Module):
    """Three stride-2 convs, a global average, a linear map to (mu, logvar) of a ``latent_dim`` Gaussian."""

    def __init__(self, in_channels: int, latent_dim: int, width: int = ENCODER_WIDTH) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv2d(in_channels, width, 3, stride=2), nn.LeakyReLU(0.2),
            conv2d(width, 2 * width, 3, stride=2), nn.LeakyReLU(0.2),
            conv2d(2 * width, 2 * width, 3, stride=2), nn.LeakyReLU(0.2))
        self.head = nn.Linear(2 * width, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x).mean(dim=(2, 3))).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


class LatentCompletion(nn.Module):
    """The posterior and prior encoders and the map from z to a feature shift inside the hole."""

    def __init__(self, posterior_channels: int, prior_channels: int, feature_channels: int, latent_dim: int,
                 stream: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.stream = latent_dim, stream  # stream: the parser's and inpainter's draws differ
        self.posterior = GaussianEncoder(posterior_channels, latent_dim)
        self.prior = GaussianEncoder(prior_channels, latent_dim)
        self.to_features = nn.Linear(latent_dim, feature_channels)

    def code(self, prior_input: torch.Tensor, posterior_input: torch.Tensor | None = None,
             sample_seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(z (B, D), KL or None).

        Training (``posterior_input`` given): z from the posterior, reparameterised, and D_KL(posterior || prior).
        Otherwise z from the prior: its mean when ``sample_seed`` is None (the deterministic completion), else one
        draw whose randomness depends on the seed alone (the same seed gives the same completion)."""
        mu_p, logvar_p = self.prior(prior_input)
        if posterior_input is not None:
            mu_q, logvar_q = self.posterior(posterior_input)
            z = mu_q + (0.5 * logvar_q).exp() * torch.randn_like(mu_q)
            return z, gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
        if sample_seed is None:
            return mu_p, None
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([int(sample_seed), self.stream])
                                                      .generate_state(1)[0]))
        eps = torch.randn(mu_p.shape, generator=generator).to(mu_p)
        return mu_p + (0.5 * logvar_p).exp() * eps, None

    def shift(self, features: torch.Tensor, z: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """``features`` (B, C, h, w) moved by the code's learned direction inside ``hole`` (B, 1, H, W)."""
        hole_here = F.adaptive_avg_pool2d(hole, features.shape[-2:])
        return features + self.to_features(z)[:, :, None, None] * hole_here
