"""Training of the free-form parsing network (FE-GAN stage 1): GAN + feature matching + cross-entropy.

G maps the 26-channel parser input (incomplete parsing, mask, sketch, noise, colour) to logits;
the multi-scale D sees [parser input, parsing] with the real parsing one-hot and the fake one as
softmax probabilities (a differentiable stand-in for the argmax the editor uses).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fashion_edit.config import Params
from fashion_edit.networks import (build_parser, build_parser_criterion, build_parser_discriminator,
                                   parser_discriminator_input, parser_input)
from fashion_edit.training.runner import TrainerSpec
from fashion_edit.visualize import colourise_parsing, condition_picture, hole_overlay, make_grid, mask_to_uint8

Batch = dict[str, torch.Tensor]
# params sections the stage reads (dvc.yaml lists the same; also the params-hash tag)
SECTIONS = ("masks", "parser", "parser_loss", "train_parser")


def split_outputs(outputs: list[list[torch.Tensor]], n_real: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """D outputs of cat([real, fake]) -> (outputs for real, outputs for fake)."""
    real = [[f[:n_real] for f in scale] for scale in outputs]
    fake = [[f[n_real:] for f in scale] for scale in outputs]
    return real, fake


class ParserTask:
    def __init__(self, params: Params, generator: torch.nn.Module, discriminator: torch.nn.Module,
                 d_train: torch.nn.Module) -> None:
        self.generator, self.discriminator, self.d_train = generator, discriminator, d_train
        self.criterion = build_parser_criterion(params).to(next(discriminator.parameters()).device)

    def generate(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = parser_input(batch)
        return {"input": x, "logits": self.generator(x)}

    def _d_pair(self, d: torch.nn.Module, batch: Batch, x: torch.Tensor, fake_probs: torch.Tensor) -> Any:
        # one D call on real and fake together: DDP expects one forward per backward
        both = torch.cat([parser_discriminator_input(x, batch["parsing"]),
                          parser_discriminator_input(x, fake_probs)], dim=0)
        return split_outputs(d(both), x.shape[0])

    def discriminator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        probs = torch.softmax(generated["logits"].detach(), dim=1)
        d_real, d_fake = self._d_pair(self.d_train, batch, generated["input"], probs)
        return self.criterion.discriminator_losses(d_real, d_fake)

    def generator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        probs = torch.softmax(generated["logits"], dim=1)
        d_real, d_fake = self._d_pair(self.discriminator, batch, generated["input"], probs)
        return self.criterion.generator_losses(generated["logits"], batch["parsing"], d_fake, d_real)

    def sample_grid(self, batch: Batch, generated: dict[str, torch.Tensor]) -> np.ndarray:
        """Rows: incomplete parsing (hole tinted) | mask | sketch + colour | completed parsing | ground truth."""
        predicted = generated["logits"].argmax(dim=1)
        rows = []
        for i in range(min(4, predicted.shape[0])):
            mask = batch["mask"][i]
            truth = batch["parsing"][i]
            completed = torch.where(mask[0] > 0.5, predicted[i], truth)
            incomplete = truth * (mask[0] < 0.5).long()
            rows.append([hole_overlay(colourise_parsing(incomplete), mask), mask_to_uint8(mask),
                         condition_picture(mask, batch["sketch"][i], batch["colour"][i]),
                         colourise_parsing(completed), colourise_parsing(truth)])
        return make_grid(rows)


def _build(params: Params, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    return build_parser(params).to(device), build_parser_discriminator(params).to(device)


PARSER_SPEC = TrainerSpec(name="parser", sections=SECTIONS, train=lambda p: p.train_parser, build=_build,
                          task=ParserTask)
