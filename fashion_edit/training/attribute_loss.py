"""The counterfactual attribute loss: the parser is asked for *another* sleeve or hem length than the truth and
scored on whether its completion has it.

Teacher forcing alone (the hole's code set to the true attributes) lets the decoder learn to reproduce the
truth from context and ignore the code; an edit needs the code to steer. So, for a training hole that is an
attribute's region (``EditingDataset`` with ``attribute_holes``), a second forward asks for the true value
plus a random change (``attribute_shift`` x ``parser.max_strength``, kept in the attribute's range), and
the loss compares the change of a *soft* measure of the completion with the requested change. The soft
measures are the measures of ``fashion_edit.data.attributes`` written on class probabilities instead of
labels (differentiable), in the figure frame of the true parsing:

- sleeve_length: 1 - (bare arm probability mass / u² - HANDS_U2) / ARMS_U2 (the measure is linear in areas);
- hem_length: the number of rows below the hip row whose maximum lower-garment probability is high, over the
  hip-to-ankle distance (the hard measure's lowest row, for a garment that runs down from the hips).

``width`` has no simple soft form; it is learned by the teacher forcing and the regression only.
The change is measured between the counterfactual completion and the same network's completion for the
true value. The trainer passes straight-through probabilities (the argmax's one-hot forward, the softmax's
gradient backward), so the loss's value is the hard measure's and the gradient the soft one's.
"""
from __future__ import annotations

import torch

from fashion_edit.data.attributes import (ARMS, ARMS_U2, ATTRIBUTE_RANGE, GLOVE, GLOVE_AS_ARM, HANDS_U2, LOWER,
                                          attribute_index)

SOFT_MEASURES = ("sleeve_length", "hem_length")


def soft_sleeve_length(probs: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """probs (B, 20, H, W), unit (B,) head units in px -> (B,) soft sleeve_length."""
    bare = probs[:, list(ARMS)].sum((1, 2, 3)) + GLOVE_AS_ARM * probs[:, GLOVE].sum((1, 2))
    return 1.0 - (bare / unit ** 2 - HANDS_U2) / ARMS_U2


def soft_hem_length(probs: torch.Tensor, hip: torch.Tensor, ankle: torch.Tensor) -> torch.Tensor:
    """probs (B, 20, H, W), hip and ankle rows (B,) -> (B,) soft hem_length."""
    rows = probs[:, list(LOWER)].sum(1).amax(dim=2)  # (B, H): is there lower garment on this row?
    below = torch.arange(rows.shape[1], device=rows.device)[None] >= hip[:, None]
    return (rows * below).sum(1) / (ankle - hip).clamp_min(1.0)


def soft_attribute(name: str, probs: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """The soft measure ``name`` (one of SOFT_MEASURES) of probs (B, 20, H, W); frame (B, 3) = unit, hip, ankle."""
    if name == "sleeve_length":
        return soft_sleeve_length(probs, frame[:, 0])
    return soft_hem_length(probs, frame[:, 1], frame[:, 2])


def counterfactual_targets(batch: dict[str, torch.Tensor], target: torch.Tensor, trained: list[str],
                           max_strength: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(targets with one attribute changed per eligible sample, its column per sample (-1: none), the change).

    Eligible: the hole is the region of a trained, soft-measurable attribute whose true value is known."""
    column = torch.full_like(batch["attribute_hole"], -1)
    for position, name in enumerate(trained):
        if name in SOFT_MEASURES:
            column[batch["attribute_hole"] == attribute_index(name)] = position
    rows = torch.arange(target.shape[0], device=target.device)
    known = torch.isfinite(target[rows, column.clamp_min(0)]) & torch.isfinite(batch["figure_frame"]).all(1)
    column = torch.where(known, column, torch.full_like(column, -1))
    changed = target.clone()
    change = torch.zeros_like(batch["attribute_shift"])
    for position, name in enumerate(trained):
        chosen = column == position
        if chosen.any():
            low, high = ATTRIBUTE_RANGE[name]
            wanted = (target[chosen, position] + batch["attribute_shift"][chosen] * max_strength).clamp(low, high)
            change[chosen] = wanted - target[chosen, position]
            changed[chosen, position] = wanted
    return changed, column, change


def counterfactual_loss(probs: torch.Tensor, reference: torch.Tensor, frame: torch.Tensor, column: torch.Tensor,
                        change: torch.Tensor, trained: list[str]) -> torch.Tensor:
    """Mean squared gap between the soft measure's change (counterfactual completion minus the reference
    completion) and the requested change, over the samples with a column; 0 (in the graph) when there are none."""
    gaps = []
    for position, name in enumerate(trained):
        chosen = column == position
        if name in SOFT_MEASURES and chosen.any():
            moved = (soft_attribute(name, probs[chosen], frame[chosen])
                     - soft_attribute(name, reference[chosen], frame[chosen]))
            gaps.append(moved - change[chosen])
    if not gaps:
        return probs.sum() * 0.0
    return torch.cat(gaps).pow(2).mean()

