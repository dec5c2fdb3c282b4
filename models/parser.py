"""Free-form parsing network (FE-GAN's first stage): completes the parsing map inside the hole.

pix2pixHD-style global generator: 3x3 stem conv -> ``n_downsample`` stride-2 convs (channels
doubling) -> residual blocks -> as many transposed-conv upsamplings -> 3x3 conv to class logits.
Instance normalisation and ReLU throughout (pix2pixHD's choices). With ``prefill`` (default) the
network predicts a residual on the log of the known parsing's push-pull fill (models/prefill.py), so an
untrained parser already continues the garments around the hole and training refines the boundaries.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers import check_divisible, conv2d, up_conv
from models.prefill import push_pull

PARSER_IN_CHANNELS = 26  # one-hot incomplete parsing (20) + mask + sketch + noise + colour (3)
# with prefill, the prior's probabilities are floored here before the log (a class absent nearby stays reachable)
PRIOR_FLOOR = 1e-3
# pix2pixHD uses 7x7 at full resolution; those two convs were 40 % of the parser's FLOPs (and run at
# poor CPU efficiency with 26 / 20 channels), while the downsampling path already gives a wide view
STEM_KERNEL = 3


def _norm_relu(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.ReLU()]


class ResBlock(nn.Module):
    """conv3x3 -> IN -> ReLU -> conv3x3 -> IN, plus identity (pix2pixHD ResnetBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv2d(channels, channels, 3), *_norm_relu(channels),
                                  conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FreeFormParser(nn.Module):
    """Maps the 26-channel parser input to per-pixel logits over ``num_classes`` parsing labels."""

    def __init__(self, in_channels: int = PARSER_IN_CHANNELS, num_classes: int = 20, base_channels: int = 32,
                 n_downsample: int = 3, n_res_blocks: int = 4, prefill: bool = False) -> None:
        super().__init__()
        self.in_channels, self.downsample_factor = in_channels, 2 ** n_downsample
        self.num_classes = num_classes
        self.prefill = prefill
        widths = [base_channels * 2 ** i for i in range(n_downsample + 1)]
        layers: list[nn.Module] = [conv2d(in_channels, widths[0], STEM_KERNEL), *_norm_relu(widths[0])]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [conv2d(w_in, w_out, 3, stride=2), *_norm_relu(w_out)]
        layers += [ResBlock(widths[-1]) for _ in range(n_res_blocks)]
        for w_in, w_out in zip(widths[:0:-1], widths[-2::-1]):
            layers += [up_conv(w_in, w_out), *_norm_relu(w_out)]
        head = conv2d(widths[0], num_classes, STEM_KERNEL)
        if prefill:  # logits = log(push-pull fill of the known parsing) + network, which starts at exactly 0
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        layers.append(head)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 26, H, W) -> logits (B, num_classes, H, W); H and W divisible by 2**n_downsample."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"FreeFormParser expects {self.in_channels} input channels, got {x.shape[1]}")
        check_divisible(*x.shape[-2:], self.downsample_factor, "FreeFormParser")
        out = self.net(x)
        return self.prior_logits(x) + out if self.prefill else out

    def prior_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the known parsing's push-pull fill: inside the hole, the mix of classes around it."""
        known_onehot, hole = x[:, :self.num_classes], x[:, self.num_classes:self.num_classes + 1]
        filled, _ = push_pull(known_onehot * (1 - hole), 1 - hole)
        return filled.clamp_min(PRIOR_FLOOR).log()
