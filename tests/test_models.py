"""Parser, inpainter (every variant), discriminators, and the builders / input assembly in fashion_edit.networks."""
import pytest
import torch

from fashion_edit.config import InpainterNet, load_params
from fashion_edit.networks import (build_inpainter, build_inpainter_discriminator, build_parser,
                                   build_parser_discriminator, count_parameters, incomplete_image,
                                   inpainter_condition, inpainter_discriminator_channels,
                                   inpainter_discriminator_input, inpainter_variants, main, onehot,
                                   parser_discriminator_input, parser_input, run_inpainter)
from models.discriminators import MultiScaleDiscriminator, PatchDiscriminator
from models.inpainter import (IMAGE_ENCODERS, GatedConvEncoder, ParsingAwareInpainter, PartialConvEncoder,
                              PlainConvEncoder, compose)
from models.layers import ANL, SPADEBlock, InstanceNormBlock, SelfAttention, has_spectral_norm
from models.parser import FreeFormParser
from tests.conftest import open_residual_heads, tiny_params, write_params

SIZES = [(128, 128), (256, 256), (512, 320)]
VARIANTS = {
    "default": {},
    "spade": {"norm": "spade"},
    "instance": {"norm": "instance"},
    "gated": {"encoder": "gated"},
    "plain": {"encoder": "plain"},
    "one_stage": {"use_parsing": False},
    "no_sn": {"spectral_norm": False},
    "no_attention": {"attention": False},
    "no_sketch_colour": {"use_sketch_colour": False},
}
SMALL = {"base_channels": 4, "n_res_blocks": 1}  # shapes and gradients do not depend on width/depth


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_batch(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, 1, h, w)
    mask[:, :, h // 4: h // 2 + 2, w // 4: 3 * w // 4] = 1
    parsing = torch.randint(0, 20, (b, h, w), generator=g)
    parsing[:, : h // 8] = 13  # some face
    return {
        "image": torch.rand(b, 3, h, w, generator=g) * 2 - 1,
        "parsing": parsing,
        "mask": mask,
        "sketch": (torch.rand(b, 1, h, w, generator=g) > 0.7).float() * mask,
        "colour": (torch.rand(b, 3, h, w, generator=g) * 2 - 1) * mask,
        "noise": torch.randn(b, 1, h, w, generator=g) * mask,
        "known_fg": (1 - mask) * (parsing != 0).unsqueeze(1).float(),
    }


def small_inpainter(**overrides) -> ParsingAwareInpainter:
    return ParsingAwareInpainter(**{**SMALL, **overrides})


def net_params(**overrides) -> InpainterNet:
    return InpainterNet(**{"base_channels": 4, "n_res_blocks": 1, "d_channels": 4, **overrides})


# ------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("variant", VARIANTS)
def test_inpainter_and_discriminator_output_shapes(variant, size):
    net = net_params(**VARIANTS[variant])
    generator, discriminator = build_inpainter(net).eval(), build_inpainter_discriminator(net).eval()
    batch = make_batch(1, *size)
    with torch.no_grad():
        generated, composited = run_inpainter(generator, batch, batch["parsing"])
        d_out = discriminator(inpainter_discriminator_input(net, batch, composited, batch["parsing"]))
    assert generated.shape == composited.shape == (1, 3, *size)
    assert generated.abs().max() <= 1
    h, w = size
    assert len(d_out) == 1 and len(d_out[0]) == 5
    assert d_out[0][-1].shape == (1, 1, h // 8 - 2, w // 8 - 2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_parser_and_multiscale_discriminator_shapes(size):
    parser = FreeFormParser(base_channels=8, n_downsample=3, n_res_blocks=1).eval()
    discriminator = MultiScaleDiscriminator(46, base_channels=8, n_layers=3, num_scales=2).eval()
    batch = make_batch(1, *size)
    x = parser_input(batch)
    with torch.no_grad():
        logits = parser(x)
        d_out = discriminator(parser_discriminator_input(x, logits.softmax(1)))
    assert x.shape == (1, 26, *size) and logits.shape == (1, 20, *size)
    assert len(d_out) == 2 and all(len(scale) == 5 for scale in d_out)
    assert d_out[0][-1].shape[1] == 1 and d_out[1][-1].shape[-1] < d_out[0][-1].shape[-1]


def test_default_models_from_params():
    p = load_params("params.yaml")
    generator, discriminator = build_inpainter(p), build_inpainter_discriminator(p)
    assert count_parameters(generator) <= 5_000_000
    batch = make_batch(2, 128, 128)
    with torch.no_grad():
        generated, _ = run_inpainter(generator.eval(), batch, batch["parsing"])
        x = parser_input(batch, p.parser.label_strokes)
        logits = build_parser(p).eval()(x)
        d_out = build_parser_discriminator(p)(parser_discriminator_input(x, batch["parsing"]))
    assert generated.shape == (2, 3, 128, 128) and logits.shape == (2, 20, 128, 128)
    assert len(d_out) == p.parser.d_scales and discriminator.blocks[0][0].in_channels == 3 + 1 + 20 + 4


# ------------------------------------------------------------------------ gradients
def _set_attention_gamma(module: torch.nn.Module) -> None:
    # gamma starts at 0, which blocks gradients to f, g, h by design; open it for the check
    for m in module.modules():
        if isinstance(m, SelfAttention):
            m.gamma.data.fill_(0.5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_inpainter_parameter(variant):
    net = net_params(**VARIANTS[variant])
    generator, discriminator = build_inpainter(net), build_inpainter_discriminator(net)
    _set_attention_gamma(generator)
    _set_attention_gamma(discriminator)
    open_residual_heads(generator)
    batch = make_batch(2, 32, 32)
    generated, composited = run_inpainter(generator, batch, batch["parsing"])
    d_out = discriminator(inpainter_discriminator_input(net, batch, composited, batch["parsing"]))
    (generated.pow(2).mean() + d_out[0][-1].mean()).backward()
    for module in (generator, discriminator):
        for name, param in module.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name


def test_gradients_reach_every_parser_parameter():
    parser = FreeFormParser(base_channels=8, n_downsample=2, n_res_blocks=1)
    discriminator = MultiScaleDiscriminator(46, base_channels=8, n_layers=2, num_scales=2)
    batch = make_batch(2, 32, 32)
    x = parser_input(batch)
    logits = parser(x)
    d_out = discriminator(parser_discriminator_input(x, logits.softmax(1)))
    (torch.nn.functional.cross_entropy(logits, batch["parsing"]) + sum(s[-1].mean() for s in d_out)).backward()
    for module in (parser, discriminator):
        for name, param in module.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------ behaviour
def test_partial_conv_encoder_ignores_pixels_outside_the_known_mask():
    encoder = PartialConvEncoder(8, spectral_norm=True).eval()
    batch = make_batch(2, 32, 32)
    image, known = incomplete_image(batch), batch["known_fg"]
    scrambled = torch.where(known > 0, image, torch.randn_like(image) * 5)
    assert not torch.equal(scrambled, image)
    assert torch.equal(encoder(image, known), encoder(scrambled, known))
    # and so the whole generator's output does not depend on those pixels either
    generator = small_inpainter().eval()
    args = (known, batch["mask"], onehot(batch["parsing"]), inpainter_condition(batch))
    assert torch.equal(generator(image, *args), generator(scrambled, *args))


def test_composition_leaves_known_pixels_exactly_unchanged():
    batch = make_batch(2, 32, 32)
    generator = small_inpainter()
    generated, composited = run_inpainter(generator, batch, batch["parsing"])
    known = batch["mask"].expand_as(composited) == 0
    assert torch.equal(composited[known], batch["image"][known])
    assert torch.equal(composited[~known], generated[~known])
    assert torch.equal(compose(torch.full((1, 3, 2, 2), 0.3), torch.full((1, 3, 2, 2), -0.7),
                               torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]))[0, 0],
                       torch.tensor([[0.3, -0.7], [-0.7, 0.3]]))


@pytest.mark.parametrize("flag", [True, False])
def test_spectral_norm_present_or_absent_per_flag(flag):
    generator = small_inpainter(spectral_norm=flag)
    discriminator = PatchDiscriminator(28, 8, spectral_norm=flag, attention=True)
    convs_d = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(has_spectral_norm(m) == flag for m in convs_d)
    normalised_g = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d) and has_spectral_norm(m)]
    if flag:
        # every conv except the ANL conditioning branch (DESIGN: only ANL's output conv is SN)
        anl_branch = {id(m) for block in generator.modules() if isinstance(block, ANL)
                      for part in (block.shared, block.to_scale_shift) for m in part.modules()}
        others = [m for m in generator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
                  and id(m) not in anl_branch]
        assert others and all(has_spectral_norm(m) for m in others)
    else:
        assert normalised_g == []


