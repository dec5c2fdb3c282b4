"""Garment-category swaps: the generator's swapped figures (render_swapped), the paired test set built from the
prepared test split (fashion_edit/data/swap_pairs.py) and its stage (stages/swap_pairs.py)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fashion_edit.config import DataParams, Params, SynthesizeParams, load_params
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.preprocess import preprocess
from fashion_edit.data.sources import build_source
from fashion_edit.data.swap_pairs import (
    PAIRS_FILE, SUMMARY_FILE, TARGET_CATEGORY, SwapPairsError, build_swap_pairs, load_swap_pairs,
    write_swap_pairs,
)
from fashion_edit.data.synthetic import (
    Figure, SwapError, expected_labels, lower_shape, render_figure, render_swapped, write_dataset,
)
from fashion_edit.errors import FashionEditError
from fashion_edit.layout import PREPARED, RAW, SWAP_PAIRS
from tests.conftest import tiny_params, write_params

DEFAULT = SynthesizeParams()  # 128 px, supersample 2: the embedded dataset's figures
# sha256 of the first 40 default figures (image, parsing, keypoints, description) computed with the generator
# before render_swapped existed: the swap must not change a single byte of the dataset
ORIGINAL_DIGEST_40 = "fda8acb7e1a8eaef5062504583ca192ca5ec16e284b63e9569a31309629b4531"
FIGURES = 40
LOWER_BODY = tuple(LABEL_ID[n] for n in ("left-leg", "right-leg", "socks", "left-shoe", "right-shoe"))
HEAD = tuple(LABEL_ID[n] for n in ("hat", "hair", "sunglasses", "face"))
KERNEL = np.ones((3, 3), np.uint8)
# supersampled figures: a sub-pixel of the lower garment hidden by a final pixel's majority vote can still tint
# that pixel, so outside the lower body (grown 1 px) only pixels on a label edge may change, at most this share
EDGE_SHARE = 0.002
MEAN_COLOUR_TOLERANCE = 40  # per channel: the same pattern over another outline (gradients span their own box)


def _digest(count: int, p: SynthesizeParams) -> str:
    h = hashlib.sha256()
    for i in range(count):
        fig = render_figure(i, p)
        for part in (fig.image, fig.parsing, fig.keypoints):
            h.update(part.tobytes())
        h.update(json.dumps(fig.description, sort_keys=True).encode())
    return h.hexdigest()


def _pairs(p: SynthesizeParams) -> list[tuple[int, Figure, Figure]]:
    pairs = []
    for i in range(FIGURES):
        before = render_figure(i, p)
        shape = lower_shape(before.description)
        if shape in TARGET_CATEGORY:
            pairs.append((i, before, render_swapped(i, p, TARGET_CATEGORY[shape])))
    return pairs


@pytest.fixture(scope="module")
def swaps():
    """(index, before, after) of the swappable figures among the first 40 default figures."""
    return _pairs(DEFAULT)


def _garment(fig: Figure) -> dict:
    return next(g for g in fig.description["garments"] if g["shape"] == lower_shape(fig.description))


def _lower_region(before: Figure, after: Figure) -> np.ndarray:
    labels = [_garment(before)["label"], _garment(after)["label"], *LOWER_BODY]
    return np.isin(before.parsing, labels) | np.isin(after.parsing, labels)


def _on_edge(parsing: np.ndarray) -> np.ndarray:
    return cv2.dilate(parsing, KERNEL) != cv2.erode(parsing, KERNEL)


def _interior(mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), KERNEL).astype(bool)


# ------------------------------------------------------------------------------------------------ the generator
def test_original_figures_stay_byte_identical():
    assert _digest(FIGURES, DEFAULT) == ORIGINAL_DIGEST_40


def test_the_first_figures_cover_every_swap(swaps):
    assert {lower_shape(before.description) for _, before, _ in swaps} == set(TARGET_CATEGORY)


def test_a_swap_is_deterministic_and_keeps_the_pose(swaps):
    i, before, after = swaps[0]
    again = render_swapped(i, DEFAULT, after.description["garments"][1]["shape"])
    assert np.array_equal(again.image, after.image) and np.array_equal(again.parsing, after.parsing)
    assert np.array_equal(after.keypoints, before.keypoints)
    same = ("pose", "body", "skin", "hair", "background", "shoes", "hat", "scarf", "gloves", "sunglasses")
    assert {k: after.description[k] for k in same} == {k: before.description[k] for k in same}


def test_without_supersampling_only_the_lower_body_changes():
    """No anti-aliasing: every changed label is a lower-body one, and pixels change only there (plus the 1 px seam
    shading along the new outline)."""
    for _, before, after in _pairs(DEFAULT.model_copy(update={"supersample": 1})):
        region = _lower_region(before, after)
        assert not ((before.parsing != after.parsing) & ~region).any()
        grown = cv2.dilate(region.astype(np.uint8), KERNEL).astype(bool)
        assert not ((before.image != after.image).any(-1) & ~grown).any()


def test_outside_the_lower_body_only_anti_aliased_edges_change(swaps):
    for i, before, after in swaps:
        grown = cv2.dilate(_lower_region(before, after).astype(np.uint8), KERNEL).astype(bool)
        changed = ((before.image != after.image).any(-1) | (before.parsing != after.parsing)) & ~grown
        edges = _on_edge(before.parsing) | _on_edge(after.parsing)
        assert not (changed & ~edges).any(), f"figure {i}"
        assert changed.mean() <= EDGE_SHARE, f"figure {i}"


def test_the_head_is_untouched(swaps):
    for i, before, after in swaps:
        head = np.isin(before.parsing, HEAD)
        assert head.any() and np.array_equal(after.parsing[head], before.parsing[head]), f"figure {i}"
        assert np.array_equal(after.image[head], before.image[head]), f"figure {i}"


def test_the_new_garment_replaces_the_old_category(swaps):
    for i, before, after in swaps:
        old, new = _garment(before), _garment(after)
        target = TARGET_CATEGORY[old["shape"]]
        assert new["shape"] == target and new["label"] == LABEL_ID["pants" if target == "trousers" else "skirt"]
        present = set(np.unique(after.parsing).tolist())
        assert new["label"] in present and old["label"] not in present, f"figure {i}"
        assert present == expected_labels(after.description), f"figure {i}"  # legs shown exactly when bare
        legs = {LABEL_ID["left-leg"], LABEL_ID["right-leg"]}
        assert (legs <= present) == (target == "skirt"), f"figure {i}"
        assert after.description["swapped_from"] == old["shape"]


def test_the_new_garment_keeps_the_texture(swaps):
    for i, before, after in swaps:
        old, new = _garment(before), _garment(after)
        assert (new["texture"], new["colours"]) == (old["texture"], old["colours"])
        inside_old = _interior(before.parsing == old["label"])
        inside_new = _interior(after.parsing == new["label"])
        pixels = after.image[inside_new].astype(np.float32)
        # every texture blends or picks the garment's two colours: its pixels lie on the segment between them
        c1, c2 = (np.asarray(c, np.float32) for c in new["colours"])
        t = np.clip((pixels - c1) @ (c2 - c1) / max(float((c2 - c1) @ (c2 - c1)), 1e-6), 0, 1)
        off = np.linalg.norm(pixels - (c1 + t[:, None] * (c2 - c1)), axis=1)
        assert np.percentile(off, 95) <= 6, f"figure {i}: the new garment shows colours not in its texture"
        mean_gap = np.abs(pixels.mean(0) - before.image[inside_old].astype(np.float32).mean(0)).max()
        assert mean_gap <= (2 if old["texture"] == "solid" else MEAN_COLOUR_TOLERANCE), f"figure {i}"


def test_socks_and_attributes_follow_the_new_garment(swaps):
    for i, before, after in swaps:
        hem = after.description["attributes"]["hem_length"]
        if _garment(after)["shape"] == "trousers":
            assert after.description["socks"] is None and hem >= 1.0, f"figure {i}: trousers reach the ankles"
        else:
            assert hem < 1.0 and after.description["socks"] == before.description["socks"], f"figure {i}"
        assert after.description["attributes"]["sleeve_length"] == before.description["attributes"]["sleeve_length"]
        worn = {g["texture"] for g in after.description["garments"]}
        worn |= {after.description[k] for k in ("scarf", "socks") if after.description[k]}
        assert worn <= set(after.description["textures"]) <= worn | {"solid", "stripes", "checks"}  # + a hat's


def test_a_swap_the_figure_cannot_take_is_a_clear_error(swaps):
    dress = next(i for i in range(FIGURES) if lower_shape(render_figure(i, DEFAULT).description) == "dress")
    with pytest.raises(SwapError, match="dress"):
        render_swapped(dress, DEFAULT, "trousers")
    i, before, _ = swaps[0]
    with pytest.raises(SwapError, match="choose one of"):
        render_swapped(i, DEFAULT, lower_shape(before.description))
    with pytest.raises(SwapError, match="jeans"):
        render_swapped(i, DEFAULT, "jeans")


# ------------------------------------------------------------------------------------------------ the pair set
@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root with tiny params: 96x72 figures fitted (shrunk and padded) into 64x64, half of them test."""
    root = tmp_path_factory.mktemp("swap_tree")
    params = tiny_params({"synthesize": {"count": 40, "height": 96, "width": 72},
                          "preprocess": {"split": {"val": 0.1, "test": 0.5}}})
    write_params(root / "params.yaml", params)
    write_dataset(params.synthesize, root / RAW, root / "sheet.png")
    preprocess(build_source(params.data, root / RAW), params.data, params.preprocess, params.masks,
               root / PREPARED, root / "preprocess.json")
    return root


