"""FE-GAN reference networks (bench/fegan_reference.py) match DESIGN.md section 10, train, and feed the bench ratio."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench import bench_networks
from bench.bench_networks import random_batch, reference_fields, speed_ratio
from bench.fegan_reference import (INPAINTER_D_CHANNELS, FEGANInpainterD, FEGANInpainterG, FEGANParserG,
                                   PartialConv, build_parser_reference_discriminator, count_parameters,
                                   inpainter_discriminator_input, inpainter_g_gflop, inpainter_reference_step,
                                   parser_reference_step)
from tests.conftest import tiny_params


def _millions_on_meta(cls: type[nn.Module]) -> float:
    with torch.device("meta"):
        return count_parameters(cls()) / 1e6


def test_generator_parameter_counts_match_fegan():
    assert _millions_on_meta(FEGANInpainterG) == pytest.approx(42.9, abs=0.2)   # 42.81 M
    assert _millions_on_meta(FEGANParserG) == pytest.approx(182.6, abs=0.5)     # 182.57 M


def test_flop_counter_counts_two_flop_per_multiply_accumulate():
    conv = nn.Conv2d(3, 5, 3, device="meta")
    with FlopCounterMode(display=False) as counter:
        conv(torch.empty(1, 3, 10, 10, device="meta"))
    assert counter.get_total_flops() == 2 * (3 * 9) * 5 * 8 * 8


def test_inpainter_forward_flops_at_256_match_fegan():
    assert inpainter_g_gflop(256) == pytest.approx(414.5, rel=0.02)   # 414.49 with the multi-channel mask convs


def test_partial_conv_renormalises_known_pixels_and_zeroes_empty_windows():
    torch.manual_seed(0)
    layer = PartialConv(2, 3, 3, padding=1)
    nn.init.normal_(layer.bias)
    x = torch.randn(1, 2, 8, 8)
    full, full_mask = layer(x, torch.ones_like(x))
    interior = (layer.conv(x) + layer.bias.view(1, -1, 1, 1))[..., 1:-1, 1:-1]
    torch.testing.assert_close(full[..., 1:-1, 1:-1], interior)
    assert full_mask.shape == (1, 3, 8, 8) and bool((full_mask == 1).all())
    mask = torch.ones_like(x)
    mask[..., :, :4] = 0
    out, updated = layer(x, mask)
    assert bool((out[..., :, :3] == 0).all()) and bool((updated[..., :, :3] == 0).all())
    assert bool((updated[..., :, 3:] == 1).all())


def test_inpainter_discriminator_input_has_32_channels():
    batch = random_batch(1, 16, 16)
    x = inpainter_discriminator_input(batch, batch["image"])
    assert x.shape[1] == INPAINTER_D_CHANNELS == 32
    logits = FEGANInpainterD()(x)[0][-1]
    assert logits.shape[:2] == (1, 1)


def _step_changes_weights(build, generator: nn.Module, discriminator: nn.Module) -> None:
    torch.manual_seed(0)
    parts, _ = build(tiny_params(), random_batch(1, 64, 64), generator=generator, discriminator=discriminator)
    before = {f"{role}.{name}": t.detach().clone() for role, module in (("G", generator), ("D", discriminator))
              for name, t in module.named_parameters()}
    parts["step"]()
    after = {f"{role}.{name}": t.detach() for role, module in (("G", generator), ("D", discriminator))
             for name, t in module.named_parameters()}
    assert all(bool(torch.isfinite(t).all()) for t in after.values())
    for role in ("G", "D"):
        changed = [name for name in before if name.startswith(role) and not torch.equal(before[name], after[name])]
        assert changed, f"no {role} weight changed"
    first_conv = next(name for name in before if name.startswith("G") and before[name].dim() == 4)
    assert not torch.equal(before[first_conv], after[first_conv])


def test_inpainter_reference_training_step_runs_with_one_residual_block():
    _step_changes_weights(inpainter_reference_step, FEGANInpainterG(n_res_blocks=1), FEGANInpainterD())


@pytest.mark.slow
def test_inpainter_reference_training_step_updates_g_and_d():
    _step_changes_weights(inpainter_reference_step, FEGANInpainterG(), FEGANInpainterD())


@pytest.mark.slow
def test_parser_reference_training_step_updates_g_and_d():
    _step_changes_weights(parser_reference_step, FEGANParserG(), build_parser_reference_discriminator())


def test_ratio_is_ours_over_reference_per_image():
    assert speed_ratio(4.0, 0.5) == 8.0
    reference = {"g_params": 42_810_883, "step_s": 12.2, "images_per_s": 4 / 12.2, "gflop": 5192.0,
                 "gflop_per_s": 5192.0 / 12.2}
    fields = reference_fields(reference, ours_images_per_s=8.2)
    assert fields["ratio_vs_reference"] == pytest.approx(8.2 * 12.2 / 4, abs=0.01)
    assert fields["ref_images_per_s"] == pytest.approx(0.328) and fields["ref_gflop_per_s"] == pytest.approx(425.6)


def test_run_adds_reference_figures_to_our_rows_and_can_skip_them(monkeypatch: pytest.MonkeyPatch):
    def fake_ours(name, p, size, channels_last, repeats):
        images_per_s = 6.0 if channels_last else 3.0
        return {"network": name, "batch": size[2], "channels_last": channels_last, "images_per_s": images_per_s,
                "gflop_per_s": 100.0}, images_per_s

    def fake_reference(name, p, size, repeats):
        return {"g_params": 1, "step_s": 4.0, "images_per_s": 1.5, "gflop": 40.0, "gflop_per_s": 10.0}

    monkeypatch.setattr(bench_networks, "time_ours", fake_ours)
    monkeypatch.setattr(bench_networks, "time_reference", fake_reference)
    rows = bench_networks.run(None, [(8, 8, 2)], 1, ["inpainter"])  # type: ignore[arg-type]
    assert [row["ratio_vs_reference"] for row in rows] == [2.0, 4.0]
    assert rows[0]["ref_images_per_s"] == 1.5 and rows[0]["ref_gflop_per_s"] == 10.0
    skipped = bench_networks.run(None, [(8, 8, 2)], 1, ["inpainter"], reference=False)  # type: ignore[arg-type]
    assert all("ratio_vs_reference" not in row for row in skipped)
