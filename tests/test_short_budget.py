"""What makes a short CPU budget train well: warm-up, the generator's EMA, checkpoints that no longer fit,
shallower VGG terms, and the choice of ablation variants."""
from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from fashion_edit.config import ParamsError, load_params
from fashion_edit.training.checkpoints import checkpoint_misfit
from fashion_edit.training.ema import GeneratorEma, ramped_decay
from fashion_edit.training.loop import LoopSchedule, set_lr_factor
from models.losses import InpainterCriterion
from tests.conftest import tiny_params


def test_warmup_rises_linearly_then_holds_and_depends_only_on_the_step():
    schedule = LoopSchedule(steps=100, sample_every=10, log_every=10, warmup_steps=4)
    assert [schedule.lr_factor(k) for k in (1, 2, 4, 5, 90)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert LoopSchedule(steps=5, sample_every=1, log_every=1).lr_factor(1) == 1.0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.2)
    set_lr_factor(opt, 0.5)
    set_lr_factor(opt, 0.25)  # always relative to the configured rate, never compounding
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_ema_averages_parameters_with_a_ramped_decay_and_copies_buffers():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = GeneratorEma(net, decay=0.99)
    assert ramped_decay(0.99, 0) == pytest.approx(0.1) and ramped_decay(0.99, 10_000) == 0.99
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(4, 2))  # moves the BatchNorm running stats
    ema.update(net)  # first update copies
    ema.update(net)  # second: decay min(0.99, 2/11)
    assert torch.allclose(ema.module[0].weight, start + 1.0)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    d = ramped_decay(0.99, 2)
    assert torch.allclose(ema.module[0].weight, (start + 1.0) * d + (start + 2.0) * (1 - d))
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    assert not any(p.requires_grad for p in ema.parameters())


def test_a_checkpoint_of_another_network_is_named_not_loaded():
    net = nn.Linear(2, 3)
    good = {"modules": {"generator": net.state_dict()}}
    assert checkpoint_misfit(good, {"generator": net}) is None
    wider = {"modules": {"generator": nn.Linear(2, 4).state_dict()}}
    assert "(4, 2)" in checkpoint_misfit(wider, {"generator": net})
    extra = {"modules": {"generator": {**net.state_dict(), "residual_gain": torch.zeros(1)}}}
    assert "residual_gain" in checkpoint_misfit(extra, {"generator": net})
    assert "no 'generator_ema'" in checkpoint_misfit(good, {"generator": net, "generator_ema": net})


class Taps(nn.Module):
    """A stand-in VGG that records which taps were asked for."""

    perceptual_layers = ("relu1_2", "relu2_2", "relu3_3")
    perceptual_weights = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0}
    style_layers = ("relu2_2", "relu3_3")

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, ...]] = []

    def forward(self, image, layers):
        self.asked.append(tuple(layers))
        return {name: image for name in layers}


def test_vgg_blocks_limit_the_taps_the_trunk_computes():
    taps = Taps()
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    terms = InpainterCriterion(taps, perceptual=1.0, style=1.0, vgg_blocks=2)._vgg_terms(x, x.flip(-1))
    assert set(terms) == {"perceptual", "style"}
    assert all(set(asked) == {"relu1_2", "relu2_2"} for asked in taps.asked)


def test_ablation_variants_must_be_defined_and_listed_once(tmp_path):
    assert tiny_params().ablation.variants == ["full"]
    for variants, message in ((["full", "nope"], "nope"), (["full", "full"], "twice")):
        data = tiny_params().model_dump(mode="json")
        data["ablation"]["variants"] = variants
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ParamsError, match=message):
            load_params(path)