def _params(root: Path) -> Params:
    return load_params(root / "params.yaml")


def _build(root: Path, **changes):
    params = _params(root)
    sections = {"data": params.data, "synth": params.synthesize, "prep": params.preprocess, **changes}
    return build_swap_pairs(sections["data"], sections["synth"], sections["prep"], root / RAW, root / PREPARED)


def test_pairs_are_aligned_with_the_prepared_test_images(tree):
    pairs, summary = _build(tree)
    test_stems = json.loads((tree / PREPARED / "test" / "stems.json").read_text())
    descriptions = {d["stem"]: d for d in map(json.loads, (tree / RAW / "figures.jsonl").read_text().splitlines())}
    dresses = sum(lower_shape(descriptions[s]) == "dress" for s in test_stems)
    assert summary == {"pairs": len(test_stems) - dresses, "considered": len(test_stems),
                       "skipped": {"dress": dresses, "no lower garment": 0}, "source": "synthetic"}
    assert len(pairs) >= 5 and pairs.image_before.shape == (len(pairs), 64, 64, 3)
    images = np.load(tree / PREPARED / "test" / "images.npy")
    for n, stem in enumerate(pairs.stems):
        row = test_stems.index(str(stem))
        assert np.array_equal(pairs.image_before[n], images[row])
        shape = lower_shape(descriptions[str(stem)])
        assert pairs.target_category[n] == TARGET_CATEGORY[shape]
        assert pairs.source_label[n] in pairs.parsing_before[n] and pairs.source_label[n] not in pairs.parsing_after[n]
        assert pairs.target_label[n] in pairs.parsing_after[n]
        # the same letterbox: 72 px wide figures fill 48 of 64 columns, the 8-column bands are the same padding
        for band in (slice(0, 8), slice(56, 64)):
            assert np.array_equal(pairs.image_after[n][:, band], pairs.image_before[n][:, band])
            assert not pairs.parsing_after[n][:, band].any()


