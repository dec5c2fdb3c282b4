"""PatchGAN discriminators that also return their intermediate features (for feature matching).

Output convention (both classes): a list over scales of lists of feature maps, the last map of
each scale being the patch logits; the single-scale discriminator returns a 1-element list.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import SelfAttention, conv2d

MAX_CHANNELS = 512


class NLayerDiscriminator(nn.Module):
    """pix2pixHD PatchGAN: ``n_layers`` stride-2 4x4 convs, one stride-1 conv, a 1-channel conv.

    Spectral norm + instance norm (as in SPADE's discriminator, which FE-GAN reuses), LeakyReLU 0.2.
    """

    def __init__(self, in_channels: int, base_channels: int = 32, n_layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(conv2d(in_channels, base_channels, 4, 2, 2, spectral_norm=True),
                                                 nn.LeakyReLU(0.2))]
        width = base_channels
        for index in range(1, n_layers + 1):
            stride = 2 if index < n_layers else 1
            new_width = min(width * 2, MAX_CHANNELS)
            blocks.append(nn.Sequential(conv2d(width, new_width, 4, stride, 2, spectral_norm=True),
                                        nn.InstanceNorm2d(new_width), nn.LeakyReLU(0.2)))
            width = new_width
        blocks.append(conv2d(width, 1, 4, 1, 2, spectral_norm=True))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD multi-scale discriminator: the same PatchGAN on the input and its 2x, 4x... average-pooled copies."""

    def __init__(self, in_channels: int, base_channels: int = 32, n_layers: int = 3, num_scales: int = 2) -> None:
        super().__init__()
        self.scales = nn.ModuleList(NLayerDiscriminator(in_channels, base_channels, n_layers)
                                    for _ in range(num_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class PatchDiscriminator(nn.Module):
    """EdgeConnect's 5-layer PatchGAN: 4x4 convs with strides 2, 2, 2, 1, 1, LeakyReLU 0.2, no norm.

    Optional spectral norm on every conv and a SAGAN self-attention block after the third layer
    (seed 001 puts the discriminator's attention there).
    """

    def __init__(self, in_channels: int, base_channels: int = 32, spectral_norm: bool = True,
                 attention: bool = True) -> None:
        super().__init__()
        b, sn = base_channels, spectral_norm
        widths = [in_channels, b, 2 * b, 4 * b, 8 * b]
        strides = [2, 2, 2, 1]
        blocks: list[nn.Module] = []
        for index, stride in enumerate(strides):
            layers: list[nn.Module] = [conv2d(widths[index], widths[index + 1], 4, stride, 1, spectral_norm=sn,
                                              bias=not sn), nn.LeakyReLU(0.2)]
            if attention and index == 2:
                layers.append(SelfAttention(widths[index + 1], spectral_norm=sn))
            blocks.append(nn.Sequential(*layers))
        blocks.append(conv2d(widths[-1], 1, 4, 1, 1, spectral_norm=sn, bias=not sn))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return [features]
