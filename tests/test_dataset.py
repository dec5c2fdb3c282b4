"""EditingDataset: the batch dict contract, conditioning values, determinism."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fashion_edit.config import MaskParams
from fashion_edit.data.dataset import EditingDataset
from fashion_edit.data.store import PreparedSplit, StoreError, open_split
from tests.folder_tree import make_tree, run_preprocess

KEYS = {"image", "parsing", "mask", "sketch", "colour", "noise", "known_fg", "index"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    run_preprocess(make_tree(root / "raw", count=16, height=48, width=48), root / "out")
    return root / "out" / "prepared"


@pytest.fixture(scope="module")
def train(prepared: Path) -> PreparedSplit:
    return open_split(prepared / "train")


def _dataset(split: PreparedSplit, seed: int = 0, fixed: bool = False, **mask_params: object) -> EditingDataset:
    return EditingDataset(split, MaskParams(**mask_params), seed=seed, fixed_masks=fixed)


def test_item_matches_the_contract(train: PreparedSplit) -> None:
    item = _dataset(train)[1]
    assert set(item) == KEYS
    shapes = {"image": (3, 32, 32), "parsing": (32, 32), "mask": (1, 32, 32), "sketch": (1, 32, 32),
              "colour": (3, 32, 32), "noise": (1, 32, 32), "known_fg": (1, 32, 32), "index": ()}
    for key, shape in shapes.items():
        assert tuple(item[key].shape) == shape, key
        assert item[key].dtype == (torch.int64 if key in ("parsing", "index") else torch.float32), key
    assert item["index"].item() == 1


def test_values_follow_the_conditioning_recipe(train: PreparedSplit) -> None:
    dataset = _dataset(train, garment_prob=0.0)
    for i in range(len(dataset)):
        item = {k: v.numpy() for k, v in dataset[i].items()}
        mask = item["mask"][0]
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.any()
        assert item["image"].min() >= -1 and item["image"].max() <= 1
        assert np.allclose(item["image"], np.asarray(train.images[i]).transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
        assert np.array_equal(item["parsing"], train.parsing[i])
        assert np.array_equal(item["sketch"][0], train.sketch[i] * mask)  # edges only inside the hole
        assert (item["noise"][0][mask == 0] == 0).all() and item["noise"][0][mask == 1].std() > 0.5
        expected_fg = (1 - mask) * (np.asarray(train.parsing[i]) != 0)
        assert np.array_equal(item["known_fg"][0], expected_fg)
        shown = np.abs(item["colour"]).sum(axis=0) > 0
        assert not shown[mask == 0].any()  # colour hints only inside the hole
        colour_map = np.asarray(train.colour[i]).transpose(2, 0, 1) / 127.5 - 1
        assert np.allclose(item["colour"][:, shown], colour_map[:, shown], atol=1e-6)


def test_same_seed_epoch_index_gives_the_same_item(train: PreparedSplit) -> None:
    a, b = _dataset(train, seed=3)[2], _dataset(train, seed=3)[2]
    assert all(torch.equal(a[k], b[k]) for k in KEYS)
    assert not torch.equal(a["noise"], _dataset(train, seed=4)[2]["noise"])


def test_new_epoch_draws_new_masks(train: PreparedSplit) -> None:
    dataset = _dataset(train)
    first = dataset[0]["mask"]
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0]["mask"])


def test_fixed_masks_use_the_stored_eval_masks_every_epoch(prepared: Path) -> None:
    test = open_split(prepared / "test")
    dataset = _dataset(test, fixed=True)
    first = [dataset[i] for i in range(len(dataset))]
    dataset.set_epoch(5)
    for i, item in enumerate(first):
        again = dataset[i]
        assert np.array_equal(item["mask"][0].numpy(), test.eval_masks[i])
        assert torch.equal(item["noise"], again["noise"]) and torch.equal(item["colour"], again["colour"])
        stroked = (test.eval_masks[i] & test.eval_strokes[i]).astype(bool)
        assert not (np.abs(item["colour"].numpy()).sum(axis=0) > 0)[~stroked].any()


def test_fixed_masks_need_an_eval_split(train: PreparedSplit) -> None:
    with pytest.raises(ValueError, match="eval_masks"):
        _dataset(train, fixed=True)


def test_batches_through_a_dataloader(train: PreparedSplit) -> None:
    batch = next(iter(DataLoader(_dataset(train), batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["index"].tolist() == [0, 1, 2, 3]


def test_index_out_of_range(train: PreparedSplit) -> None:
    with pytest.raises(IndexError):
        _dataset(train)[len(train)]


def test_open_split_reports_missing_and_inconsistent_files(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="stems.json: missing"):
        open_split(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("images", "parsing", "sketch", "colour"):
        (broken / f"{name}.npy").write_bytes((prepared / "train" / f"{name}.npy").read_bytes())
    (broken / "stems.json").write_text('["only-one"]')
    with pytest.raises(StoreError, match="to match 1 stems"):
        open_split(broken)
    (broken / "sketch.npy").write_bytes(b"garbage")
    with pytest.raises(StoreError, match="sketch.npy: not a readable"):
        open_split(broken)
