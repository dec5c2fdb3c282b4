"""FE-GAN's own networks, rebuilt with random weights as the reference for ``bench.bench_networks``.

Built from the layer list in DESIGN.md section 10 (facts from FE-GAN's released code); the
blocks are defined here, not imported from ``models``, so a change to our networks can never
change the reference.

- :class:`FEGANInpainterG`, the stage-II generator: 414.49 GFLOP forward at 256x256, batch 1
  (``torch.utils.flop_counter`` convention: 2 FLOP per multiply-accumulate; DESIGN: 414.5).
  The image encoder's partial convolutions use a mask with as many channels as their input
  (NVIDIA's ``multi_channel`` partial conv) and update it with an all-ones convolution of the
  layer's full shape: that mask convolution costs as much as the feature convolution (9.8 of
  the 414.5 GFLOP); with a 1-channel mask the total would be 404.7, so this is FE-GAN's form.
  42.81 M trainable parameters (DESIGN: 42.9).  The FLOPs match exactly, so no conv is missing:
  the 0.09 M gap is FLOP-free, e.g. the spectral-norm u/v vectors (0.11 M) of SPADE's default
  ``spectralinstance`` G norm counted as parameters, or instance-norm affines (0.02 M).
- :class:`FEGANInpainterD`: spectral-norm PatchGAN, 32 input channels (see
  :func:`inpainter_discriminator_input`).
- :class:`FEGANParserG`: pix2pixHD's global generator (ngf 64, 4 downsamplings, 9 residual
  blocks at 1024 channels, instance norm), 26 -> 20 channels, 182.6 M parameters; its D is
  pix2pixHD's multi-scale D (``models.discriminators.MultiScaleDiscriminator``, width 64).

:func:`inpainter_reference_step` / :func:`parser_reference_step` build one full training step
(G forward, D on real and fake, every loss term of our criteria, backward, Adam for G and D)
with the same structure and the same loss modules as ``bench_networks``' steps of our networks.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from fashion_edit.config import Params
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.networks import (build_inpainter_criterion, count_parameters, build_parser_criterion, incomplete_image,
                                   inpainter_condition, onehot, parser_discriminator_input, parser_input)
from models.discriminators import MultiScaleDiscriminator

Batch = dict[str, torch.Tensor]
Step = Callable[[], None]

IMAGE_CHANNELS = 3
CONDITION_CHANNELS = 5      # ANL conditioning E = [noise, colour (3), sketch]
ANL_HIDDEN = 128
PARSER_IN_CHANNELS = 26     # [incomplete parsing one-hot (20), mask, sketch, noise, colour (3)]
# D input: real or generated image (3) + incomplete image (3) + hole mask (1) + parsing (20) + E (5)
INPAINTER_D_CHANNELS = 2 * IMAGE_CHANNELS + 1 + NUM_CLASSES + CONDITION_CHANNELS
PARSER_D_CHANNELS = PARSER_IN_CHANNELS + NUM_CLASSES
PARSER_D_WIDTH, PARSER_D_LAYERS, PARSER_D_SCALES = 64, 3, 2


# ------------------------------------------------------------------------------ blocks
class PartialConv(nn.Module):
    """Partial convolution with a mask shaped like its input (1 = known), NVIDIA's multi-channel form.

    out = conv(x * m) * (k*k*C_in / sum(m over window)) + bias where the window saw a known
    value, else 0; the new mask (C_out channels) is 1 where the window saw a known value.  The
    window sums come from an all-ones convolution of the layer's full shape, as in FE-GAN.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("ones", torch.ones(out_channels, in_channels, kernel_size, kernel_size),
                             persistent=False)
        self.window = in_channels * kernel_size * kernel_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            known = F.conv2d(mask, self.ones, stride=self.conv.stride, padding=self.conv.padding)
            updated = (known > 0).to(x.dtype)
            ratio = self.window / known.clamp_min(1.0) * updated
        out = self.conv(x * mask) * ratio + self.bias.view(1, -1, 1, 1)
        return out * updated, updated


