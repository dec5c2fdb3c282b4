"""The parsing-aware coarse fill and the networks that start from it."""
from __future__ import annotations

import torch

from fashion_edit.networks import onehot, parser_input
from models.inpainter import ParsingAwareInpainter
from models.parser import PARSER_IN_CHANNELS, FreeFormParser
from models.prefill import parsing_aware_fill, push_pull, stroke_mask


def _two_region_scene(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left half class 1 in red, right half class 2 in blue; a hole across the boundary."""
    parsing = torch.zeros(1, size, size, dtype=torch.long)
    parsing[..., : size // 2] = 1
    parsing[..., size // 2:] = 2
    image = torch.zeros(1, 3, size, size)
    image[:, 0, :, : size // 2] = 1.0
    image[:, 2, :, size // 2:] = 1.0
    image = image * 2 - 1
    hole = torch.zeros(1, 1, size, size)
    hole[..., 8:24, 8:24] = 1
    return image, parsing, hole


def test_push_pull_keeps_samples_and_fills_gaps_with_their_values():
    values = torch.full((1, 1, 16, 16), 0.25)
    weights = torch.zeros(1, 1, 16, 16)
    weights[..., :4, :] = 1
    filled, has = push_pull(values, weights)
    assert has.tolist() == [True]
    assert torch.allclose(filled, torch.full_like(filled, 0.25), atol=1e-6)
    _, empty = push_pull(values, torch.zeros_like(weights))
    assert empty.tolist() == [False]


def test_fill_follows_the_parsing_and_leaves_known_pixels_exact():
    image, parsing, hole = _two_region_scene()
    fill = parsing_aware_fill(image, hole, onehot(parsing, 3), torch.zeros_like(image))
    assert torch.equal(fill * (1 - hole), image * (1 - hole))
    # no colour bleeds across the boundary: each side of the hole gets its own class's colour
    assert torch.allclose(fill * hole, image * hole, atol=1e-5)
    agnostic = parsing_aware_fill(image, hole, torch.ones_like(hole), torch.zeros_like(image))
    assert (agnostic - image).abs()[..., 8:24, 14:18].max() > 0.3  # a class-agnostic fill blends the two


def test_colour_strokes_are_samples_of_the_class_under_them():
    image, parsing, hole = _two_region_scene()
    parsing[..., 8:24, 8:24] = 0            # the hole becomes a class with no known pixel ...
    colour = torch.zeros_like(image)
    colour[:, 1, 10:12, 10:12] = 0.5        # ... but one green stroke inside it
    fill = parsing_aware_fill(image, hole, onehot(parsing, 3), colour)
    assert torch.allclose(fill[0, :, 16, 16], torch.tensor([0.0, 0.5, 0.0]), atol=1e-5)
    assert stroke_mask(colour).sum() == 4


def test_prefilled_inpainter_starts_as_the_coarse_fill_and_trains_its_residual():
    image, parsing, hole = _two_region_scene()
    net = ParsingAwareInpainter(num_classes=3, base_channels=8, n_res_blocks=1, prefill=True,
                                encode_background=True)
    incomplete = image * (1 - hole) - hole
    condition = torch.zeros(1, 5, 32, 32)
    out = net(incomplete, 1 - hole, hole, onehot(parsing, 3), condition)
    expected = parsing_aware_fill(incomplete, hole, onehot(parsing, 3), torch.zeros_like(image))
    assert torch.equal(out, expected)
    out.sub(image.flip(-1)).abs().mean().backward()  # a target the coarse fill does not already meet
    assert net.to_rgb.weight.grad.abs().sum() > 0


def test_prefilled_parser_starts_from_the_known_parsing():
    _, parsing, hole = _two_region_scene()
    batch = {"parsing": parsing, "mask": hole, "sketch": torch.zeros_like(hole), "noise": torch.zeros_like(hole),
             "colour": torch.zeros(1, 3, 32, 32)}
    x = parser_input(batch)
    assert x.shape[1] == PARSER_IN_CHANNELS
    parser = FreeFormParser(base_channels=8, n_downsample=2, n_res_blocks=1, prefill=True)
    predicted = parser(x).argmax(dim=1)
    assert torch.equal(predicted[hole[:, 0] == 0], parsing[hole[:, 0] == 0])
    assert torch.equal(predicted[..., 8:24, 8:14], parsing[..., 8:24, 8:14])  # the hole continues its sides
