"""Training of the free-form parsing network (FE-GAN stage 1): GAN + feature matching + cross-entropy.

G maps the 26-channel parser input (incomplete parsing, mask, sketch, noise, colour) to logits;
the multi-scale D sees [parser input, parsing] with the real parsing one-hot and the fake one as
softmax probabilities (a differentiable stand-in for the argmax the editor uses).

With ``parser.attributes`` (issue 15, seed 003): the hole's attribute code is set to the true attributes
(teacher forcing), S2FGAN's regression and orthogonality terms train the directions, and holes that are an
attribute's region are also completed for a changed value, scored by ``attribute_loss.counterfactual_loss``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fashion_edit.config import Params
from fashion_edit.data.attributes import attribute_index
from fashion_edit.networks import (build_parser, build_parser_criterion, build_parser_discriminator, onehot,
                                   parser_discriminator_input, parser_input)
from fashion_edit.training.attribute_loss import counterfactual_loss, counterfactual_targets
from fashion_edit.training.runner import TrainerSpec
from fashion_edit.visualize import colourise_parsing, condition_picture, hole_overlay, make_grid, mask_to_uint8
from models.losses import kl_term

Batch = dict[str, torch.Tensor]
# params sections the stage reads (dvc.yaml lists the same; also the params-hash tag)
SECTIONS = ("masks", "parser", "parser_loss", "train_parser")


def split_outputs(outputs: list[list[torch.Tensor]], n_real: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """D outputs of cat([real, fake]) -> (outputs for real, outputs for fake)."""
    real = [[f[:n_real] for f in scale] for scale in outputs]
    fake = [[f[n_real:] for f in scale] for scale in outputs]
    return real, fake


def attribute_columns(params: Params) -> list[int]:
    """Columns of the dataset's attribute vector that the parser's attribute mapping learns, in its order."""
    return [attribute_index(name) for name in params.parser.attributes]


class ParserTask:
    def __init__(self, params: Params, generator: torch.nn.Module, discriminator: torch.nn.Module,
                 d_train: torch.nn.Module) -> None:
        self.generator, self.discriminator, self.d_train = generator, discriminator, d_train
        self.criterion = build_parser_criterion(params).to(next(discriminator.parameters()).device)
        self.attribute_columns = attribute_columns(params)
        self.trained_attributes, self.max_strength = list(params.parser.attributes), params.parser.max_strength
        self.counterfactual_weight = params.parser_loss.counterfactual
        self.label_strokes, self.stochastic = params.parser.label_strokes, params.parser.latent_dim > 0

    def generate(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = parser_input(batch, self.label_strokes)
        # a stochastic parser's z comes from the posterior over the true parsing (seed 001), with its KL term
        truth = onehot(batch["parsing"]) if self.stochastic else None
        if not self.attribute_columns:
            return {"input": x, **self._forward(x, truth)}
        # teacher forcing: the hole's code carries the true attributes, so the decoder learns to draw them
        target = batch["attributes"][:, self.attribute_columns]
        parser = getattr(self.generator, "module", self.generator)  # DDP wraps the parser
        generated = {"input": x, "attribute_target": target, "directions": parser.directions}
        changed, column, change = counterfactual_targets(batch, target, self.trained_attributes, self.max_strength)
        asked = column >= 0  # holes that are a soft-measurable attribute's region
        if self.counterfactual_weight > 0 and asked.any():
            # one forward for the truth and the counterfactual requests together (DDP: one forward per backward)
            both = self._forward(torch.cat([x, x[asked]]), None if truth is None else torch.cat([truth, truth[asked]]),
                                 attribute_target=torch.cat([target, changed[asked]]))
            generated |= {"counterfactual_logits": both["logits"][x.shape[0]:], "counterfactual_asked": asked,
                          "counterfactual_column": column[asked], "counterfactual_change": change[asked]}
            return generated | both | {"logits": both["logits"][:x.shape[0]],
                                       "attribute_code": both["attribute_code"][:x.shape[0]]}
        return generated | self._forward(x, truth, attribute_target=target)

    def _forward(self, x: torch.Tensor, truth: torch.Tensor | None,
                 attribute_target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The generator's logits, and with them the attribute code (given a target) and the KL (given the truth)."""
        options: dict[str, Any] = {}
        if attribute_target is not None:
            options |= {"attribute_target": attribute_target, "return_attribute_code": True}
        if truth is not None:
            options["truth"] = truth
        out = self.generator(x, **options)
        if not options:
            return {"logits": out}
        names = ["logits"] + (["attribute_code"] if attribute_target is not None else []) + \
            (["kl"] if truth is not None else [])
        return dict(zip(names, out))

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
        terms = self.criterion.generator_losses(generated["logits"], batch["parsing"], d_fake, d_real)
        if "attribute_code" in generated:
            terms |= self.criterion.attribute_losses(generated["attribute_code"], generated["attribute_target"],
                                                     generated["directions"])
        if self.counterfactual_weight > 0 and "attribute_code" in generated:
            terms["counterfactual"] = self.counterfactual_weight * self._counterfactual_term(batch, generated)
        return terms | kl_term(self.criterion.weights, generated.get("kl"))

    def _counterfactual_term(self, batch: Batch, generated: dict[str, torch.Tensor]) -> torch.Tensor:
        """Measured change of the counterfactual completion against the requested change (0 without one: the loss
        terms keep the same columns every step)."""
        if "counterfactual_logits" not in generated:
            return generated["logits"].sum() * 0.0
        asked = generated["counterfactual_asked"]
        hole, known = batch["mask"][asked], onehot(batch["parsing"][asked])

        def completed(logits: torch.Tensor) -> torch.Tensor:
            # straight through: the value is the argmax parsing the sweep measures, the gradient the softmax's
            # (on soft probabilities alone the loss was met by shaving probability off pixels whose argmax
            # never changed, and the completions did not move)
            probs = torch.softmax(logits, dim=1)
            hard = onehot(probs.argmax(dim=1)) + probs - probs.detach()
            return hole * hard + (1 - hole) * known

        # against the same network's completion for the truth (detached), so the difference is what the
        # request changed
        reference = completed(generated["logits"][asked].detach())
        return counterfactual_loss(completed(generated["counterfactual_logits"]), reference, batch["figure_frame"][asked],
                                   generated["counterfactual_column"], generated["counterfactual_change"],
                                   self.trained_attributes)

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


def _dataset_options(params: Params) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if params.parser.attributes:
        options |= {"with_attributes": True, "attribute_holes": params.train_parser.attribute_hole_prob}
    if params.parser.label_strokes:
        options |= {"label_strokes": params.train_parser.label_stroke_prob,
                    "category_holes": params.train_parser.category_hole_prob}
    return options


PARSER_SPEC = TrainerSpec(name="parser", sections=SECTIONS, train=lambda p: p.train_parser, build=_build,
                          task=ParserTask, dataset_options=_dataset_options)
