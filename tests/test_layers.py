"""Building blocks: partial/gated convs, ANL/SPADE/IN decoder blocks, self-attention, spectral norm."""
import pytest
import torch
import torch.nn.functional as F

from models.layers import (ANL, DECODER_BLOCKS, DilatedResBlock, GatedConv2d, InstanceNormBlock, PartialConv2d,
                           SelfAttention, SPADEBlock, check_divisible, conv2d, has_spectral_norm, resize_nearest)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _hole_mask(b=2, h=16, w=16):
    known = torch.ones(b, 1, h, w)
    known[:, :, 4:12, 5:11] = 0
    return known


def test_partial_conv_ignores_pixels_inside_the_hole():
    layer = PartialConv2d(3, 8, 3, padding=1)
    known = _hole_mask()
    x = torch.randn(2, 3, 16, 16)
    changed = torch.where(known > 0, x, torch.randn_like(x) * 100)
    changed[0, 0, 6, 6] = float("nan")  # not even a nan in the hole leaks out
    out_a, mask_a = layer(x, known)
    out_b, mask_b = layer(changed, known)
    assert torch.equal(out_a, out_b) and torch.equal(mask_a, mask_b)


def test_partial_conv_shrinks_the_hole_and_zeroes_unseen_windows():
    layer = PartialConv2d(1, 1, 3, padding=1)
    known = _hole_mask(1)
    out, updated = layer(torch.randn(1, 1, 16, 16), known)
    # a 3x3 window reaches one pixel into the hole from each side
    assert updated.sum() > known.sum()
    assert updated[0, 0, 4, 5] == 1 and updated[0, 0, 7, 7] == 0
    assert torch.all(out[updated == 0] == 0)


def test_partial_conv_renormalises_by_the_known_fraction():
    layer = PartialConv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.bias.fill_(0.5)
    x = torch.ones(1, 1, 5, 5)
    known = torch.ones(1, 1, 5, 5)
    known[0, 0, :, :2] = 0  # left two columns unknown
    out, _ = layer(x, known)
    # window centred at column 2 sees 3 known of 9 pixels: sum 3 * 9/3 = 9, + bias
    assert out[0, 0, 2, 2].item() == pytest.approx(9.5)
    # interior fully-known window: the plain conv result
    assert out[0, 0, 2, 3].item() == pytest.approx(9.5)
    # a window with no known pixel outputs exactly 0 (bias too)
    assert out[0, 0, 2, 0].item() == 0


def test_gated_conv_shape_and_gate_range():
    layer = GatedConv2d(4, 6, 4, stride=2, padding=1)
    out = layer(torch.randn(2, 4, 16, 16))
    assert out.shape == (2, 6, 8, 8)


def test_anl_changes_with_conditioning_on_a_spatially_constant_input():
    anl = ANL(8, 5, hidden=8)
    x = torch.full((2, 8, 16, 16), 0.7)
    cond_a = torch.zeros(2, 5, 32, 32)
    cond_b = cond_a.clone()
    cond_b[:, 4, 10:20, 10:20] = 1.0  # a sketch stroke
    cond_b[:, 1:4, 0:8, 0:8] = 0.5    # a colour hint
    for mode in ("train", "eval"):  # BN on batch statistics (x normalises to 0) and on running statistics
        getattr(anl, mode)()
        anl.out.eval()  # freeze the spectral-norm power iteration so only the conditioning differs
        out_a, out_b = anl(x, cond_a), anl(x, cond_b)
        assert torch.equal(out_a, anl(x, cond_a))
        assert not torch.allclose(out_a, out_b), mode
        assert out_b.shape == x.shape


def test_anl_scale_is_a_sigmoid_attention_map_and_spade_scale_is_unbounded():
    x, cond = torch.randn(2, 8, 8, 8), torch.randn(2, 5, 8, 8) * 10
    alpha, _ = ANL(8, 5).modulation(x, cond)
    gamma, _ = SPADEBlock(8, 5).modulation(x, cond)
    assert alpha.min() > 0 and alpha.max() < 1
    assert gamma.min() < 0 or gamma.max() > 1


def test_anl_matches_the_design_formula():
    anl = ANL(4, 5, hidden=6).eval()
    with torch.no_grad():
        anl.norm.running_mean.uniform_(-1, 1)
        anl.norm.running_var.uniform_(0.5, 2)
    x, e = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 16, 16)
    e_small = F.interpolate(e, size=(8, 8), mode="nearest")
    h = F.relu(anl.shared[0](e_small))
    # conv3x3(h) for alpha and for beta: the first / last C output channels of the joint conv
    weight, bias = anl.to_scale_shift.weight, anl.to_scale_shift.bias
    alpha = torch.sigmoid(F.conv2d(h, weight[:4], bias[:4], padding=1))
    beta = F.conv2d(h, weight[4:], bias[4:], padding=1)
    bn = (x - anl.norm.running_mean.view(1, -1, 1, 1)) / torch.sqrt(anl.norm.running_var.view(1, -1, 1, 1) + anl.norm.eps)
    expected = x + anl.out(F.leaky_relu(bn * (1 + alpha) + beta, 0.2))
    assert torch.allclose(anl(x, e), expected, atol=1e-6)


def test_instance_norm_block_ignores_conditioning():
    block = InstanceNormBlock(8, 5).eval()
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(block(x, torch.zeros(2, 5, 8, 8)), block(x, torch.ones(2, 5, 8, 8)))


def test_decoder_block_mapping_is_explicit():
    assert DECODER_BLOCKS == {"anl": ANL, "spade": SPADEBlock, "instance": InstanceNormBlock}


def test_self_attention_starts_as_identity():
    attention = SelfAttention(8)
    x = torch.randn(2, 8, 6, 5)
    assert torch.equal(attention(x), x)


def test_self_attention_matches_sagan_equations_with_pooled_keys():
    attention = SelfAttention(8, reduction=4)
    with torch.no_grad():
        attention.gamma.fill_(0.5)
    x = torch.randn(1, 8, 4, 3)
    pool = torch.nn.MaxPool2d(2, ceil_mode=True)  # attended positions are 2x2 max-pooled (BigGAN)
    f = pool(attention.f(x)).flatten(2)[0]  # (C', N/4)
    g = attention.g(x).flatten(2)[0]        # (C', N)
    h = pool(attention.h(x)).flatten(2)[0]  # (C, N/4)
    s = f.t() @ g                     # s[i, j] = f(x_i)^T g(x_j)
    beta = torch.softmax(s, dim=0)    # normalised over i for each output position j
    o = h @ beta                      # o_j = sum_i beta_ji h(x_i)
    expected = x + 0.5 * o.view(1, 8, 4, 3)
    assert torch.allclose(attention(x), expected, atol=1e-5)


def test_spectral_norm_flag():
    assert has_spectral_norm(conv2d(3, 4, 3, spectral_norm=True))
    assert not has_spectral_norm(conv2d(3, 4, 3, spectral_norm=False))
    assert has_spectral_norm(PartialConv2d(3, 4, 3, spectral_norm=True).conv)


def test_dilated_res_block_keeps_shape():
    block = DilatedResBlock(8, dilation=2)
    assert block(torch.randn(1, 8, 12, 12)).shape == (1, 8, 12, 12)


def test_resize_nearest_and_divisibility_check():
    cond = torch.arange(16.0).view(1, 1, 4, 4)
    assert resize_nearest(cond, torch.zeros(1, 1, 2, 2)).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]
    check_divisible(128, 320, 8, "net")
    with pytest.raises(ValueError, match="divisible by 8"):
        check_divisible(100, 320, 8, "net")