def test_a_photo_dataset_gives_an_empty_set(tree, tmp_path):
    pairs, summary = _build(tree, data=DataParams(source="folder"))
    assert len(pairs) == 0 and pairs.image_after.shape == (0, 64, 64, 3) and pairs.parsing_before.shape == (0, 64, 64)
    considered = len(json.loads((tree / PREPARED / "test" / "stems.json").read_text()))
    assert summary == {"pairs": 0, "considered": considered, "skipped": {"not synthetic": considered},
                       "source": "folder"}
    write_swap_pairs(pairs, summary, tmp_path)
    loaded = load_swap_pairs(tmp_path)
    assert len(loaded) == 0 and loaded.stems.dtype.kind == "U" and loaded.image_before.shape == (0, 64, 64, 3)


def test_raw_data_made_with_other_params_is_a_clear_error(tree):
    with pytest.raises(SwapPairsError, match=r"fig\d{6}: figure \d+ rendered with params.yaml synthesize .*"
                                             r"dvc repro synthesize"):
        _build(tree, synth=_params(tree).synthesize.model_copy(update={"seed": 9}))


def test_a_stale_prepared_split_is_a_clear_error(tree):
    prep = _params(tree).preprocess.model_copy(update={"height": 48, "width": 48})
    with pytest.raises(SwapPairsError, match="dvc repro preprocess"):
        _build(tree, prep=prep)


def test_broken_or_missing_pairs_files_are_clear_errors(tree, tmp_path):
    with pytest.raises(SwapPairsError, match=r"pairs.npz: missing; run `dvc repro swap_pairs`"):
        load_swap_pairs(tmp_path)
    (tmp_path / PAIRS_FILE).write_bytes(b"not an archive")
    with pytest.raises(SwapPairsError, match="not a readable .npz"):
        load_swap_pairs(tmp_path)
    pairs, _ = _build(tree)
    np.savez(tmp_path / PAIRS_FILE, image_before=pairs.image_before, stems=pairs.stems)
    with pytest.raises(SwapPairsError, match="'image_after' is missing") as raised:
        load_swap_pairs(tmp_path)
    assert isinstance(raised.value, FashionEditError) and "dvc repro swap_pairs" in str(raised.value)


def test_the_stage_writes_the_pairs(tree, capsys):
    from stages.swap_pairs import main

    assert main(["--params", str(tree / "params.yaml")]) == 0
    out = tree / SWAP_PAIRS
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert f"swap_pairs: {summary['pairs']} pairs of {summary['considered']} test figures" in capsys.readouterr().out
    pairs = load_swap_pairs(out)
    assert len(pairs) == summary["pairs"] > 0
    assert set(pairs.target_category.tolist()) <= {"trousers", "skirt"}


def test_the_stage_fails_in_one_line_on_foreign_raw_data(tree, tmp_path, capsys):
    from stages.swap_pairs import main

    root = tmp_path / "repo"
    shutil.copytree(tree / "data", root / "data", ignore=shutil.ignore_patterns("swap_pairs"))
    shutil.copy(tree / "params.yaml", root / "params.yaml")
    stem = json.loads((root / PREPARED / "test" / "stems.json").read_text())[0]
    image = root / RAW / "images" / f"{stem}.png"
    cv2.imwrite(str(image), 255 - cv2.imread(str(image)))
    assert main(["--params", str(root / "params.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"swap_pairs: error: {stem}:") and str(image) in err and "\n" not in err
    assert not (root / SWAP_PAIRS).exists()
