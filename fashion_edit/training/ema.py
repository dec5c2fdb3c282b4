"""Exponential moving average of the generator's weights (ProGAN / StyleGAN practice).

Evaluation and export use the averaged copy: on a short CPU budget it is smoother than the last
step's weights (the noise of the final Adam steps averages out). Parameters are averaged with torch's
``AveragedModel``; buffers are copied from the trained generator, as StyleGAN2-ADA does: averaging
spectral-norm power-iteration vectors would leave them off unit length and scale every normalised
weight.
"""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

# the decay ramps up from 0 so the random initial weights are forgotten quickly:
# decay_k = min(decay, (1 + k) / (10 + k)) after k updates (TensorFlow's ExponentialMovingAverage rule)
_RAMP_OFFSET = 10.0


def ramped_decay(decay: float, updates: int) -> float:
    return min(decay, (1.0 + updates) / (_RAMP_OFFSET + updates))


class GeneratorEma(torch.nn.Module):
    """An EMA copy of a generator; :meth:`update` after every G step, :attr:`module` to evaluate."""

    def __init__(self, generator: torch.nn.Module, decay: float) -> None:
        super().__init__()

        def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
            d = ramped_decay(decay, int(updates))
            return averaged * d + current * (1.0 - d)

        self.averaged = AveragedModel(generator, avg_fn=average, use_buffers=False)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> torch.nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, generator: torch.nn.Module) -> None:
        self.averaged.update_parameters(generator)
        for mine, theirs in zip(self.module.buffers(), generator.buffers()):
            mine.copy_(theirs)
