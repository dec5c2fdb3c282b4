"""Each loss against a value computed by hand on a tiny tensor, and the two weighted criteria."""
import math

import pytest
import torch
from torch import nn

from fashion_edit.config import Params
from fashion_edit.hardware import resolve_speed
from fashion_edit.networks import build_inpainter_criterion, build_parser_criterion
from models.losses import (InpainterCriterion, ParserCriterion, feature_matching_loss, gan_d_loss, gan_g_loss,
                           gram_matrix, masked_l1, masked_total_variation, parsing_cross_entropy, perceptual_loss,
                           style_loss)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def d_out(*logits):
    """Single-scale discriminator output whose patch logits are ``logits``."""
    return [[t(*logits)]]


def test_hinge_discriminator_and_generator():
    real, fake = gan_d_loss(d_out(0.5, -2.0), d_out(-0.5, 3.0), "hinge")
    assert real.item() == pytest.approx((0.5 + 3.0) / 2)      # relu(1 - 0.5), relu(1 + 2)
    assert fake.item() == pytest.approx((0.5 + 4.0) / 2)      # relu(1 - 0.5), relu(1 + 3)
    assert gan_g_loss(d_out(-0.5, 3.0), "hinge").item() == pytest.approx(-1.25)


def test_lsgan_discriminator_and_generator():
    real, fake = gan_d_loss(d_out(0.5, 2.0), d_out(-1.0, 3.0), "lsgan")
    assert real.item() == pytest.approx((0.25 + 1.0) / 2)
    assert fake.item() == pytest.approx((1.0 + 9.0) / 2)
    assert gan_g_loss(d_out(-1.0, 3.0), "lsgan").item() == pytest.approx((4.0 + 4.0) / 2)


def test_gan_losses_average_over_scales():
    two_scales = [[t(0.0)], [t(2.0)]]
    assert gan_g_loss(two_scales, "hinge").item() == pytest.approx(-1.0)
    real, _ = gan_d_loss(two_scales, two_scales, "hinge")
    assert real.item() == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="gan_mode 'wgan' unknown"):
        gan_g_loss(two_scales, "wgan")


def test_feature_matching_sums_layers_averages_scales_and_skips_logits():
    fake = [[t(1.0, 2.0), t(0.0), t(100.0)], [t(3.0), t(9.0)]]
    real = [[t(0.0, 0.0), t(1.0), t(-100.0)], [t(1.0), t(-9.0)]]
    # scale 0: mean(|1|,|2|) + |0 - 1| = 1.5 + 1 = 2.5; scale 1: |3 - 1| = 2; logits ignored
    assert feature_matching_loss(fake, real).item() == pytest.approx((2.5 + 2.0) / 2)


def test_feature_matching_does_not_train_on_real_features():
    real = [[t(1.0).requires_grad_(), t(0.0)]]
    fake = [[t(3.0).requires_grad_(), t(0.0)]]
    feature_matching_loss(fake, real).backward()
    assert real[0][0].grad is None and fake[0][0].grad.item() == 1.0


def test_cross_entropy():
    logits = torch.tensor([[[[2.0]], [[0.0]], [[1.0]]]])  # (1, 3, 1, 1)
    expected = -math.log(math.exp(1.0) / (math.exp(2.0) + 1.0 + math.exp(1.0)))
    assert parsing_cross_entropy(logits, torch.tensor([[[2]]])).item() == pytest.approx(expected)


def test_masked_l1_is_a_mean_over_all_elements():
    prediction = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.zeros(1, 1, 2, 2)
    weight = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert masked_l1(prediction, target, weight).item() == pytest.approx((1 + 4) / 4)
    # a one-channel weight broadcasts over three image channels
    rgb = prediction.expand(1, 3, 2, 2)
    assert masked_l1(rgb, torch.zeros(1, 3, 2, 2), weight).item() == pytest.approx(3 * 5 / 12)


def test_masked_total_variation():
    image = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # (1, 1, 2, 3)
    full = torch.ones(1, 1, 2, 3)
    # vertical diffs |2|,|1|,|1| -> mean 4/3; horizontal |1|,|2|,|0|,|0| -> mean 3/4
    assert masked_total_variation(image, full).item() == pytest.approx(4 / 3 + 3 / 4)
    left_column_only = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]])
    # only the vertical pair in column 0 has both pixels weighted: |2 - 0| / 3
    assert masked_total_variation(image, left_column_only).item() == pytest.approx(2 / 3)


