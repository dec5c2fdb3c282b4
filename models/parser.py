"""Free-form parsing network (FE-GAN's first stage): completes the parsing map inside the hole.

pix2pixHD-style global generator: 3x3 stem conv -> ``n_downsample`` stride-2 convs (channels
doubling) -> residual blocks -> as many transposed-conv upsamplings -> 3x3 conv to class logits.
Instance normalisation and ReLU throughout (pix2pixHD's choices). With ``prefill`` (default) the
network predicts a residual on the log of the known parsing's push-pull fill (models/prefill.py), so an
untrained parser already continues the garments around the hole and training refines the boundaries.

With ``attributes`` = k > 0 the bottleneck carries S2FGAN's attribute mapping (seed 003, eq. 6): k
directions W (k x C) in the latent space, a code e = the mean bottleneck feature over the hole, the
attribute estimate e Wᵀ, and an edit that moves the hole's features along W. The shift is added only
inside the (downsampled) hole: a spatially constant shift would be erased by the next instance norm,
and the hole is the region whose code the edit changes, so e moves by exactly the requested amount.

With ``label_strokes`` the input gains ``num_classes`` channels: strokes painted in the class the user wants
there (one-hot, zero off the strokes), which a category swap (issue 14, seed 002) uses to ask for trousers
where the skirt was. With ``latent_dim`` > 0 the completion is stochastic (seed 001, models/stochastic.py): a
code z drawn from a compatibility prior over the visible outfit shifts the hole's bottleneck features.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.layers import check_divisible, conv2d, up_conv
from models.prefill import push_pull
from models.stochastic import LatentCompletion

PARSER_IN_CHANNELS = 26  # one-hot incomplete parsing (20) + mask + sketch + noise + colour (3) [+ label strokes (20)]
# with prefill, the prior's probabilities are floored here before the log (a class absent nearby stays reachable)
PRIOR_FLOOR = 1e-3
# a label-stroke pixel counts as this many known pixels in the prior's fill: strokes are a few pixels wide, and
# with weight 1 the hole's border outvoted them (swap-region IoU of the fill's target class with the truth on the
# synthetic swap pairs: 0.39 at 1, 0.46 at 4, 0.48 at 16, 0 without strokes)
LABEL_STROKE_WEIGHT = 4.0
# the attribute code is the hole's mean feature along W divided by this gain, and an edit moves the features by
# the gain times the change: with unit directions in a wide bottleneck an unscaled move of 0.5 changed each
# channel by ~0.04, too little for the decoder to learn to follow in a short budget
ATTRIBUTE_GAIN = 8.0
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
    """Maps the parser input (26 channels, + ``num_classes`` with label strokes) to per-pixel logits over
    ``num_classes`` parsing labels."""

    def __init__(self, in_channels: int = PARSER_IN_CHANNELS, num_classes: int = 20, base_channels: int = 32,
                 n_downsample: int = 3, n_res_blocks: int = 4, prefill: bool = False, attributes: int = 0,
                 label_strokes: bool = False, latent_dim: int = 0) -> None:
        super().__init__()
        self.label_strokes = label_strokes
        in_channels += num_classes if label_strokes else 0
        self.in_channels, self.downsample_factor = in_channels, 2 ** n_downsample
        self.num_classes = num_classes
        self.prefill = prefill
        widths = [base_channels * 2 ** i for i in range(n_downsample + 1)]
        layers: list[nn.Module] = [conv2d(in_channels, widths[0], STEM_KERNEL), *_norm_relu(widths[0])]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [conv2d(w_in, w_out, 3, stride=2), *_norm_relu(w_out)]
        self._bottleneck = len(layers)  # index in self.net where the latent code is read and shifted
        layers += [ResBlock(widths[-1]) for _ in range(n_res_blocks)]
        for w_in, w_out in zip(widths[:0:-1], widths[-2::-1]):
            layers += [up_conv(w_in, w_out), *_norm_relu(w_out)]
        head = conv2d(widths[0], num_classes, STEM_KERNEL)
        if prefill:  # logits = log(push-pull fill of the known parsing) + network, which starts at exactly 0
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        layers.append(head)
        self.net = nn.Sequential(*layers)
        self.attributes = attributes
        if attributes:
            if attributes > widths[-1]:
                raise ValueError(f"{attributes} attribute directions need at least as many bottleneck channels, "
                                 f"got {widths[-1]}")
            self.directions = nn.Parameter(nn.init.orthogonal_(torch.empty(attributes, widths[-1])))
        # posterior: the true parsing inside the hole and the hole; prior: the parser's own input
        self.stochastic = (LatentCompletion(num_classes + 1, in_channels, widths[-1], latent_dim)
                           if latent_dim else None)

    def forward(self, x: torch.Tensor, attribute_target: torch.Tensor | None = None,
                return_attribute_code: bool = False, truth: torch.Tensor | None = None,
                sample_seed: int | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """x (B, in_channels, H, W) -> logits (B, num_classes, H, W); H and W divisible by 2**n_downsample.

        ``attribute_target`` (B, k): the attribute values the completion should have; the hole's code
        is moved along W until its estimate equals them (NaN entries: left as estimated).
        ``return_attribute_code``: also return the estimate e Wᵀ (B, k) before the move (training's loss).
        Stochastic parsers: ``truth`` (B, num_classes, H, W) one-hot of the true parsing (training) draws z from
        the posterior and also returns the KL term (last); otherwise z comes from the prior, its mean or, with
        ``sample_seed``, one seeded draw. Returns logits, or (logits[, code][, kl])."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"FreeFormParser expects {self.in_channels} input channels, got {x.shape[1]}")
        check_divisible(*x.shape[-2:], self.downsample_factor, "FreeFormParser")
        if not self.attributes and (attribute_target is not None or return_attribute_code):
            raise ValueError("this parser was built without attributes (parser.attributes is empty)")
        if self.stochastic is None and truth is not None:
            raise ValueError("this parser is not stochastic (parser.latent_dim is 0): it takes no truth")
        hole_full = x[:, self.num_classes:self.num_classes + 1]
        features = self.net[:self._bottleneck](x)
        code = kl = None
        if self.attributes:
            features, code = self._attribute_shift(features, hole_full, attribute_target)
        if self.stochastic is not None:
            posterior_input = None if truth is None else torch.cat([truth * hole_full, hole_full], dim=1)
            z, kl = self.stochastic.code(x, posterior_input, sample_seed)
            features = self.stochastic.shift(features, z, hole_full)
        out = self.net[self._bottleneck:](features)
        logits = self.prior_logits(x) + out if self.prefill else out
        extras = ([code] if return_attribute_code else []) + ([kl] if truth is not None else [])
        return (logits, *extras) if extras else logits

    def _attribute_shift(self, features: torch.Tensor, hole_full: torch.Tensor,
                         target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        hole = F.adaptive_avg_pool2d(hole_full, features.shape[-2:])
        mean = (features * hole).sum((2, 3)) / hole.sum((2, 3)).clamp_min(1e-6)  # (B, C) over the hole
        code = mean @ self.directions.t() / ATTRIBUTE_GAIN
        if target is not None:
            if target.shape != code.shape:
                raise ValueError(f"attribute_target must be (B, {self.attributes}), got {tuple(target.shape)}")
            # the estimate is detached: the decoder learns to read the code, the loss trains the estimate
            step = torch.nan_to_num(target.to(code.dtype) - code.detach(), nan=0.0)
            features = features + ATTRIBUTE_GAIN * (step @ self.directions)[:, :, None, None] * hole
        return features, code

    def prior_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the known parsing's push-pull fill: inside the hole, the mix of classes around it. Label strokes
        are samples of their class inside the hole (weighted by LABEL_STROKE_WEIGHT), so the fill already grows
        the class a swap asks for from its strokes and the network refines its outline."""
        known_onehot, hole = x[:, :self.num_classes], x[:, self.num_classes:self.num_classes + 1]
        values, weights = known_onehot * (1 - hole), 1 - hole
        if self.label_strokes:
            strokes = x[:, PARSER_IN_CHANNELS:PARSER_IN_CHANNELS + self.num_classes] * hole
            values, weights = values + strokes, weights + LABEL_STROKE_WEIGHT * strokes.sum(dim=1, keepdim=True)
        filled, _ = push_pull(values, weights)
        return filled.clamp_min(PRIOR_FLOOR).log()
