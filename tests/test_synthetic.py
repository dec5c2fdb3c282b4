"""The procedural dressed-figure generator and the `synthesize` stage."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from fashion_edit.config import SynthesizeParams
from fashion_edit.data.labels import LABEL_ID, NUM_CLASSES
from fashion_edit.data.synthetic import (
    GARMENT_SHAPES, KEYPOINT_FORMAT, KEYPOINT_NAMES, SIDE_LABELS, TEXTURES, SynthesizeError, expected_labels,
    majority_downsample, render_figure, write_dataset,
)

SMALL = SynthesizeParams(count=10, height=96, width=96, seed=3, contact_sheet=6)


@pytest.fixture(scope="module")
def figures():
    """200 default-size figures, rendered once for the statistical tests."""
    p = SynthesizeParams(count=200)
    return [render_figure(i, p) for i in range(p.count)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_same_params_write_byte_identical_files(tmp_path):
    write_dataset(SMALL, tmp_path / "a", tmp_path / "a" / "sheet.png")
    write_dataset(SMALL, tmp_path / "b", tmp_path / "b" / "sheet.png")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 3 * SMALL.count + 3 and a == b


def test_different_seed_gives_different_images():
    other = SMALL.model_copy(update={"seed": SMALL.seed + 1})
    assert not np.array_equal(render_figure(0, SMALL).image, render_figure(0, other).image)


def test_a_figure_regenerates_alone(tmp_path):
    write_dataset(SMALL, tmp_path, tmp_path / "sheet.png")
    fig = render_figure(7, SMALL)
    on_disk = cv2.cvtColor(cv2.imread(str(tmp_path / "images" / "fig000007.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(fig.image, on_disk)
    assert np.array_equal(fig.parsing, cv2.imread(str(tmp_path / "parsing" / "fig000007.png"), cv2.IMREAD_UNCHANGED))


def test_raw_layout_matches_the_contract(tmp_path):
    summary = write_dataset(SMALL, tmp_path / "raw", tmp_path / "figs" / "sheet.png")
    raw = tmp_path / "raw"
    stems = [f"fig{i:06d}" for i in range(SMALL.count)]
    assert sorted(f.stem for f in (raw / "images").iterdir()) == stems
    parsing = Image.open(raw / "parsing" / "fig000000.png")
    assert parsing.mode == "L" and parsing.size == (SMALL.width, SMALL.height)
    assert Image.open(raw / "images" / "fig000000.png").mode == "RGB"
    kp = json.loads((raw / "keypoints" / "fig000000.json").read_text())
    assert kp["format"] == KEYPOINT_FORMAT and np.asarray(kp["keypoints"]).shape == (len(KEYPOINT_NAMES), 3)
    label_map = yaml.safe_load((raw / "label_map.yaml").read_text())
    assert label_map["map"] == {i: i for i in range(NUM_CLASSES)} and "synthetic" in label_map["source"]
    lines = [json.loads(line) for line in (raw / "figures.jsonl").read_text().splitlines()]
    assert [d["stem"] for d in lines] == stems
    sheet = Image.open(tmp_path / "figs" / "sheet.png")
    assert sheet.width > 2 * SMALL.width * SMALL.contact_sheet // 2 and sheet.height > SMALL.height
    assert summary["count"] == SMALL.count


def test_rerun_with_fewer_figures_leaves_no_stale_files(tmp_path):
    write_dataset(SMALL, tmp_path, tmp_path / "sheet.png")
    write_dataset(SMALL.model_copy(update={"count": 3}), tmp_path, tmp_path / "sheet.png")
    for sub in ("images", "parsing", "keypoints"):
        assert len(list((tmp_path / sub).iterdir())) == 3
    assert len((tmp_path / "figures.jsonl").read_text().splitlines()) == 3


def test_refuses_to_clear_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(SynthesizeError, match="holiday.jpg"):
        write_dataset(SMALL, tmp_path, tmp_path / "sheet.png")
    assert (tmp_path / "images" / "holiday.jpg").exists()


def test_labels_present_match_the_description(figures):
    for fig in figures:
        assert set(np.unique(fig.parsing).tolist()) == expected_labels(fig.description), fig.description["stem"]


def test_solid_garments_show_their_colour(figures):
    checked = 0
    for fig in figures:
        for g in fig.description["garments"]:
            if g["texture"] != "solid":
                continue
            # interior pixels (away from AA edges and seams) carry exactly the garment colour
            inner = cv2.erode((fig.parsing == g["label"]).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if inner.sum() < 40:  # tiny regions are mostly pixels that also hold a bit of a neighbour
                continue
            close = np.abs(fig.image[inner].astype(int) - g["colours"][0]).max(1) <= 3
            assert close.mean() > 0.9, (fig.description["stem"], g["shape"])
            checked += 1
    assert checked > 30


def test_patterned_garments_show_both_colours(figures):
    for fig in figures:
        for g in fig.description["garments"]:
            inner = cv2.erode((fig.parsing == g["label"]).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if g["texture"] not in ("stripes", "dots") or inner.sum() < 200:
                continue
            pixels = fig.image[inner].astype(int)
            for colour in g["colours"]:  # each colour is the nearest of the two for some pixels
                own = np.abs(pixels - colour).sum(1)
                other = np.abs(pixels - [c for c in g["colours"] if c != colour][0]).sum(1)
                assert (own < other).any(), (fig.description["stem"], g["shape"])


def test_left_labels_lie_on_the_image_right(figures):
    for fig in figures:
        xs = np.arange(fig.parsing.shape[1])[None, :]
        for left, right in SIDE_LABELS.values():
            if (fig.parsing == left).any() and (fig.parsing == right).any():
                mean_x = [np.broadcast_to(xs, fig.parsing.shape)[fig.parsing == lab].mean() for lab in (left, right)]
                assert mean_x[0] > mean_x[1], fig.description["stem"]
        kp = {name: fig.keypoints[i] for i, name in enumerate(KEYPOINT_NAMES)}
        for joint in ("shoulder", "hip", "ankle"):
            assert kp[f"left_{joint}"][0] > kp[f"right_{joint}"][0]


def test_variety_of_garments_textures_and_accessories(figures):
    descriptions = [f.description for f in figures]
    shapes = {g["shape"] for d in descriptions for g in d["garments"]}
    textures = {t for d in descriptions for t in d["textures"]}
    assert shapes == set(GARMENT_SHAPES) and len(shapes) >= 7
    assert textures == set(TEXTURES) and len(textures) >= 5
    assert len({d["background"] for d in descriptions}) >= 3
    assert len({tuple(d["skin"]) for d in descriptions}) > 50
    for key in ("hat", "sunglasses", "scarf", "gloves", "socks"):
        assert any(d[key] for d in descriptions), key
    heights = [d["body"]["unit_px"] for d in descriptions]
    assert max(heights) > 1.2 * min(heights)  # scale varies


def test_keypoints_lie_on_the_figure(figures):
    for fig in figures:
        h, w = fig.parsing.shape
        x, y, visible = fig.keypoints.T
        assert fig.keypoints.dtype == np.float32 and (visible == 1).all()
        assert (x >= 0).all() and (x <= w - 1).all() and (y >= 0).all() and (y <= h - 1).all()
        for i in range(1, len(KEYPOINT_NAMES)):  # all joints but the head top sit inside the body
            assert fig.parsing[int(round(y[i])), int(round(x[i]))] != 0, (fig.description["stem"], KEYPOINT_NAMES[i])
        neck = fig.parsing[int(round(y[1])), int(round(x[1]))]
        assert neck != LABEL_ID["face"]
        border = np.concatenate([fig.parsing[0], fig.parsing[-1], fig.parsing[:, 0], fig.parsing[:, -1]])
        assert not border.any(), "figures are never cropped (all keypoints visible)"


@pytest.mark.parametrize("size", [(160, 96), (96, 160), (128, 128)])
@pytest.mark.parametrize("supersample", [1, 3])
def test_other_sizes_and_supersampling(size, supersample):
    p = SynthesizeParams(height=size[0], width=size[1], supersample=supersample, seed=1)
    for i in range(8):
        fig = render_figure(i, p)
        assert fig.image.shape == (*size, 3) and fig.image.dtype == np.uint8
        assert fig.parsing.shape == size and fig.parsing.dtype == np.uint8
        assert set(np.unique(fig.parsing).tolist()) == expected_labels(fig.description)


def test_majority_downsample_picks_the_label_covering_most_of_each_block():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (64, 64)).astype(np.uint8)
    for s in (2, 4):
        out = majority_downsample(labels, s)
        blocks = labels.reshape(64 // s, s, 64 // s, s).transpose(0, 2, 1, 3).reshape(64 // s, 64 // s, -1)
        counts = np.stack([(blocks == k).sum(-1) for k in range(4)], -1)
        assert (counts[np.arange(64 // s)[:, None], np.arange(64 // s)[None, :], out] == counts.max(-1)).all()
    assert majority_downsample(np.array([[1, 2], [2, 2]], np.uint8), 2).tolist() == [[2]]


def test_stage_cli_writes_dataset(tmp_path, capsys):
    from stages.synthesize import main
    from tests.conftest import tiny_params, write_params

    params = tmp_path / "params.yaml"
    write_params(params, tiny_params({"synthesize": {"count": 4, "height": 64, "width": 48, "contact_sheet": 2}}))
    main(["--params", str(params), "--out", str(tmp_path / "raw"), "--sheet", str(tmp_path / "sheet.png")])
    assert "4 figures 64x48" in capsys.readouterr().out
    assert len(list((tmp_path / "raw" / "images").iterdir())) == 4 and (tmp_path / "sheet.png").is_file()