def test_variant_names_map_to_classes():
    assert IMAGE_ENCODERS == {"partial": PartialConvEncoder, "gated": GatedConvEncoder, "plain": PlainConvEncoder}
    for norm, cls in (("anl", ANL), ("spade", SPADEBlock), ("instance", InstanceNormBlock)):
        generator = small_inpainter(norm=norm)
        assert all(type(b) is cls for b in (generator.decode4, generator.decode2, generator.decode1))
    for encoder, cls in IMAGE_ENCODERS.items():
        assert type(small_inpainter(encoder=encoder).image_encoder) is cls
    assert isinstance(small_inpainter(attention=True).attention, SelfAttention)
    assert not isinstance(small_inpainter(attention=False).attention, SelfAttention)
    assert isinstance(PatchDiscriminator(4, 8, attention=True).blocks[2][-1], SelfAttention)
    with pytest.raises(ValueError, match="norm 'batch' unknown"):
        ParsingAwareInpainter(norm="batch")
    with pytest.raises(ValueError, match="encoder 'dense' unknown"):
        ParsingAwareInpainter(encoder="dense")


def _generate(generator, batch, parsing=None, condition=None):
    return generator(incomplete_image(batch), batch["known_fg"], batch["mask"],
                     onehot(batch["parsing"]) if parsing is None else parsing,
                     inpainter_condition(batch) if condition is None else condition)


