"""Loss functions of the parser and the inpainter, and the two criteria that weight them.

Discriminator outputs follow models.discriminators: a list over scales of lists of feature maps,
the last map of each scale being the patch logits.  Reductions are means over all elements, so a
masked L1 is mean(|a - b| * w) over the whole tensor (the partial-conv paper's normalisation, which
FE-GAN's lambda defaults assume), not a mean over the masked area.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DOutput = Sequence[Sequence[torch.Tensor]]
GAN_MODES = ("hinge", "lsgan")
FACE_LABEL = 13  # LIP-20 'face'


# --------------------------------------------------------------------------- GAN terms
def _logits(outputs: DOutput) -> list[torch.Tensor]:
    return [scale[-1] for scale in outputs]


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode {mode!r} unknown; choose one of {GAN_MODES}")


def gan_d_loss(real: DOutput, fake: DOutput, mode: str = "hinge") -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator terms (real, fake), each averaged over scales.

    hinge: mean(relu(1 - D(real))), mean(relu(1 + D(fake))); lsgan: mean((D(real) - 1)^2), mean(D(fake)^2).
    """
    _check_mode(mode)
    real_l, fake_l = _logits(real), _logits(fake)
    if mode == "hinge":
        real_terms = [F.relu(1 - r).mean() for r in real_l]
        fake_terms = [F.relu(1 + f).mean() for f in fake_l]
    else:
        real_terms = [(r - 1).pow(2).mean() for r in real_l]
        fake_terms = [f.pow(2).mean() for f in fake_l]
    return torch.stack(real_terms).mean(), torch.stack(fake_terms).mean()


def gan_g_loss(fake: DOutput, mode: str = "hinge") -> torch.Tensor:
    """Generator term averaged over scales: hinge -mean(D(fake)); lsgan mean((D(fake) - 1)^2)."""
    _check_mode(mode)
    logits = _logits(fake)
    terms = [-f.mean() for f in logits] if mode == "hinge" else [(f - 1).pow(2).mean() for f in logits]
    return torch.stack(terms).mean()


def feature_matching_loss(fake: DOutput, real: DOutput) -> torch.Tensor:
    """pix2pixHD/SPADE feature matching: sum over intermediate maps (logits excluded) of
    L1(fake, real.detach()), averaged over scales."""
    per_scale = []
    for fake_maps, real_maps in zip(fake, real):
        pairs = list(zip(fake_maps[:-1], real_maps[:-1]))
        per_scale.append(torch.stack([F.l1_loss(f, r.detach()) for f, r in pairs]).sum())
    return torch.stack(per_scale).mean()


# ----------------------------------------------------------------------- pixel terms
def parsing_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy of logits (B, C, H, W) against integer labels (B, H, W)."""
    return F.cross_entropy(logits, labels.long())


def attribute_regression_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """S2FGAN's ||E(I)Wᵀ - u||² (seed 003) as a mean over the known (finite) targets; 0 when none is known."""
    known = torch.isfinite(target)
    if not known.any():
        return estimate.sum() * 0.0  # keeps the graph (and DDP's gradient bookkeeping) intact
    return F.mse_loss(estimate[known], target[known].to(estimate.dtype))


def orthogonality_loss(directions: torch.Tensor) -> torch.Tensor:
    """S2FGAN's ||WWᵀ - I|| (Frobenius): the k attribute directions stay orthonormal, so moving along one
    leaves the others' estimates unchanged."""
    gram = directions @ directions.t()
    return torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device))


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean(|prediction - target| * weight) over all elements (weight broadcasts over channels)."""
    return ((prediction - target).abs() * weight).mean()


def masked_total_variation(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV restricted to ``weight``: mean |vertical diffs| + mean |horizontal diffs|, a pixel
    pair counting only where both pixels are weighted (weight (B, 1, H, W) in [0, 1])."""
    vertical = (image[:, :, 1:] - image[:, :, :-1]).abs() * (weight[:, :, 1:] * weight[:, :, :-1])
    horizontal = (image[..., 1:] - image[..., :-1]).abs() * (weight[..., 1:] * weight[..., :-1])
    return vertical.mean() + horizontal.mean()