class ANLBlock(nn.Module):
    """FE-GAN's attention normalisation layer.

    h = ReLU(conv3x3(E)), alpha = sigmoid(conv3x3(h)), beta = conv3x3(h),
    n = BN_no_affine(x) * (1 + alpha) + beta, out = x + SNconv3x3(LeakyReLU_0.2(n)); E resized nearest.
    """

    def __init__(self, channels: int, condition_channels: int = CONDITION_CHANNELS, hidden: int = ANL_HIDDEN) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Conv2d(condition_channels, hidden, 3, padding=1)
        self.alpha = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)
        self.out = parametrizations.spectral_norm(nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        condition = F.interpolate(condition, size=x.shape[-2:], mode="nearest")
        h = F.relu(self.shared(condition))
        normalised = self.norm(x) * (1 + torch.sigmoid(self.alpha(h))) + self.beta(h)
        return x + self.out(F.leaky_relu(normalised, 0.2))


class ResidualBlock(nn.Module):
    """reflect pad, conv3x3 (dilated), IN, ReLU, reflect pad, conv3x3, IN, plus identity."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(dilation), nn.Conv2d(channels, channels, 3, dilation=dilation),
            nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _conv_in_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
            nn.InstanceNorm2d(out_channels), nn.ReLU()]


def _up_in_relu(in_channels: int, out_channels: int, kernel_size: int = 4, output_padding: int = 0) -> nn.Sequential:
    padding = 1 if kernel_size == 4 else kernel_size // 2
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, padding, output_padding),
                         nn.InstanceNorm2d(out_channels), nn.ReLU())


# ------------------------------------------------------------------------- inpainter
class FEGANInpainterG(nn.Module):
    """FE-GAN stage II: partial-conv image encoder + parsing encoder, 8 dilated residual blocks at
    512, a 3x3 conv to 256 and an ANL decoder.  forward(image, known_mask, parsing, condition) -> image."""

    def __init__(self, num_classes: int = NUM_CLASSES, n_res_blocks: int = 8, dilation: int = 2) -> None:
        super().__init__()
        self.image_pad = nn.ReflectionPad2d(3)
        self.image_encoder = nn.ModuleList([PartialConv(IMAGE_CHANNELS, 64, 7), PartialConv(64, 128, 4, 2, 1),
                                            PartialConv(128, 256, 4, 2, 1)])
        self.image_norms = nn.ModuleList(nn.InstanceNorm2d(c) for c in (64, 128, 256))
        self.parsing_encoder = nn.Sequential(nn.ReflectionPad2d(3), *_conv_in_relu(num_classes, 64, 7),
                                             *_conv_in_relu(64, 128, 4, 2, 1), *_conv_in_relu(128, 256, 4, 2, 1))
        self.middle = nn.Sequential(*(ResidualBlock(512, dilation) for _ in range(n_res_blocks)),
                                    nn.Conv2d(512, 256, 3, padding=1), nn.InstanceNorm2d(256))
        self.anls = nn.ModuleList(ANLBlock(c) for c in (256, 128, 64))
        self.ups = nn.ModuleList([_up_in_relu(256, 128), _up_in_relu(128, 64)])
        self.to_image = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, IMAGE_CHANNELS, 7), nn.Tanh())

    def encode_image(self, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        x = self.image_pad(image)
        mask = self.image_pad(known.expand_as(image))
        for layer, norm in zip(self.image_encoder, self.image_norms):
            x, mask = layer(x, mask)
            x = F.relu(norm(x))
        return x

    def forward(self, image: torch.Tensor, known: torch.Tensor, parsing: torch.Tensor,
                condition: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.encode_image(image, known), self.parsing_encoder(parsing)], dim=1)
        x = self.middle(x)
        for index, anl in enumerate(self.anls):
            x = anl(x, condition)
            if index < len(self.ups):
                x = self.ups[index](x)
        return self.to_image(x)


class FEGANInpainterD(nn.Module):
    """Spectral-norm PatchGAN: 4x4 convs 32 -> 64 s2 -> 128 s2 -> 256 s2 -> 512 s1 -> 1 s1, LeakyReLU 0.2.

    Returns ``[[features..., logits]]`` (one scale), the layout our criteria read."""

    def __init__(self, in_channels: int = INPAINTER_D_CHANNELS) -> None:
        super().__init__()
        widths, strides = (in_channels, 64, 128, 256, 512, 1), (2, 2, 2, 1, 1)
        self.layers = nn.ModuleList(
            parametrizations.spectral_norm(nn.Conv2d(i, o, 4, s, 2)) for i, o, s in zip(widths, widths[1:], strides))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        features = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.leaky_relu(x, 0.2)
            features.append(x)
        return [features]


def inpainter_forward(generator: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated, composited) for a dataset batch; G sees the known pixels (mask 1 = known)."""
    generated = generator(incomplete_image(batch), 1 - batch["mask"], onehot(batch["parsing"]),
                          inpainter_condition(batch))
    mask = batch["mask"]
    return generated, generated * mask + batch["image"] * (1 - mask)


def inpainter_discriminator_input(batch: Batch, image: torch.Tensor) -> torch.Tensor:
    """[image (3), incomplete image (3), hole mask (1), parsing one-hot (20), condition E (5)] = 32 channels."""
    return torch.cat([image, incomplete_image(batch), batch["mask"], onehot(batch["parsing"]),
                      inpainter_condition(batch)], dim=1)


# ---------------------------------------------------------------------------- parser
class FEGANParserG(nn.Module):
    """pix2pixHD global generator: reflect pad 3 + conv 7x7 -> 64, four 3x3 s2 convs to 1024, 9
    residual blocks at 1024, four 3x3 s2 transposed convs back to 64, reflect pad 3 + conv 7x7 ->
    20 logits (no tanh: the parser's output is a parsing map); instance norm, ReLU."""

    def __init__(self, in_channels: int = PARSER_IN_CHANNELS, out_channels: int = NUM_CLASSES, width: int = 64,
                 n_downsample: int = 4, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *_conv_in_relu(in_channels, width, 7)]
        for index in range(n_downsample):
            layers += _conv_in_relu(width << index, width << (index + 1), 3, 2, 1)
        deepest = width << n_downsample
        layers += [ResidualBlock(deepest) for _ in range(n_blocks)]
        for index in range(n_downsample, 0, -1):
            layers.append(_up_in_relu(width << index, width << (index - 1), 3, output_padding=1))
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_parser_reference_discriminator() -> MultiScaleDiscriminator:
    """pix2pixHD's multi-scale D on [parser input (26), parsing (20)]: width 64, 3 layers, 2 scales."""
    return MultiScaleDiscriminator(PARSER_D_CHANNELS, PARSER_D_WIDTH, PARSER_D_LAYERS, PARSER_D_SCALES)


# ----------------------------------------------------------------------- train steps
def _adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.9))


