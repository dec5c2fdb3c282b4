"""Training of the parsing-aware inpainter (FE-GAN stage 2) on *ground-truth* parsing, as FE-GAN does.

G renders the hole from the incomplete image, the known-foreground mask M', the hole mask M, the
parsing and the conditioning E = [noise, colour, sketch]; losses are FE-GAN's lambda_1..7 (hole,
foreground and face L1, face TV, VGG perceptual and style on the composited output, hinge GAN).
The PatchGAN D sees [image, mask, parsing, colour, sketch] with the composited output as fake.
Evaluation (a later stage) feeds the parser's completion instead of the ground truth.
"""
from __future__ import annotations

import numpy as np
import torch

from fashion_edit.config import Params
from fashion_edit.networks import (build_inpainter, build_inpainter_criterion, build_inpainter_discriminator,
                                   incomplete_image, inpainter_discriminator_input, inpainter_inputs,
                                   run_inpainter)
from fashion_edit.training.parser_trainer import split_outputs
from models.inpainter import compose
from models.losses import kl_term
from fashion_edit.training.runner import TrainerSpec
from fashion_edit.visualize import (colourise_parsing, condition_picture, hole_overlay, image_to_uint8, make_grid,
                                    mask_to_uint8)

Batch = dict[str, torch.Tensor]
SECTIONS = ("masks", "inpainter", "inpainter_loss", "vgg", "train_inpainter")


class InpainterTask:
    def __init__(self, params: Params, generator: torch.nn.Module, discriminator: torch.nn.Module,
                 d_train: torch.nn.Module) -> None:
        self.params = params
        self.generator, self.discriminator, self.d_train = generator, discriminator, d_train
        self.criterion = build_inpainter_criterion(params).to(next(discriminator.parameters()).device)

    def generate(self, batch: Batch) -> dict[str, torch.Tensor]:
        if not self.params.inpainter.latent_dim:
            generated, composited = run_inpainter(self.generator, batch, batch["parsing"])
            return {"generated": generated, "composited": composited}
        # a stochastic inpainter's z comes from the posterior over the true image (seed 001), with its KL term
        generated, kl = self.generator(*inpainter_inputs(batch, batch["parsing"]), truth=batch["image"])
        return {"generated": generated, "composited": compose(generated, batch["image"], batch["mask"]), "kl": kl}

    def _d_pair(self, d: torch.nn.Module, batch: Batch, fake: torch.Tensor):
        # one D call on real and fake together: DDP expects one forward per backward
        both = torch.cat([inpainter_discriminator_input(self.params, batch, batch["image"], batch["parsing"]),
                          inpainter_discriminator_input(self.params, batch, fake, batch["parsing"])], dim=0)
        return split_outputs(d(both), fake.shape[0])

    def discriminator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.params.inpainter_loss.gan == 0:
            return {}  # the no-GAN ablation: D would train for nothing
        d_real, d_fake = self._d_pair(self.d_train, batch, generated["composited"].detach())
        return self.criterion.discriminator_losses(d_real, d_fake)

    def generator_terms(self, batch: Batch, generated: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        d_fake = None
        if self.params.inpainter_loss.gan > 0:
            d_fake = self.discriminator(inpainter_discriminator_input(
                self.params, batch, generated["composited"], batch["parsing"]))
        terms = self.criterion.generator_losses(generated["generated"], generated["composited"], batch["image"],
                                                batch["mask"], batch["known_fg"], batch["parsing"], d_fake)
        return terms | kl_term(self.criterion.weights, generated.get("kl"))

    def sample_grid(self, batch: Batch, generated: dict[str, torch.Tensor]) -> np.ndarray:
        """Rows: input (hole tinted) | mask | sketch + colour | parsing guidance | output | ground truth."""
        incomplete = incomplete_image(batch)
        rows = []
        for i in range(min(4, incomplete.shape[0])):
            mask = batch["mask"][i]
            rows.append([hole_overlay(image_to_uint8(incomplete[i]), mask), mask_to_uint8(mask),
                         condition_picture(mask, batch["sketch"][i], batch["colour"][i]),
                         colourise_parsing(batch["parsing"][i]), image_to_uint8(generated["composited"][i]),
                         image_to_uint8(batch["image"][i])])
        return make_grid(rows)


def _build(params: Params, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    return build_inpainter(params).to(device), build_inpainter_discriminator(params).to(device)


INPAINTER_SPEC = TrainerSpec(name="inpainter", sections=SECTIONS, train=lambda p: p.train_inpainter, build=_build,
                             task=InpainterTask)
