"""Stochastic completion (issue 14, seed 001): the KL term, seeded draws from the prior, training with the
posterior, label strokes in the parser's input, and the diversity scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.labels import LABEL_ID, NUM_CLASSES
from fashion_edit.data.store import open_split
from fashion_edit.evaluation.ablation import changes_parser, variant_params
from fashion_edit.evaluation.diversity import GARMENTS, garment_classes, parsing_disagreement, unguided
from fashion_edit.layout import TrainPaths
from fashion_edit.networks import build_inpainter, build_parser, inpainter_inputs, onehot, parser_input
from fashion_edit.serving.editor import EditorNetworks, two_stage
from fashion_edit.training.distributed import DistContext
from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
from fashion_edit.training.parser_trainer import PARSER_SPEC
from fashion_edit.training.runner import train
from models.stochastic import gaussian_kl
from tests.conftest import tiny_params

SINGLE = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
STOCHASTIC = {"parser": {"latent_dim": 4}, "inpainter": {"latent_dim": 4}}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny networks on one thread (see conftest.one_thread)."""


def _batch(size: int = 32, count: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(count, 1, size, size)
    mask[:, :, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    return {"image": torch.rand(count, 3, size, size, generator=g) * 2 - 1,
            "parsing": torch.randint(0, NUM_CLASSES, (count, size, size), generator=g), "mask": mask,
            "sketch": torch.zeros(count, 1, size, size), "noise": torch.zeros(count, 1, size, size),
            "colour": torch.zeros(count, 3, size, size), "known_fg": 1 - mask}


def _sensitive(module: torch.nn.Module) -> torch.nn.Module:
    """Random non-zero weights everywhere (the residual heads start at exactly zero, hiding z's effect)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module.eval()


def test_kl_matches_the_closed_form_of_two_known_gaussians():
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension; KL(N(0, 1) || N(0, 4)) = (log 4 + 1/4 - 1) / 2
    ones, zeros = torch.ones(3, 2), torch.zeros(3, 2)
    assert gaussian_kl(ones, zeros, zeros, zeros).item() == pytest.approx(1.0)  # 2 dims x 1/2
    expected = 2 * 0.5 * (np.log(4.0) + 0.25 - 1.0)
    assert gaussian_kl(zeros, zeros, zeros, torch.full((3, 2), np.log(4.0))).item() == pytest.approx(expected)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(4, 5, generator=torch.Generator().manual_seed(i)) for i in range(4))
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, (0.5 * lv_q).exp()),
                                                  torch.distributions.Normal(mu_p, (0.5 * lv_p).exp()))
    assert gaussian_kl(mu_q, lv_q, mu_p, lv_p).item() == pytest.approx(reference.sum(1).mean().item(), rel=1e-5)
    assert gaussian_kl(mu_p, lv_p, mu_p, lv_p).item() == pytest.approx(0.0, abs=1e-6)


def test_prior_draws_differ_between_seeds_and_repeat_for_one_seed():
    params = tiny_params(STOCHASTIC)
    parser = _sensitive(build_parser(params))
    x = parser_input(_batch(), params.parser.label_strokes)
    with torch.no_grad():
        first, again, other = (parser(x, sample_seed=s).argmax(1) for s in (3, 3, 4))
        mean = parser(x).argmax(1)
    assert torch.equal(first, again)
    assert (first != other).any() and (first != mean).any()


def test_posterior_draws_return_the_kl_and_deterministic_networks_refuse_a_truth():
    params = tiny_params(STOCHASTIC)
    batch = _batch()
    parser, inpainter = build_parser(params), build_inpainter(params)
    logits, kl = parser(parser_input(batch, True), truth=onehot(batch["parsing"]))
    generated, kl_image = inpainter(*inpainter_inputs(batch, batch["parsing"]), truth=batch["image"])
    assert logits.shape == (2, NUM_CLASSES, 32, 32) and generated.shape == (2, 3, 32, 32)
    assert kl.item() >= 0 and kl_image.item() >= 0 and kl.requires_grad
    plain = tiny_params()
    with pytest.raises(ValueError, match="latent_dim"):
        build_parser(plain)(parser_input(batch, True), truth=onehot(batch["parsing"]))
    with pytest.raises(ValueError, match="latent_dim"):
        build_inpainter(plain)(*inpainter_inputs(batch, batch["parsing"]), truth=batch["image"])


def test_two_stage_samples_differ_only_for_a_stochastic_model():
    batch = _batch()
    for overrides, differs in (({}, False), (STOCHASTIC, True)):
        params = tiny_params(overrides)
        networks = EditorNetworks.untrained(params)
        _sensitive(networks.parser), _sensitive(networks.inpainter)
        a, b = (two_stage(networks, batch, sample_seed=s) for s in (0, 1))
        assert torch.equal(a.image, two_stage(networks, batch, sample_seed=0).image)
        assert (not torch.equal(a.completed, b.completed)) == differs
        assert (not torch.equal(a.image, b.image)) == differs


def test_label_strokes_are_one_hot_channels_inside_the_hole_only():
    batch = _batch()
    strokes = torch.full((2, 32, 32), -1)
    strokes[:, 16, 10:20] = LABEL_ID["pants"]  # inside the hole (8..24)
    strokes[:, 2, 2] = LABEL_ID["skirt"]  # outside: ignored
    x = parser_input(batch | {"label_strokes": strokes}, label_strokes=True)
    channels = x[:, 26:]
    assert x.shape[1] == 26 + NUM_CLASSES
    assert channels.sum().item() == 2 * 10 and channels[:, LABEL_ID["pants"], 16, 10:20].eq(1).all()
    assert torch.equal(parser_input(batch, label_strokes=True)[:, 26:], torch.zeros_like(channels))
    assert parser_input(batch).shape[1] == 26


def test_label_strokes_grow_their_class_in_the_parsers_prior_fill():
    """An untrained parser (zero residual head) follows the strokes: they are samples of the fill inside the hole."""
    from models.parser import FreeFormParser

    parser = FreeFormParser(base_channels=8, n_downsample=2, n_res_blocks=1, prefill=True, label_strokes=True).eval()
    batch = _batch()
    batch["parsing"] = torch.zeros_like(batch["parsing"])  # background all around the hole (8..24)
    strokes = torch.full((2, 32, 32), -1)
    strokes[:, 10:22, 16] = LABEL_ID["pants"]
    with torch.no_grad():
        followed = parser(parser_input(batch | {"label_strokes": strokes}, True)).argmax(1)
        plain = parser(parser_input(batch, True)).argmax(1)
    assert (followed[:, 10:22, 15:18] == LABEL_ID["pants"]).all()
    assert (plain[:, 8:24, 8:24] == LABEL_ID["background"]).all()


def test_training_items_carry_true_label_strokes_and_evaluation_items_none(prepared_data: Path):
    params = tiny_params()
    train_split, test_split = open_split(prepared_data / "train"), open_split(prepared_data / "test")
    items = EditingDataset(train_split, params.masks, seed=0, fixed_masks=False, label_strokes=1.0)
    drawn = 0
    for i in range(8):
        item = items[i]
        strokes, on = item["label_strokes"], item["label_strokes"] >= 0
        assert (item["mask"][0][on] == 1).all(), "label strokes lie inside the hole"
        assert torch.equal(strokes[on], item["parsing"][on]), "they carry the true class"
        drawn += int(on.any())
    assert drawn >= 6
    fixed = EditingDataset(test_split, params.masks, seed=0, fixed_masks=True, label_strokes=1.0)
    assert (fixed[0]["label_strokes"] == -1).all()
    without = EditingDataset(train_split, params.masks, seed=0, fixed_masks=False)[0]
    assert "label_strokes" not in without and torch.equal(without["mask"], items[0]["mask"])


def test_stochastic_training_logs_a_falling_kl_and_exports_a_sampling_generator(tmp_path, prepared_data, mlflow_uri):
    params = tiny_params(STOCHASTIC | {"train_parser": {"steps": 4, "batch_size": 2, "checkpoint_every": 4,
                                                        "sample_every": 4, "log_every": 1},
                                       "train_inpainter": {"steps": 4, "batch_size": 2, "checkpoint_every": 4,
                                                           "sample_every": 4, "log_every": 1},
                                       "mlflow": {"experiment": "stochastic"}})
    for spec in (PARSER_SPEC, INPAINTER_SPEC):
        paths = TrainPaths(prepared=prepared_data, checkpoints=tmp_path / "c" / spec.name,
                           artifacts=tmp_path / "a" / spec.name, reports=tmp_path / "r" / spec.name, repo_root=tmp_path)
        outcome = train(params, spec, paths, SINGLE)
        kl = outcome.history.column("loss_g/kl")
        assert len(kl) == 4 and all(np.isfinite(kl)) and min(kl) >= 0
        assert outcome.generator.stochastic is not None


def test_the_stochastic_variant_trains_its_own_parser():
    params = tiny_params()
    assert changes_parser(params, "stochastic") and not changes_parser(params, "spade_norm")
    p = variant_params(tiny_params({"ablation": {"seeds": 2}}), "stochastic", 1)
    assert p.parser.latent_dim == 8 and p.inpainter.latent_dim == 8
    assert p.train_parser.seed == params.train_parser.seed + 1


def test_parsing_disagreement_and_garment_classes_count_the_hole_only():
    hole = torch.zeros(2, 4, 4, dtype=torch.bool)
    hole[0, :2] = True  # 8 pixels; item 1 has no hole
    a = torch.zeros(2, 4, 4, dtype=torch.long)
    b = a.clone()
    b[0, 0, :2] = LABEL_ID["skirt"]  # 2 of the 8 hole pixels differ
    b[0, 3, :] = LABEL_ID["coat"]  # outside the hole: not counted
    share = parsing_disagreement(a, b, hole)
    assert share[0].item() == pytest.approx(0.25) and torch.isnan(share[1])
    c = a.clone()
    c[0, 1, :] = LABEL_ID["pants"]  # 4 of 8
    assert garment_classes([a, b, c], hole)[0].item() == 2  # skirt (2/8) and pants (4/8); coat is outside
    assert garment_classes([a, b], hole, share=0.5)[0].item() == 0
    assert LABEL_ID["background"] not in GARMENTS


def test_unguided_inputs_drop_sketch_and_colour_and_keep_the_hole():
    batch = _batch()
    batch["sketch"][:, :, 10, 10] = 1
    batch["colour"][:, :, 12, 12] = 0.5
    plain = unguided(batch)
    assert plain["sketch"].sum() == 0 and plain["colour"].abs().sum() == 0
    assert torch.equal(plain["mask"], batch["mask"]) and batch["sketch"].sum() > 0