def gan_step(generate: Callable, d_terms: Callable, g_terms: Callable, generator: nn.Module,
             discriminator: nn.Module) -> Step:
    """One D step then one G step on a shared generator forward (the training loop's order)."""
    opt_g, opt_d = _adam(generator, 1e-4), _adam(discriminator, 4e-4)

    def step() -> None:
        generated = generate()
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms(generated).values()).backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        sum(g_terms(generated).values()).backward()
        opt_g.step()
        discriminator.requires_grad_(True)
    return step


def inpainter_reference_step(p: Params, batch: Batch, memory_format: torch.memory_format = torch.contiguous_format,
                             generator: nn.Module | None = None, discriminator: nn.Module | None = None,
                             ) -> tuple[dict[str, Step], int]:
    """FE-GAN inpainter training step with our inpainter criterion (L1 terms, VGG perceptual + style, hinge GAN).

    ``generator`` / ``discriminator``: pass modules to inspect them afterwards (default: new ones)."""
    generator = (generator or FEGANInpainterG()).to(memory_format=memory_format)
    discriminator = (discriminator or FEGANInpainterD()).to(memory_format=memory_format)
    criterion = build_inpainter_criterion(p).to(memory_format=memory_format)
    labels = batch["parsing"]

    def generate():
        return inpainter_forward(generator, batch)

    def d_terms(out):
        real = discriminator(inpainter_discriminator_input(batch, batch["image"]))
        fake = discriminator(inpainter_discriminator_input(batch, out[1].detach()))
        return criterion.discriminator_losses(real, fake)

    def g_terms(out):
        generated, composited = out
        fake = discriminator(inpainter_discriminator_input(batch, composited))
        return criterion.generator_losses(generated, composited, batch["image"], batch["mask"], batch["known_fg"],
                                          labels, fake)
    return {"step": gan_step(generate, d_terms, g_terms, generator, discriminator)}, count_parameters(generator)


def parser_gan_step(p: Params, batch: Batch, generator: nn.Module, discriminator: nn.Module) -> Step:
    """A parser training step (cross-entropy, hinge GAN, feature matching) for any parser G and D pair."""
    criterion = build_parser_criterion(p)
    x = parser_input(batch, getattr(generator, "label_strokes", False))  # FE-GAN's parser has none

    def generate():
        return generator(x)

    def d_terms(logits):
        real = discriminator(parser_discriminator_input(x, batch["parsing"]))
        fake = discriminator(parser_discriminator_input(x, logits.detach().softmax(1)))
        return criterion.discriminator_losses(real, fake)

    def g_terms(logits):
        real = discriminator(parser_discriminator_input(x, batch["parsing"]))
        fake = discriminator(parser_discriminator_input(x, logits.softmax(1)))
        return criterion.generator_losses(logits, batch["parsing"], fake, real)
    return gan_step(generate, d_terms, g_terms, generator, discriminator)


def parser_reference_step(p: Params, batch: Batch, memory_format: torch.memory_format = torch.contiguous_format,
                          generator: nn.Module | None = None, discriminator: nn.Module | None = None,
                          ) -> tuple[dict[str, Step], int]:
    """FE-GAN parser training step with our parser criterion (cross-entropy, hinge GAN, feature matching)."""
    generator = (generator or FEGANParserG()).to(memory_format=memory_format)
    discriminator = (discriminator or build_parser_reference_discriminator()).to(memory_format=memory_format)
    return {"step": parser_gan_step(p, batch, generator, discriminator)}, count_parameters(generator)


REFERENCE_STEPS = {"parser": parser_reference_step, "inpainter": inpainter_reference_step}


def forward_gflop(module: nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOP of one forward (FlopCounterMode: 2 FLOP per multiply-accumulate; convs and matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() / 1e9


def inpainter_g_gflop(size: int = 256, device: str = "meta") -> float:
    """Forward GFLOP of :class:`FEGANInpainterG` on one size x size image (meta device: no compute)."""
    with torch.device(device):
        generator = FEGANInpainterG()
        shape = (1, 1, size, size)
        inputs = (torch.zeros(1, IMAGE_CHANNELS, size, size), torch.ones(shape),
                  torch.zeros(1, NUM_CLASSES, size, size), torch.zeros(1, CONDITION_CHANNELS, size, size))
    return forward_gflop(generator, *inputs)