def test_one_stage_ignores_parsing_and_two_stage_uses_it():
    batch = make_batch(2, 32, 32)
    other = onehot(torch.randint(0, 20, (2, 32, 32)))
    one_stage, two_stage = small_inpainter(use_parsing=False).eval(), small_inpainter().eval()
    assert torch.equal(_generate(one_stage, batch), _generate(one_stage, batch, parsing=other))
    assert torch.equal(_generate(one_stage, batch), one_stage(incomplete_image(batch), batch["known_fg"],
                                                              batch["mask"], None, inpainter_condition(batch)))
    assert not torch.allclose(_generate(two_stage, batch), _generate(two_stage, batch, parsing=other))
    with pytest.raises(ValueError, match="parsing_onehot"):
        two_stage(incomplete_image(batch), batch["known_fg"], batch["mask"], None, inpainter_condition(batch))


@pytest.mark.parametrize("norm", ["anl", "spade", "instance"])
def test_sketch_colour_switch(norm):
    batch = make_batch(2, 32, 32)
    condition = inpainter_condition(batch)
    edited = condition.clone()
    edited[:, 1:] = torch.rand_like(edited[:, 1:])  # new colour and sketch, same noise
    on, off = small_inpainter(norm=norm).eval(), small_inpainter(norm=norm, use_sketch_colour=False).eval()
    assert not torch.allclose(_generate(on, batch), _generate(on, batch, condition=edited))
    assert torch.equal(_generate(off, batch), _generate(off, batch, condition=edited))


