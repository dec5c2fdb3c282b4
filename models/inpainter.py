"""Parsing-aware inpainter (FE-GAN's second stage) and its encoder / decoder variants.

Architecture (DESIGN.md section 4), widths for base b:
- image encoder over the incomplete image masked by the known region 1 - M (FE-GAN: by the composite
  mask M', the known foreground; ``encode_background=False``):
  7x7 -> b, 4x4 s2 -> 2b, 4x4 s2 -> 4b, as partial (mask updated layer by layer), gated or plain convs;
- a parallel guidance encoder (plain convs 3x3 -> b, 4x4 s2 -> 2b, 4x4 s2 -> 4b) over
  [parsing one-hot (if use_parsing), hole mask M, conditioning E (if use_sketch_colour, else noise)];
- concatenation, 1x1 fusion to 4b, dilated residual blocks;
- a decoder with a conditional block (ANL | SPADE | InstanceNorm) at 1/4, 1/2 and full scale,
  optional SAGAN self-attention at 1/4, transposed-conv upsampling, then 7x7 conv + tanh;
- with ``prefill`` (default) the hole is first filled by :func:`models.prefill.parsing_aware_fill`, the
  encoder sees that filled image, and G = coarse fill + 7x7 conv (zero at the start, no spectral norm) instead of
  the tanh output: training refines a parsing-aware fill rather than painting from nothing;
- with ``latent_dim`` > 0 the texture is stochastic (seed 001's E_a / E_ac, models/stochastic.py): a code z from
  a compatibility prior over the visible image and parsing shifts the fused features inside the hole.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.prefill import parsing_aware_fill
from models.stochastic import LatentCompletion
from models.layers import (DECODER_BLOCKS, DilatedResBlock, GatedConv2d, PartialConv2d, SelfAttention,
                           check_divisible, conv2d, up_conv)

CONDITION_CHANNELS = 5  # [noise, colour (3), sketch]
NOISE_ONLY = slice(0, 1)
COLOUR = slice(1, 4)
DOWNSAMPLE_FACTOR = 4


def _encoder_shapes(base: int) -> list[tuple[int, int, int, int, int]]:
    """(in, out, kernel, stride, padding) of the three image-encoder layers, first 'in' filled by the caller."""
    return [(0, base, 7, 1, 3), (base, 2 * base, 4, 2, 1), (2 * base, 4 * base, 4, 2, 1)]


class PartialConvEncoder(nn.Module):
    """Three partial convolutions; the known-region mask shrinks the hole layer by layer."""

    def __init__(self, base: int, spectral_norm: bool) -> None:
        super().__init__()
        shapes = _encoder_shapes(base)
        shapes[0] = (3,) + shapes[0][1:]
        self.layers = nn.ModuleList(PartialConv2d(i, o, k, s, p, spectral_norm) for i, o, k, s, p in shapes)

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        x, mask = image, known
        for layer in self.layers:
            x, mask = layer(x, mask)
            x = F.relu(x)
        return x


class GatedConvEncoder(nn.Module):
    """Three gated convolutions over [image * M', M'] (DeepFill v2 style soft validity)."""

    def __init__(self, base: int, spectral_norm: bool) -> None:
        super().__init__()
        shapes = _encoder_shapes(base)
        shapes[0] = (4,) + shapes[0][1:]
        self.layers = nn.Sequential(*(GatedConv2d(i, o, k, s, p, spectral_norm) for i, o, k, s, p in shapes))

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([image * known, known], dim=1))


class PlainConvEncoder(nn.Module):
    """Three ordinary convolutions over [image * M', M'] (the no-masked-conv baseline)."""

    def __init__(self, base: int, spectral_norm: bool) -> None:
        super().__init__()
        shapes = _encoder_shapes(base)
        shapes[0] = (4,) + shapes[0][1:]
        layers: list[nn.Module] = []
        for i, o, k, s, p in shapes:
            layers += [conv2d(i, o, k, s, p, spectral_norm=spectral_norm), nn.ReLU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([image * known, known], dim=1))


IMAGE_ENCODERS: dict[str, type[nn.Module]] = {
    "partial": PartialConvEncoder,
    "gated": GatedConvEncoder,
    "plain": PlainConvEncoder,
}


class GuidanceEncoder(nn.Module):
    """Plain conv encoder for the parsing map (or, one-stage, just mask + user inputs)."""

    def __init__(self, in_channels: int, base: int, spectral_norm: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv2d(in_channels, base, 3, spectral_norm=spectral_norm), nn.ReLU(),
            conv2d(base, 2 * base, 4, 2, 1, spectral_norm=spectral_norm), nn.ReLU(),
            conv2d(2 * base, 4 * base, 4, 2, 1, spectral_norm=spectral_norm), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ParsingAwareInpainter(nn.Module):
    """FE-GAN-style inpainter; ``forward`` returns the raw tanh output G (compose it with :func:`compose`)."""

    def __init__(self, num_classes: int = 20, base_channels: int = 32, n_res_blocks: int = 8, dilation: int = 2,
                 norm: str = "anl", encoder: str = "partial", use_parsing: bool = True, spectral_norm: bool = True,
                 attention: bool = True, use_sketch_colour: bool = True, encode_background: bool = False,
                 prefill: bool = False, latent_dim: int = 0) -> None:
        super().__init__()
        if norm not in DECODER_BLOCKS:
            raise ValueError(f"inpainter norm {norm!r} unknown; choose one of {sorted(DECODER_BLOCKS)}")
        if encoder not in IMAGE_ENCODERS:
            raise ValueError(f"inpainter encoder {encoder!r} unknown; choose one of {sorted(IMAGE_ENCODERS)}")
        self.num_classes, self.use_parsing, self.use_sketch_colour = num_classes, use_parsing, use_sketch_colour
        self.encode_background, self.prefill = encode_background, prefill
        b, sn = base_channels, spectral_norm
        cond = CONDITION_CHANNELS if use_sketch_colour else 1
        guidance_in = (num_classes if use_parsing else 0) + 1 + cond

        self.image_encoder = IMAGE_ENCODERS[encoder](b, sn)
        self.guidance_encoder = GuidanceEncoder(guidance_in, b, sn)
        self.fuse = nn.Sequential(conv2d(8 * b, 4 * b, 1, spectral_norm=sn), nn.ReLU())
        self.middle = nn.Sequential(*(DilatedResBlock(4 * b, dilation, sn) for _ in range(n_res_blocks)))
        # posterior: the true image in the hole (+ hole, parsing); prior: the incomplete image (+ hole, parsing)
        latent_in = 3 + 1 + (num_classes if use_parsing else 0)
        self.stochastic = LatentCompletion(latent_in, latent_in, 4 * b, latent_dim, stream=1) if latent_dim else None

        block = DECODER_BLOCKS[norm]
        self.decode4 = block(4 * b, cond, spectral_norm=sn)
        self.attention = SelfAttention(4 * b, spectral_norm=sn) if attention else nn.Identity()
        self.up2 = up_conv(4 * b, 2 * b, sn)
        self.decode2 = block(2 * b, cond, spectral_norm=sn)
        self.up1 = up_conv(2 * b, b, sn)
        self.decode1 = block(b, cond, spectral_norm=sn)
        # with prefill, G = coarse fill + to_rgb(x): a plain conv starting at exactly 0 (spectral norm would
        # divide by a zero singular value), so G starts as the coarse fill and training refines it
        self.to_rgb = conv2d(b, 3, 7, spectral_norm=sn and not prefill)
        if prefill:
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)

    def forward(self, incomplete_image: torch.Tensor, known_mask: torch.Tensor, hole_mask: torch.Tensor,
                parsing_onehot: torch.Tensor | None, condition: torch.Tensor, truth: torch.Tensor | None = None,
                sample_seed: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """incomplete_image (B,3,H,W) in [-1,1]; known_mask M' and hole_mask M (B,1,H,W) (the image encoder
        sees 1 - M, or only M' when encode_background is off);
        parsing_onehot (B,C,H,W) (ignored, may be None, when use_parsing is off);
        condition (B,5,H,W) = [noise, colour(3), sketch]. Returns G (B,3,H,W) in [-1,1].
        Stochastic inpainters: ``truth`` (the real image, training) draws z from the posterior and returns
        (G, KL); otherwise z is the prior's mean, or one draw of it with ``sample_seed``."""
        check_divisible(*incomplete_image.shape[-2:], DOWNSAMPLE_FACTOR, "ParsingAwareInpainter")
        if condition.shape[1] != CONDITION_CHANNELS:
            raise ValueError(f"condition must have {CONDITION_CHANNELS} channels [noise, colour, sketch], "
                             f"got {condition.shape[1]}")
        e = condition if self.use_sketch_colour else condition[:, NOISE_ONLY]
        guidance = [hole_mask, e]
        if self.use_parsing:
            if parsing_onehot is None or parsing_onehot.shape[1] != self.num_classes:
                raise ValueError(f"parsing_onehot must be (B,{self.num_classes},H,W) when use_parsing is on")
            guidance.insert(0, parsing_onehot)

        # FE-GAN encodes only the known foreground M' (its photos have plain backgrounds); with a varied
        # background the hole's surroundings are the only clue to what lies behind the figure
        encoded = (1 - hole_mask) if self.encode_background else known_mask
        coarse = None
        if self.prefill:
            coarse = self._coarse_fill(incomplete_image, hole_mask, parsing_onehot, e)
            incomplete_image, encoded = coarse, encoded.clamp_min(hole_mask)  # the hole now holds the coarse fill
        features = torch.cat([self.image_encoder(incomplete_image, encoded),
                              self.guidance_encoder(torch.cat(guidance, dim=1))], dim=1)
        x = self.fuse(features)
        kl = None
        if self.stochastic is not None:
            x, kl = self._shift_by_code(x, incomplete_image, hole_mask, parsing_onehot, truth, sample_seed)
        elif truth is not None:
            raise ValueError("this inpainter is not stochastic (inpainter.latent_dim is 0): it takes no truth")
        x = self.middle(x)
        x = self.attention(self.decode4(x, e))
        x = self.decode2(self.up2(x), e)
        x = self.decode1(self.up1(x), e)
        out = self.to_rgb(F.leaky_relu(x, 0.2))
        generated = torch.tanh(out) if coarse is None else coarse + out
        return generated if truth is None else (generated, kl)

    def _shift_by_code(self, x: torch.Tensor, incomplete_image: torch.Tensor, hole: torch.Tensor,
                       parsing: torch.Tensor | None, truth: torch.Tensor | None,
                       sample_seed: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        context = [hole] + ([parsing] if self.use_parsing else [])
        prior_input = torch.cat([incomplete_image * (1 - hole), *context], dim=1)
        posterior_input = None if truth is None else torch.cat([truth * hole, *context], dim=1)
        z, kl = self.stochastic.code(prior_input, posterior_input, sample_seed)
        return self.stochastic.shift(x, z, hole), kl

    def _coarse_fill(self, image: torch.Tensor, hole: torch.Tensor, parsing_onehot: torch.Tensor | None,
                     e: torch.Tensor) -> torch.Tensor:
        """Parsing-aware push-pull fill (class-agnostic without parsing; no strokes without colour input)."""
        parsing = parsing_onehot if self.use_parsing else torch.ones_like(hole)
        colour = e[:, COLOUR] if self.use_sketch_colour else torch.zeros_like(image)
        return parsing_aware_fill(image, hole, parsing, colour)


def compose(generated: torch.Tensor, image: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
    """I_out = G * M + I * (1 - M).

    For a binary mask and finite G (tanh output) known pixels are bit-exact copies of ``image``:
    G * 0 + I * 1 == I in IEEE arithmetic.
    """
    return generated * hole_mask + image * (1 - hole_mask)