# ---------------------------------------------------------------------- VGG terms
def perceptual_loss(fake: dict[str, torch.Tensor], real: dict[str, torch.Tensor],
                    weights: dict[str, float]) -> torch.Tensor:
    """sum_l w_l * L1(phi_l(fake), phi_l(real)) over the weighted layers (pix2pixHD VGGLoss form)."""
    return sum(w * F.l1_loss(fake[name], real[name].detach()) for name, w in weights.items())  # type: ignore[return-value]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C*H*W (EdgeConnect)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(fake: dict[str, torch.Tensor], real: dict[str, torch.Tensor], layers: Sequence[str]) -> torch.Tensor:
    """sum_l L1(Gram(phi_l(fake)), Gram(phi_l(real))) (EdgeConnect's style loss)."""
    return sum(F.l1_loss(gram_matrix(fake[n]), gram_matrix(real[n].detach())) for n in layers)  # type: ignore[return-value]


def _block(layer: str) -> int:
    """VGG block of a tap name: 'relu3_3' -> 3."""
    return int(layer.removeprefix("relu").split("_")[0])


# ------------------------------------------------------------------------- criteria
class ParserCriterion(nn.Module):
    """Parser objective (FE-GAN): gan * GAN + feat_match * feature matching + ce * cross-entropy.

    Keyword names equal params.yaml's ``parser_loss`` keys, so ``ParserCriterion(**p.parser_loss.model_dump())``
    works.  Every method returns a dict of already *weighted* named terms; training sums them.
    """

    def __init__(self, gan_mode: str = "hinge", gan: float = 1.0, feat_match: float = 10.0, ce: float = 10.0,
                 attribute: float = 1.0, orthogonality: float = 1.0, counterfactual: float = 10.0,
                 kl: float = 1.0) -> None:
        super().__init__()
        _check_mode(gan_mode)
        self.gan_mode = gan_mode
        self.weights = {"gan": gan, "feat_match": feat_match, "ce": ce, "attribute": attribute,
                        "orthogonality": orthogonality, "counterfactual": counterfactual, "kl": kl}

    def generator_losses(self, logits: torch.Tensor, labels: torch.Tensor, d_fake: DOutput | None = None,
                         d_real: DOutput | None = None) -> dict[str, torch.Tensor]:
        """Terms "ce", and when D outputs are given "gan" and (with ``d_real``) "feat_match"."""
        terms = {"ce": self.weights["ce"] * parsing_cross_entropy(logits, labels)}
        if d_fake is not None and self.weights["gan"] > 0:
            terms["gan"] = self.weights["gan"] * gan_g_loss(d_fake, self.gan_mode)
        if d_fake is not None and d_real is not None and self.weights["feat_match"] > 0:
            terms["feat_match"] = self.weights["feat_match"] * feature_matching_loss(d_fake, d_real)
        return terms

    def attribute_losses(self, estimate: torch.Tensor, target: torch.Tensor,
                         directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted "attribute" and "orthogonality" terms of the parser's attribute mapping (seed 003)."""
        terms = {"attribute": self.weights["attribute"] * attribute_regression_loss(estimate, target),
                 "orthogonality": self.weights["orthogonality"] * orthogonality_loss(directions)}
        return {name: value for name, value in terms.items() if self.weights[name] > 0}

    def discriminator_losses(self, d_real: DOutput, d_fake: DOutput) -> dict[str, torch.Tensor]:
        """Unweighted "d_real" and "d_fake" terms (D is trained on the plain GAN objective)."""
        real, fake = gan_d_loss(d_real, d_fake, self.gan_mode)
        return {"d_real": real, "d_fake": fake}


class InpainterCriterion(nn.Module):
    """Inpainter objective, FE-GAN's lambda_1..7: hole L1, foreground (M') L1, face L1, face TV,
    VGG perceptual, Gram style, GAN.

    Keyword names equal params.yaml's ``inpainter_loss`` keys.  ``vgg`` is a frozen
    :class:`models.vgg.VGGFeatures` (needed only when perceptual or style weight > 0); its
    ``perceptual_weights`` / ``style_layers`` choose the layers.  Perceptual and style terms are
    computed on the composited output (known pixels copied), so they judge the hole and its seam.
    """

    def __init__(self, vgg: nn.Module | None = None, gan_mode: str = "hinge", hole: float = 5.0,
                 foreground: float = 1.0, face: float = 50.0, face_tv: float = 0.1, perceptual: float = 0.05,
                 style: float = 200.0, gan: float = 0.001, kl: float = 1.0, face_label: int = FACE_LABEL,
                 vgg_bf16: bool = False, vgg_blocks: int = 5) -> None:
        super().__init__()
        _check_mode(gan_mode)
        if vgg is None and (perceptual > 0 or style > 0):
            raise ValueError("InpainterCriterion: perceptual/style weights > 0 need a VGG feature extractor")
        self.vgg, self.gan_mode, self.face_label, self.vgg_bf16 = vgg, gan_mode, face_label, vgg_bf16
        if vgg is not None:  # the taps of the first vgg_blocks blocks: the trunk stops at the deepest one used
            self.perceptual_weights = {n: w for n, w in vgg.perceptual_weights.items() if _block(n) <= vgg_blocks}
            self.style_layers = tuple(n for n in vgg.style_layers if _block(n) <= vgg_blocks)
        self.weights = {"hole": hole, "foreground": foreground, "face": face, "face_tv": face_tv,
                        "perceptual": perceptual, "style": style, "gan": gan, "kl": kl}

    def _vgg_terms(self, composited: torch.Tensor, image: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.weights
        if self.vgg is None or (w["perceptual"] == 0 and w["style"] == 0):
            return {}
        perceptual = self.perceptual_weights if w["perceptual"] > 0 else {}
        style = self.style_layers if w["style"] > 0 else ()
        layers = tuple(dict.fromkeys((*perceptual, *style)))
        if not layers:
            return {}
        fake = self._features(composited, layers)
        with torch.no_grad():
            real = self._features(image, layers)
        terms = {}
        if perceptual:
            terms["perceptual"] = w["perceptual"] * perceptual_loss(fake, real, perceptual)
        if style:
            terms["style"] = w["style"] * style_loss(fake, real, style)
        return terms

    def _features(self, image: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """VGG activations; with vgg_bf16 the trunk runs under bfloat16 autocast (AMX / AVX-512 BF16
        CPUs run it about twice as fast) and the activations come back as float32 for the losses."""
        if not self.vgg_bf16:
            return self.vgg(image, layers)
        with torch.autocast(image.device.type, dtype=torch.bfloat16):
            features = self.vgg(image, layers)
        return {name: value.float() for name, value in features.items()}

    def generator_losses(self, generated: torch.Tensor, composited: torch.Tensor, image: torch.Tensor,
                         hole_mask: torch.Tensor, known_fg: torch.Tensor, parsing_labels: torch.Tensor,
                         d_fake: DOutput | None = None) -> dict[str, torch.Tensor]:
        """generated G and composited I_out (B,3,H,W); image I; hole_mask M and known_fg M' (B,1,H,W);
        parsing_labels (B,H,W) ground-truth LIP-20 ids (face region); d_fake = D(fake input) or None.

        Zero-weighted terms are left out (so e.g. the no-GAN ablation needs no discriminator)."""
        w = self.weights
        face = (parsing_labels == self.face_label).unsqueeze(1).to(generated.dtype)
        terms = {
            "hole": w["hole"] * masked_l1(generated, image, hole_mask),
            "foreground": w["foreground"] * masked_l1(generated, image, known_fg),
            "face": w["face"] * masked_l1(generated, image, face),
            "face_tv": w["face_tv"] * masked_total_variation(generated, face),
        }
        terms = {name: value for name, value in terms.items() if w[name] > 0}
        terms.update(self._vgg_terms(composited, image))
        if d_fake is not None and w["gan"] > 0:
            terms["gan"] = w["gan"] * gan_g_loss(d_fake, self.gan_mode)
        return terms

    def attribute_losses(self, estimate: torch.Tensor, target: torch.Tensor,
                         directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted "attribute" and "orthogonality" terms of the parser's attribute mapping (seed 003)."""
        terms = {"attribute": self.weights["attribute"] * attribute_regression_loss(estimate, target),
                 "orthogonality": self.weights["orthogonality"] * orthogonality_loss(directions)}
        return {name: value for name, value in terms.items() if self.weights[name] > 0}

    def discriminator_losses(self, d_real: DOutput, d_fake: DOutput) -> dict[str, torch.Tensor]:
        """Unweighted "d_real" and "d_fake" terms."""
        real, fake = gan_d_loss(d_real, d_fake, self.gan_mode)
        return {"d_real": real, "d_fake": fake}


def kl_term(weights: dict[str, float], kl: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The weighted "kl" term of a stochastic generator (seed 001 eq. 2-18: λ_KL · D_KL(posterior || prior));
    empty for a deterministic one."""
    return {} if kl is None else {"kl": weights["kl"] * kl}
