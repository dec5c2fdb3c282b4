"""Building blocks shared by the generators and discriminators (pure nn.Modules).

Conventions: activations are NCHW float tensors; masks are (B, 1, H, W) with 1 = known/valid
for the encoders (partial / gated convolution) and 1 = hole for the composition helpers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize


# ----------------------------------------------------------------------------- helpers
def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module``'s weight in spectral normalisation (Miyato et al. 2018) when enabled."""
    return parametrizations.spectral_norm(module) if enabled else module


def has_spectral_norm(module: nn.Module) -> bool:
    """True if ``module``'s own weight is spectrally normalised (the only parametrisation used here)."""
    return parametrize.is_parametrized(module, "weight")


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int | None = None,
           dilation: int = 1, spectral_norm: bool = False, bias: bool = True) -> nn.Module:
    """A Conv2d with 'same'-style default padding, optionally spectrally normalised."""
    if padding is None:
        padding = dilation * (kernel_size - 1) // 2
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, bias=bias)
    return maybe_spectral(layer, spectral_norm)


def up_conv(in_channels: int, out_channels: int, spectral_norm: bool = False) -> nn.Module:
    """x2 upsampling by a 4x4 stride-2 transposed convolution (EdgeConnect's decoder)."""
    layer = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
    return maybe_spectral(layer, spectral_norm)