def test_gram_matrix_and_style_loss():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, 1, 2)
    gram = gram_matrix(features)
    # F F^T / (C H W) = [[1+4, 3+8], [3+8, 9+16]] / 4
    assert torch.allclose(gram, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    zero = {"a": torch.zeros_like(features)}
    assert style_loss({"a": features}, zero, ["a"]).item() == pytest.approx((5 + 11 + 11 + 25) / 4 / 4)


def test_perceptual_loss_weights_layers():
    fake = {"a": t(1.0, 3.0), "b": t(2.0)}
    real = {"a": t(0.0, 0.0), "b": t(0.0)}
    assert perceptual_loss(fake, real, {"a": 0.5, "b": 2.0}).item() == pytest.approx(0.5 * 2.0 + 2.0 * 2.0)


# --------------------------------------------------------------------------- criteria
def test_parser_criterion_returns_weighted_terms():
    criterion = ParserCriterion("hinge", gan=2.0, feat_match=3.0, ce=4.0)
    logits = torch.tensor([[[[0.0]], [[0.0]]]])  # uniform over 2 classes -> CE = log 2
    fake, real = [[t(1.0), t(-1.0)]], [[t(0.0), t(5.0)]]
    terms = criterion.generator_losses(logits, torch.tensor([[[1]]]), fake, real)
    assert set(terms) == {"ce", "gan", "feat_match"}
    assert terms["ce"].item() == pytest.approx(4.0 * math.log(2))
    assert terms["gan"].item() == pytest.approx(2.0 * 1.0)   # -mean(-1)
    assert terms["feat_match"].item() == pytest.approx(3.0 * 1.0)
    d_terms = criterion.discriminator_losses(real, fake)
    assert d_terms["d_real"].item() == pytest.approx(0.0) and d_terms["d_fake"].item() == pytest.approx(0.0)
    assert set(criterion.generator_losses(logits, torch.tensor([[[1]]]))) == {"ce"}


class ConstantFeatures(nn.Module):
    """A stand-in VGG with one 'layer' equal to the input, so VGG terms are computable by hand."""

    perceptual_layers = ("relu1_1",)
    perceptual_weights = {"relu1_1": 1.0}
    style_layers = ("relu1_1",)

    def forward(self, image, layers):
        return {"relu1_1": image}


def test_inpainter_criterion_returns_weighted_terms():
    criterion = InpainterCriterion(ConstantFeatures(), "hinge", hole=5.0, foreground=1.0, face=50.0, face_tv=0.1,
                                   perceptual=0.05, style=200.0, gan=0.001)
    image = torch.zeros(1, 3, 2, 2)
    generated = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]).expand(1, 3, 2, 2)
    hole = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    known_fg = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    parsing = torch.tensor([[[13, 13], [0, 0]]])  # top row is face
    composited = generated * hole + image * (1 - hole)
    terms = criterion.generator_losses(generated, composited, image, hole, known_fg, parsing, d_out(2.0))
    assert terms["hole"].item() == pytest.approx(5.0 * 3 / 12)       # 3 channels x 1 pixel differ by 1
    assert terms["foreground"].item() == pytest.approx(0.0)
    assert terms["face"].item() == pytest.approx(50.0 * 3 / 12)
    # TV: only the top-row horizontal pair is all-face: |0 - 1| per channel; 3 of 6 horizontal elements
    assert terms["face_tv"].item() == pytest.approx(0.1 * (3 / 6))
    assert terms["perceptual"].item() == pytest.approx(0.05 * 3 / 12)
    # Gram of composited: each channel has one 1 -> every Gram entry 1/(C H W) = 1/12
    assert terms["style"].item() == pytest.approx(200.0 / 12)
    assert terms["gan"].item() == pytest.approx(0.001 * -2.0)


def test_inpainter_criterion_leaves_out_zero_weighted_terms():
    criterion = InpainterCriterion(None, gan=0.0, perceptual=0.0, style=0.0, face_tv=0.0)
    image = torch.zeros(1, 3, 4, 4)
    mask = torch.ones(1, 1, 4, 4)
    terms = criterion.generator_losses(image, image, image, mask, mask, torch.zeros(1, 4, 4, dtype=torch.long),
                                       d_fake=None)
    assert set(terms) == {"hole", "foreground", "face"}


def test_inpainter_criterion_needs_vgg_for_vgg_terms():
    with pytest.raises(ValueError, match="need a VGG"):
        InpainterCriterion(None, perceptual=0.05)


def test_criteria_built_from_params_use_fe_gan_defaults():
    p = Params()
    # FE-GAN's parser weights, the attribute terms' defaults (seed 003's losses, our counterfactual term) and the
    # stochastic completion's KL (seed 001)
    assert build_parser_criterion(p).weights == {"gan": 1.0, "feat_match": 10.0, "ce": 10.0, "attribute": 1.0,
                                                 "orthogonality": 1.0, "counterfactual": 10.0, "kl": 1.0}
    criterion = build_inpainter_criterion(p)
    assert criterion.weights == {"hole": 5.0, "foreground": 1.0, "face": 50.0, "face_tv": 0.1, "perceptual": 0.05,
                                 "style": 200.0, "gan": 0.001, "kl": 1.0}
    assert criterion.vgg is not None and criterion.gan_mode == "hinge"
    assert criterion.vgg_bf16 is resolve_speed("auto", "auto").bf16  # vgg.bf16: auto (tests/test_hardware.py)
