"""Build the networks and criteria from params, and assemble their inputs from a dataset batch.

A batch is the dict of tensors yielded by ``fashion_edit.data.dataset.EditingDataset`` (batched):
image (B,3,H,W) in [-1,1], parsing int64 (B,H,W), mask (B,1,H,W) 1 = hole, sketch (B,1,H,W),
colour (B,3,H,W), noise (B,1,H,W), known_fg (B,1,H,W) = M'.

``python -m fashion_edit.networks --params params.yaml`` prints the parameter-count table of the
default networks and every inpainter variant.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fashion_edit.config import InpainterNet, Params, ParserLoss, ParserNet, SegmenterNet, load_params
from fashion_edit.data.labels import NUM_CLASSES
from models.discriminators import MultiScaleDiscriminator, PatchDiscriminator
from models.inpainter import ParsingAwareInpainter, compose
from models.losses import InpainterCriterion, ParserCriterion
from models.parser import PARSER_IN_CHANNELS, FreeFormParser

Batch = dict[str, torch.Tensor]
HOLE_FILL = -1.0  # DESIGN 3.2: the incomplete image has its hole filled with -1


def _section(p: Any, name: str, kind: type) -> Any:
    """Accept either the whole Params or just the relevant section."""
    return p if isinstance(p, kind) else getattr(p, name)


# ------------------------------------------------------------------------- builders
def build_parser(p: Params | ParserNet) -> FreeFormParser:
    net = _section(p, "parser", ParserNet)
    return FreeFormParser(PARSER_IN_CHANNELS, NUM_CLASSES, net.base_channels, net.n_downsample, net.n_res_blocks,
                          net.prefill, attributes=len(net.attributes), label_strokes=net.label_strokes,
                          latent_dim=net.latent_dim)


def parser_in_channels(net: ParserNet) -> int:
    """Channels of :func:`parser_input` for this parser."""
    return PARSER_IN_CHANNELS + (NUM_CLASSES if net.label_strokes else 0)


def build_segmenter(p: Params | SegmenterNet) -> FreeFormParser:
    """RGB -> LIP-20 logits: the parser's architecture on 3 input channels, no prefill (it sees no parsing)."""
    net = _section(p, "segmenter", SegmenterNet)
    return FreeFormParser(3, NUM_CLASSES, net.base_channels, net.n_downsample, net.n_res_blocks, False)