def resize_nearest(condition: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize a conditioning map to ``like``'s spatial size (nearest, as FE-GAN does)."""
    if condition.shape[-2:] == like.shape[-2:]:
        return condition
    return F.interpolate(condition, size=like.shape[-2:], mode="nearest")


def check_divisible(height: int, width: int, factor: int, what: str) -> None:
    """Fail clearly when an input size cannot be downsampled ``factor`` times and restored exactly."""
    if height % factor or width % factor:
        raise ValueError(f"{what}: input size {height}x{width} must be divisible by {factor} "
                         f"(resize or pad the images, e.g. preprocess.height/width to a multiple of {factor})")


# ------------------------------------------------------------------ masked convolutions
class PartialConv2d(nn.Module):
    """Partial convolution (Liu et al. 2018, single-channel mask).

    Only known pixels (mask = 1) enter the sum, which is rescaled by window size / known count;
    a window with no known pixel outputs exactly 0.  Returns the output and the updated mask
    (1 where the window saw at least one known pixel), so masks shrink holes layer by layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride, padding,
                           spectral_norm=spectral_norm, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            # fraction of each window that is known; zero padding counts as unknown
            known = F.avg_pool2d(mask, self.kernel_size, self.stride, self.padding, count_include_pad=True)
            updated = (known > 0).to(x.dtype)
            ratio = torch.where(known > 0, 1.0 / known.clamp_min(1e-12), torch.zeros_like(known))
        # where() rather than x * mask: hole values (even inf/nan) cannot leak in
        raw = self.conv(torch.where(mask > 0, x, torch.zeros_like(x)))
        out = raw * ratio + self.bias.view(1, -1, 1, 1) * updated
        return out, updated


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019, DeepFill v2): LeakyReLU(features) * sigmoid(gate).

    One convolution produces both halves (cheaper than two).  The mask is not propagated: the
    gate learns soft validity; callers feed the mask in as an input channel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.conv = conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return F.leaky_relu(features, 0.2) * torch.sigmoid(gate)


# ------------------------------------------------------------- conditional decoder blocks
class _ModulatedBlock(nn.Module):
    """Shared body of ANL and SPADE blocks: denormalise BN(x) by maps predicted from E, then a residual conv.

    out = x + conv3x3(LeakyReLU_0.2(BN_no_affine(x) * (1 + scale(E)) + shift(E))), E resized nearest.
    """

    bounded_scale: bool

    def __init__(self, channels: int, condition_channels: int, hidden: int = 32, spectral_norm: bool = True) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(conv2d(condition_channels, hidden, 3), nn.ReLU())
        # the scale and shift convs run as one conv with 2C outputs (same maths, one larger op)
        self.to_scale_shift = conv2d(hidden, 2 * channels, 3)
        self.out = conv2d(channels, channels, 3, spectral_norm=spectral_norm)

    def modulation(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(resize_nearest(condition, x))
        scale, shift = self.to_scale_shift(h).chunk(2, dim=1)
        return (torch.sigmoid(scale) if self.bounded_scale else scale), shift

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.modulation(x, condition)
        normalised = self.norm(x) * (1 + scale) + shift
        return x + self.out(F.leaky_relu(normalised, 0.2))


class ANL(_ModulatedBlock):
    """Attention Normalization Layer (FE-GAN; DESIGN.md section 4).

    h = ReLU(conv3x3(E)), alpha = sigmoid(conv3x3(h)), beta = conv3x3(h),
    n = BN_no_affine(x) * (1 + alpha) + beta, out = x + SNconv3x3(LeakyReLU_0.2(n)).
    """

    bounded_scale = True


class SPADEBlock(_ModulatedBlock):
    """SPADE-style denormalisation (Park et al. 2019) with the same conditioning and residual as ANL.

    The one difference from ANL is the unbounded scale gamma = conv3x3(h) instead of a sigmoid
    attention map, so the ANL <-> SPADE ablation isolates that design choice.
    """

    bounded_scale = False


class InstanceNormBlock(nn.Module):
    """Unconditional decoder block: out = x + conv3x3(LeakyReLU_0.2(InstanceNorm_affine(x))).

    The conditioning argument is accepted and ignored (sketch/colour then reach the generator
    only through its guidance encoder).
    """

    def __init__(self, channels: int, condition_channels: int, hidden: int = 32, spectral_norm: bool = True) -> None:
        super().__init__()
        del condition_channels, hidden  # same constructor as the conditional blocks
        self.norm = nn.InstanceNorm2d(channels, affine=True)
        self.out = conv2d(channels, channels, 3, spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.leaky_relu(self.norm(x), 0.2))


DECODER_BLOCKS: dict[str, type[nn.Module]] = {
    "anl": ANL,
    "spade": SPADEBlock,
    "instance": InstanceNormBlock,
}


# ----------------------------------------------------------------------- other blocks
class DilatedResBlock(nn.Module):
    """EdgeConnect residual block: dilated conv3x3 -> IN -> ReLU -> conv3x3 -> IN, plus identity."""

    def __init__(self, channels: int, dilation: int = 2, spectral_norm: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv2d(channels, channels, 3, dilation=dilation, spectral_norm=spectral_norm),
            nn.InstanceNorm2d(channels), nn.ReLU(),
            conv2d(channels, channels, 3, spectral_norm=spectral_norm),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2018; seed 001 eq. 2-10..2-12), BigGAN's pooled form.

    f, g: 1x1 convs to C/reduction channels, h: 1x1 conv to C; s_ij = f(x_i)^T g(x_j),
    beta_j = softmax_i(s_ij), o_j = sum_i beta_ji h(x_i), y = gamma * o + x with gamma starting at 0
    (the block begins as the identity and learns how much non-local context to use).
    As in BigGAN's implementation the attended positions i (f and h) are 2x2 max-pooled, a 4x
    cheaper attention map.  f and g are zero-padded to h's width (dot products unchanged) so the
    fused flash kernel applies (it needs equal head sizes): memory stays linear in pixels.
    """

    def __init__(self, channels: int, reduction: int = 4, spectral_norm: bool = False) -> None:
        super().__init__()
        reduced = max(1, channels // reduction)
        self.f = conv2d(channels, reduced, 1, spectral_norm=spectral_norm)
        self.g = conv2d(channels, reduced, 1, spectral_norm=spectral_norm)
        self.h = conv2d(channels, channels, 1, spectral_norm=spectral_norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, C', H, W) -> (B, 1, N, C)
            t = t.flatten(2).transpose(1, 2).unsqueeze(1)
            return F.pad(t, (0, c - t.shape[-1])) if t.shape[-1] < c else t.contiguous()

        def pooled(t: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(t, 2, ceil_mode=True)

        query, key, value = tokens(self.g(x)), tokens(pooled(self.f(x))), tokens(pooled(self.h(x)))
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        o = attended.squeeze(1).transpose(1, 2).reshape(b, c, height, width)
        return x + self.gamma * o