def test_bad_inputs_fail_clearly():
    generator = small_inpainter()
    batch = make_batch(1, 30, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        run_inpainter(generator, batch, batch["parsing"])
    batch = make_batch(1, 32, 32)
    with pytest.raises(ValueError, match="5 channels"):
        generator(incomplete_image(batch), batch["known_fg"], batch["mask"], onehot(batch["parsing"]),
                  torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="26 input channels"):
        FreeFormParser(base_channels=8)(torch.zeros(1, 25, 32, 32))
    with pytest.raises(ValueError, match="divisible by 8"):
        FreeFormParser(base_channels=8)(torch.zeros(1, 26, 36, 32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 19\]"):
        onehot(torch.full((1, 2, 2), 20))


# --------------------------------------------------------------- input assembly
def test_parser_input_layout():
    batch = make_batch(2, 16, 16)
    x = parser_input(batch)
    mask = batch["mask"][:, 0].bool()
    labels = x[:, :20].argmax(1)
    assert torch.equal(labels[~mask], batch["parsing"][~mask])
    assert torch.all(labels[mask] == 0) and torch.all(x[:, :20].sum(1) == 1)
    assert torch.equal(x[:, 20:21], batch["mask"]) and torch.equal(x[:, 21:22], batch["sketch"])
    assert torch.equal(x[:, 22:23], batch["noise"]) and torch.equal(x[:, 23:26], batch["colour"])


def test_incomplete_image_and_condition():
    batch = make_batch(1, 16, 16)
    image, mask = incomplete_image(batch), batch["mask"].bool().expand(-1, 3, -1, -1)
    assert torch.all(image[mask] == -1) and torch.equal(image[~mask], batch["image"][~mask])
    condition = inpainter_condition(batch)
    assert condition.shape == (1, 5, 16, 16)
    assert torch.equal(condition[:, 0:1], batch["noise"]) and torch.equal(condition[:, 4:5], batch["sketch"])


def test_run_inpainter_accepts_labels_or_probabilities():
    batch = make_batch(1, 32, 32)
    generator = small_inpainter().eval()
    from_labels = run_inpainter(generator, batch, batch["parsing"])[0]
    from_map = run_inpainter(generator, batch, onehot(batch["parsing"]))[0]
    assert torch.equal(from_labels, from_map)


@pytest.mark.parametrize("variant", VARIANTS)
def test_discriminator_input_matches_discriminator(variant):
    net = net_params(**VARIANTS[variant])
    batch = make_batch(1, 32, 32)
    x = inpainter_discriminator_input(net, batch, batch["image"], batch["parsing"])
    assert x.shape[1] == inpainter_discriminator_channels(net)
    assert build_inpainter_discriminator(net).blocks[0][0].in_channels == x.shape[1]


def test_parameter_table_lists_default_and_variants(capsys, tmp_path):
    names = [name for name, _ in inpainter_variants(load_params("params.yaml"))]
    assert names[0] == "default" and "no_attention" in names and "plain_conv" in names
    assert "no_gan" not in names  # a loss-only ablation does not change the networks
    small = tmp_path / "params.yaml"  # same structure, narrow networks: the table logic, quickly
    write_params(small, tiny_params({
        "parser": {"base_channels": 4}, "inpainter": {"base_channels": 4, "d_channels": 4},
        "ablation": {"variants": ["one_stage"]},
    }).model_copy(update={"ablations": {"one_stage": {"inpainter": {"use_parsing": False}},
                                        "no_gan": {"inpainter_loss": {"gan": 0.0}}}}))
    names = [name for name, _ in inpainter_variants(load_params(small))]
    main(["--params", str(small)])
    out = capsys.readouterr().out
    assert "| parser |" in out and "| inpainter default |" in out and "| inpainter one_stage |" in out
    assert len(out.strip().splitlines()) == 2 + 1 + len(names)