@torch.no_grad()
def segment(segmenter: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Labels (B,H,W) int64 of images (B,3,H,W) in [-1,1]."""
    return segmenter(images).argmax(dim=1)


def build_parser_discriminator(p: Params | ParserNet) -> MultiScaleDiscriminator:
    """pix2pixHD multi-scale D on [parser input (26, + 20 label strokes), parsing one-hot / probabilities (20)]."""
    net = _section(p, "parser", ParserNet)
    return MultiScaleDiscriminator(parser_in_channels(net) + NUM_CLASSES, net.d_channels, net.d_layers, net.d_scales)


def build_inpainter(p: Params | InpainterNet) -> ParsingAwareInpainter:
    net = _section(p, "inpainter", InpainterNet)
    return ParsingAwareInpainter(NUM_CLASSES, net.base_channels, net.n_res_blocks, net.dilation, net.norm,
                                 net.encoder, net.use_parsing, net.spectral_norm, net.attention,
                                 net.use_sketch_colour, net.encode_background, net.prefill, net.latent_dim)


def inpainter_discriminator_channels(p: Params | InpainterNet) -> int:
    """Channels of :func:`inpainter_discriminator_input`: image + mask (+ parsing) (+ colour, sketch)."""
    net = _section(p, "inpainter", InpainterNet)
    return 3 + 1 + (NUM_CLASSES if net.use_parsing else 0) + (4 if net.use_sketch_colour else 0)


def build_inpainter_discriminator(p: Params | InpainterNet) -> PatchDiscriminator:
    """EdgeConnect 5-layer PatchGAN on :func:`inpainter_discriminator_input`."""
    net = _section(p, "inpainter", InpainterNet)
    return PatchDiscriminator(inpainter_discriminator_channels(net), net.d_channels, net.spectral_norm, net.attention)


def build_parser_criterion(p: Params | ParserLoss) -> ParserCriterion:
    return ParserCriterion(**_section(p, "parser_loss", ParserLoss).model_dump())


def build_inpainter_criterion(p: Params) -> InpainterCriterion:
    """Inpainter losses with FE-GAN's weights; loads the VGG named by ``vgg`` when a VGG term is on."""
    from fashion_edit.hardware import resolve_speed
    from fashion_edit.pretrained import load_vgg_features

    weights = p.inpainter_loss
    vgg = load_vgg_features(p.vgg) if weights.perceptual > 0 or weights.style > 0 else None
    # vgg.bf16: auto -> on only where bf16 is native (no VGG: nothing to decide)
    vgg_bf16 = resolve_speed(p.vgg.bf16 if vgg is not None else None, "auto").bf16
    return InpainterCriterion(vgg=vgg, vgg_bf16=vgg_bf16, vgg_blocks=p.vgg.blocks, **weights.model_dump())


# ------------------------------------------------------------------ input assembly
def onehot(parsing: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Labels (B,H,W) -> float one-hot (B,C,H,W); a (B,C,H,W) float map (e.g. softmax) passes through."""
    if parsing.dim() == 4:
        if parsing.shape[1] != num_classes:
            raise ValueError(f"parsing map has {parsing.shape[1]} channels, expected {num_classes}")
        return parsing
    if parsing.dim() != 3:
        raise ValueError(f"parsing must be labels (B,H,W) or a (B,{num_classes},H,W) map, got {tuple(parsing.shape)}")
    if parsing.numel() and (int(parsing.min()) < 0 or int(parsing.max()) >= num_classes):
        raise ValueError(f"parsing labels must lie in [0, {num_classes - 1}], "
                         f"got [{int(parsing.min())}, {int(parsing.max())}]")
    return F.one_hot(parsing.long(), num_classes).permute(0, 3, 1, 2).float()


def parser_input(batch: Batch, label_strokes: bool = False) -> torch.Tensor:
    """(B,26,H,W) = [one-hot(parsing * (1 - mask)) (20), mask, sketch, noise, colour (3)]; the hole is background.

    ``label_strokes`` (a parser built with ``parser.label_strokes``): 20 more channels, the one-hot of
    ``batch["label_strokes"]`` (B,H,W) int64 inside the hole (-1: no stroke; a batch without the key has none)."""
    mask = batch["mask"]
    incomplete = batch["parsing"] * (1 - mask[:, 0]).long()
    parts = [onehot(incomplete), mask, batch["sketch"], batch["noise"], batch["colour"]]
    if label_strokes:
        parts.append(label_stroke_channels(batch))
    return torch.cat(parts, dim=1)


def label_stroke_channels(batch: Batch) -> torch.Tensor:
    """(B,20,H,W): the wanted class one-hot where a label stroke lies inside the hole, zero elsewhere."""
    strokes = batch.get("label_strokes")
    mask = batch["mask"]
    if strokes is None:
        return mask.new_zeros((mask.shape[0], NUM_CLASSES, *mask.shape[-2:]))
    drawn = (strokes >= 0)[:, None].to(mask.dtype) * mask
    return onehot(strokes.clamp_min(0)) * drawn


def parser_discriminator_input(parser_in: torch.Tensor, parsing: torch.Tensor) -> torch.Tensor:
    """D input [parser input (26), parsing (20)]: labels are one-hot encoded; pass softmax(logits) for fakes."""
    return torch.cat([parser_in, onehot(parsing)], dim=1)


def inpainter_condition(batch: Batch) -> torch.Tensor:
    """(B,5,H,W) = [noise, colour (3), sketch], the conditioning E of the ANLs."""
    return torch.cat([batch["noise"], batch["colour"], batch["sketch"]], dim=1)


def incomplete_image(batch: Batch) -> torch.Tensor:
    """The image with its hole (mask = 1) filled with -1."""
    mask = batch["mask"]
    return batch["image"] * (1 - mask) + HOLE_FILL * mask


def inpainter_inputs(batch: Batch, parsing_labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The inpainter's positional inputs (incomplete image, M', M, parsing one-hot, conditioning E)."""
    return (incomplete_image(batch), batch["known_fg"], batch["mask"], onehot(parsing_labels),
            inpainter_condition(batch))


def run_inpainter(generator: nn.Module, batch: Batch, parsing_labels: torch.Tensor,
                  sample_seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated G, composited G*M + I*(1-M)) for a batch and the parsing to follow
    (labels (B,H,W) — ground truth when training, the parser's argmax when editing — or a (B,20,H,W) map).
    ``sample_seed``: a stochastic inpainter's draw from its prior (None: the prior's mean)."""
    extra = {} if sample_seed is None else {"sample_seed": sample_seed}
    generated = generator(*inpainter_inputs(batch, parsing_labels), **extra)
    return generated, compose(generated, batch["image"], batch["mask"])


def inpainter_discriminator_input(p: Params | InpainterNet, batch: Batch, image: torch.Tensor,
                                  parsing_labels: torch.Tensor) -> torch.Tensor:
    """D input [image (3), hole mask, parsing one-hot (if use_parsing), colour + sketch (if use_sketch_colour)].

    ``image`` is the real image or the composited output; the rest is the same for both."""
    net = _section(p, "inpainter", InpainterNet)
    parts = [image, batch["mask"]]
    if net.use_parsing:
        parts.append(onehot(parsing_labels))
    if net.use_sketch_colour:
        parts += [batch["colour"], batch["sketch"]]
    return torch.cat(parts, dim=1)


# --------------------------------------------------------------- parameter table
SWITCHES: tuple[tuple[str, Any], ...] = (
    ("norm", "spade"), ("norm", "instance"), ("encoder", "gated"), ("encoder", "plain"), ("use_parsing", False),
    ("spectral_norm", False), ("attention", False), ("use_sketch_colour", False),
)


def count_parameters(module: nn.Module) -> int:
    return sum(t.numel() for t in module.parameters())


def inpainter_variants(p: Params) -> list[tuple[str, InpainterNet]]:
    """The configured ablations (that change the inpainter) plus every single switch they do not cover."""
    variants: list[tuple[str, InpainterNet]] = [("default", p.inpainter)]
    for name in p.ablations:
        net = p.variant(name).inpainter
        if net not in [v for _, v in variants]:
            variants.append((name, net))
    for key, value in SWITCHES:
        net = p.inpainter.model_copy(update={key: value})
        if net not in [v for _, v in variants]:
            variants.append((f"{key}={value}", net))
    return variants


def parameter_table(p: Params) -> str:
    """Markdown table of generator / discriminator parameter counts (millions)."""
    rows = [("parser", count_parameters(build_parser(p)), count_parameters(build_parser_discriminator(p)))]
    for name, net in inpainter_variants(p):
        rows.append((f"inpainter {name}", count_parameters(build_inpainter(net)),
                     count_parameters(build_inpainter_discriminator(net))))
    lines = ["| network | G params | D params |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {g / 1e6:.3f} M | {d / 1e6:.3f} M |" for name, g, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the parameter counts of the configured networks.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    print(parameter_table(load_params(args.params)))


if __name__ == "__main__":
    main()
