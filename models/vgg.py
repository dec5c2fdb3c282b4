"""VGG feature extractors for perceptual / style losses, and the ST-LPIPS distance head.

Two trunks, both taking images in [-1, 1]:
- :func:`antialiased_vgg16`: the ImageNet VGG16 of ST-LPIPS (Ghildyal & Liu 2022, shipped in the
  ``stlpips-pytorch`` wheel): every 2x2 max-pool is a stride-1 2x2 max-pool followed by reflect
  padding 2 and a stride-2 depthwise 3x3 binomial blur ([1,2,1] outer product, buffers ``filt``).
- :func:`vgg19`: torchvision's VGG19 layout (plain stride-2 max-pools).
Parameter names follow the flat ``features.<index>`` numbering of those layouts so the released
state dicts map onto them key by key (the loader lives in ``fashion_edit.pretrained``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POOL = "M"
VGG16_CFG: tuple[int | str, ...] = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL,
                                    512, 512, 512, POOL, 512, 512, 512)
VGG19_CFG: tuple[int | str, ...] = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
                                    512, 512, 512, 512, POOL, 512, 512, 512, 512)
# [-1, 1] input -> ImageNet normalisation: (x - (2*mean - 1)) / (2*std); LPIPS's ScalingLayer constants
IMAGENET_SHIFT = (-0.030, -0.088, -0.188)
IMAGENET_SCALE = (0.458, 0.448, 0.450)
# pix2pixHD VGGLoss layer weights (used by FE-GAN's perceptual loss), shallow to deep
PERCEPTUAL_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect pad 2, depthwise 3x3 binomial blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _make_features(cfg: Sequence[int | str], antialiased: bool) -> tuple[nn.Sequential, dict[str, int]]:
    """Flat VGG trunk plus a map from layer name (e.g. 'relu3_3') to its index in the Sequential."""
    layers: list[nn.Module] = []
    names: dict[str, int] = {}
    channels, block, conv_in_block = 3, 1, 0
    for item in cfg:
        if item == POOL:
            layers += [nn.MaxPool2d(2, stride=1), BlurDownsample(channels)] if antialiased else [nn.MaxPool2d(2, 2)]
            block, conv_in_block = block + 1, 0
            continue
        conv_in_block += 1
        layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
        names[f"relu{block}_{conv_in_block}"] = len(layers) - 1
        channels = int(item)
    return nn.Sequential(*layers), names


class VGGFeatures(nn.Module):
    """A frozen VGG trunk returning named ReLU activations for images in [-1, 1].

    ``perceptual_layers``/``perceptual_weights`` and ``style_layers`` record which activations the
    losses use for this trunk; ``forward`` only runs as deep as the deepest requested layer.
    """

    def __init__(self, cfg: Sequence[int | str], antialiased: bool, perceptual_layers: Sequence[str],
                 style_layers: Sequence[str], name: str) -> None:
        super().__init__()
        self.features, self.layer_index = _make_features(cfg, antialiased)
        self.register_buffer("shift", torch.tensor(IMAGENET_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(IMAGENET_SCALE).view(1, 3, 1, 1))
        unknown = [n for n in (*perceptual_layers, *style_layers) if n not in self.layer_index]
        if unknown:
            raise ValueError(f"{name}: unknown VGG layers {unknown}; known: {sorted(self.layer_index)}")
        self.perceptual_layers = tuple(perceptual_layers)
        self.perceptual_weights = dict(zip(perceptual_layers, PERCEPTUAL_WEIGHTS))
        self.style_layers = tuple(style_layers)
        self.name = name
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = tuple(layers) if layers is not None else tuple(self.layer_index)
        stops = {self.layer_index[n]: n for n in wanted}
        last = max(stops)
        x = (x - self.shift) / self.scale
        out: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in stops:
                out[stops[index]] = x
            if index == last:
                break
        return out


def antialiased_vgg16() -> VGGFeatures:
    """ST-LPIPS's anti-aliased VGG16 (random weights until loaded); perceptual = LPIPS taps,
    style = EdgeConnect's layer choice mapped onto VGG16 (relu2_2, relu3_3, relu4_3, relu5_2)."""
    return VGGFeatures(VGG16_CFG, True, LPIPS_LAYERS, ("relu2_2", "relu3_3", "relu4_3", "relu5_2"),
                       "antialiased VGG16 (ST-LPIPS)")


def vgg19() -> VGGFeatures:
    """torchvision-layout VGG19 (random weights until loaded); perceptual = pix2pixHD's relu*_1,
    style = EdgeConnect's relu2_2, relu3_4, relu4_4, relu5_2."""
    return VGGFeatures(VGG19_CFG, False, ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                       ("relu2_2", "relu3_4", "relu4_4", "relu5_2"), "VGG19 (torchvision layout)")


def _unit_normalise(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class STLPIPS(nn.Module):
    """ST-LPIPS distance: anti-aliased VGG16 activations, channel-unit-normalised, squared difference,
    a learned non-negative 1x1 linear head per layer, spatial mean, summed over the five layers.

    Runs channels_last: on CPU (oneDNN) that is ~25 % faster for this trunk, with distances equal to
    the NCHW ones within float rounding. :meth:`features` and :meth:`distance` split the computation
    so a caller comparing several images with one reference computes the reference's features once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trunk = antialiased_vgg16()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_CHANNELS)
        self.requires_grad_(False)
        self.eval()
        self.to(memory_format=torch.channels_last)  # load_state_dict keeps the parameters' layout

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised activations of images (B,3,H,W) in [-1, 1], one tensor per LPIPS layer."""
        taps = self.trunk(x.contiguous(memory_format=torch.channels_last), LPIPS_LAYERS)
        return [_unit_normalise(taps[name]) for name in LPIPS_LAYERS]

    def distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """Distances (B,) between two outputs of :meth:`features`."""
        total = f0[0].new_zeros(f0[0].shape[0])
        for a, b, lin in zip(f0, f1, self.lins):
            total = total + lin((a - b).pow(2)).mean(dim=(1, 2, 3))
        return total

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Distances (B,) between image batches in [-1, 1] (0 for identical images)."""
        return self.distance(self.features(x0), self.features(x1))
