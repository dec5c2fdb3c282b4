"""preprocess: outputs, splits, conditioning, and one test per kind of bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fashion_edit.config import ColourParams, DataParams, MaskParams, SplitParams
from fashion_edit.data.conditioning import segment_mean_colour, sketch_edges
from fashion_edit.data.labels import LABEL_ID, PALETTE
import fashion_edit.data.preprocess as preprocess_module
from fashion_edit.data.preprocess import PreprocessError, assign_splits, fit_to_size
from fashion_edit.data.sources import DatasetError, RawItem, build_source
from fashion_edit.data.sources.folder import FolderSource, load_label_map
from fashion_edit.data.store import SPLITS, SplitWriter, open_split, read_manifest
from tests.folder_tree import IDENTITY_MAP, make_tree, run_preprocess, small_params, write_png

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "raw")


def _report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "report.json").read_text())


def _run_with_one_bad_item(raw: Path, tmp_path: Path) -> dict:
    run_preprocess(raw, tmp_path / "out")
    report = _report(tmp_path)
    assert report["read"] == 13 and report["kept"] == 12 and report["skipped"] == 1
    return report


# ------------------------------------------------------------------------- outputs
def test_outputs_shapes_and_manifest(raw: Path, tmp_path: Path) -> None:
    manifest = run_preprocess(raw, tmp_path / "out")
    prepared = tmp_path / "out" / "prepared"
    assert manifest == read_manifest(prepared)
    assert manifest["counts"] == {"train": 6, "val": 3, "test": 3}
    assert manifest["resolution"] == {"height": 32, "width": 32}
    stems = []
    for split in SPLITS:
        data = open_split(prepared / split)
        n = manifest["counts"][split]
        assert len(data) == n and data.images.shape == (n, 32, 32, 3) and data.colour.shape == (n, 32, 32, 3)
        assert data.parsing.shape == data.sketch.shape == (n, 32, 32)
        assert set(np.unique(data.sketch)) <= {0, 1}
        assert data.stems == sorted(data.stems)
        assert sum(manifest["label_histogram"][split]) == n * 32 * 32
        assert np.array_equal(np.bincount(np.asarray(data.parsing).ravel(), minlength=20), manifest["label_histogram"][split])
        if split == "train":
            assert data.eval_masks is None and data.eval_strokes is None
        else:
            assert data.eval_masks.shape == data.eval_strokes.shape == (n, 32, 32)
            assert all(data.eval_masks[i].any() for i in range(n))
        stems += data.stems
    assert sorted(stems) == [f"item{i:03d}" for i in range(12)]
    assert set(manifest["inputs_sha256"]) == {"all", *SPLITS}
    assert manifest["params"]["preprocess"]["height"] == 32
    assert not (tmp_path / "out" / "prepared.partial").exists()


def test_rerun_is_byte_identical(raw: Path, tmp_path: Path) -> None:
    first = run_preprocess(raw, tmp_path / "a")
    second = run_preprocess(raw, tmp_path / "b")
    assert first == second
    for split in SPLITS:
        for name in ("images", "parsing", "sketch", "colour"):
            a = (tmp_path / "a" / "prepared" / split / f"{name}.npy").read_bytes()
            assert a == (tmp_path / "b" / "prepared" / split / f"{name}.npy").read_bytes()
    a, b = open_split(tmp_path / "a" / "prepared" / "test"), open_split(tmp_path / "b" / "prepared" / "test")
    assert np.array_equal(a.eval_masks, b.eval_masks) and np.array_equal(a.eval_strokes, b.eval_strokes)


def test_worker_processes_give_identical_output(raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (raw / "images" / "bad.png").write_bytes(b"")
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(preprocess_module, "MIN_ITEMS_PER_WORKER", 1)  # use the pool even for 13 items
    source = FolderSource(raw, raw / "label_map.yaml")
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        outputs[workers] = preprocess_module.preprocess(
            source, DataParams(source="folder"), small_params(), MaskParams(), out / "prepared", out / "report.json",
            workers=workers,
        )
        assert json.loads((out / "report.json").read_text())["skipped_by_reason"] == {"empty file": 1}
    assert outputs[1] == outputs[2]
    for split in SPLITS:
        for name in ("images", "colour", "sketch") + (("eval_masks", "eval_strokes") if split != "train" else ()):
            one = (tmp_path / "w1" / "prepared" / split / f"{name}.npy").read_bytes()
            assert one == (tmp_path / "w2" / "prepared" / split / f"{name}.npy").read_bytes()


@pytest.mark.parametrize("capacity", [7, 12])  # 12: unused rows are trimmed, and N loses a digit (12 -> 7)
def test_split_writer_output_equals_np_save(tmp_path: Path, capacity: int) -> None:
    rng = np.random.default_rng(0)
    shapes = {"images": (5, 4, 3), "parsing": (5, 4), "sketch": (5, 4), "colour": (5, 4, 3),
              "eval_masks": (5, 4), "eval_strokes": (5, 4)}
    arrays = {name: rng.integers(0, 256, (7, *shape), dtype=np.uint8) for name, shape in shapes.items()}
    writer = SplitWriter(tmp_path / "val", capacity, 5, 4, with_eval=True)
    for i in range(7):
        writer.append(f"s{i}", **{name: array[i] for name, array in arrays.items()})
    assert writer.close() == 7
    for name, array in arrays.items():
        np.save(tmp_path / f"expected_{name}.npy", array)
        assert (tmp_path / "val" / f"{name}.npy").read_bytes() == (tmp_path / f"expected_{name}.npy").read_bytes()
    assert open_split(tmp_path / "val").stems == [f"s{i}" for i in range(7)]


def test_split_writer_moves_the_data_when_the_header_length_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fashion_edit.data.store as store_module

    exact = store_module._npy_header

    def longer_while_writing(shape: tuple[int, ...]) -> bytes:  # a valid header, 64 bytes longer
        header = exact(shape)
        if shape[0] != 3:  # the final header (2 rows) stays exact
            return header
        length = int.from_bytes(header[8:10], "little") + 64
        return header[:8] + length.to_bytes(2, "little") + header[10:-1] + b" " * 64 + b"\n"

    monkeypatch.setattr(store_module, "_npy_header", longer_while_writing)
    rows = np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4)
    writer = SplitWriter(tmp_path / "train", 3, 5, 4, with_eval=False)
    for row in rows:
        writer.append("s", images=np.stack([row] * 3, axis=-1), parsing=row, sketch=row, colour=np.stack([row] * 3, axis=-1))
    writer.close()
    np.save(tmp_path / "expected.npy", rows)
    assert (tmp_path / "train" / "parsing.npy").read_bytes() == (tmp_path / "expected.npy").read_bytes()


def test_split_writer_rejects_a_row_of_the_wrong_shape_naming_the_file(tmp_path: Path) -> None:
    writer = SplitWriter(tmp_path / "train", 2, 5, 4, with_eval=False)
    rows = {"images": np.zeros((5, 4, 3), np.uint8), "parsing": np.zeros((4, 5), np.uint8),
            "sketch": np.zeros((5, 4), np.uint8), "colour": np.zeros((5, 4, 3), np.uint8)}
    with pytest.raises(ValueError, match=r"parsing\.npy: row of shape \(4, 5\)"):
        writer.append("s0", **rows)
    writer.discard()


def test_a_file_shared_by_many_items_is_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "keypoints_loc.txt"
    shared.write_text("one table for every item\n")
    items = []
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(bytes([i]))
        items.append(RawItem(f"s{i}", tmp_path / f"{i}.png", None, keypoints_path=shared))
    hashed: list[Path] = []
    original = preprocess_module.file_sha256
    monkeypatch.setattr(preprocess_module, "file_sha256", lambda path: hashed.append(path) or original(path))
    hasher = preprocess_module.FileHasher(preprocess_module.shared_files(items))
    digests = [preprocess_module.item_digest(item, hasher) for item in items]
    assert hashed.count(shared) == 1 and len(hashed) == 6
    assert digests == [preprocess_module.item_digest(item, original) for item in items]


def test_input_change_changes_the_input_hash(raw: Path, tmp_path: Path) -> None:
    before = run_preprocess(raw, tmp_path / "a")["inputs_sha256"]["all"]
    image = cv2.imread(str(raw / "images" / "item000.png"))
    cv2.imwrite(str(raw / "images" / "item000.png"), 255 - image)
    assert run_preprocess(raw, tmp_path / "b")["inputs_sha256"]["all"] != before


def test_eval_masks_depend_on_the_eval_seed(raw: Path, tmp_path: Path) -> None:
    run_preprocess(raw, tmp_path / "a", small_params(eval_mask_seed=1))
    run_preprocess(raw, tmp_path / "b", small_params(eval_mask_seed=2))
    a, b = open_split(tmp_path / "a" / "prepared" / "val"), open_split(tmp_path / "b" / "prepared" / "val")
    assert not np.array_equal(a.eval_masks, b.eval_masks)


def test_non_square_input_keeps_aspect_and_pads_with_background(tmp_path: Path) -> None:
    raw = make_tree(tmp_path / "raw", height=64, width=32)
    run_preprocess(raw, tmp_path / "out")
    data = open_split(tmp_path / "out" / "prepared" / "train")
    parsing = np.asarray(data.parsing)
    assert (parsing[:, :, :8] == 0).all() and (parsing[:, :, 24:] == 0).all()  # 64x32 -> 32x16, centred
    assert (parsing[:, :, 8:24] != 0).any()


def test_fit_to_size_interpolation() -> None:
    parsing = np.zeros((40, 80), np.uint8)
    parsing[:, 40:] = 5
    image = np.zeros((40, 80, 3), np.uint8)
    out_image, out_parsing = fit_to_size(image, parsing, 32, 32)
    assert out_image.shape == (32, 32, 3) and out_parsing.shape == (32, 32)
    assert set(np.unique(out_parsing)) == {0, 5}  # nearest: no new label ids
    assert (out_parsing[:8] == 0).all() and (out_parsing[24:] == 0).all()  # 40x80 -> 16x32, centred


# -------------------------------------------------------------------------- splits
def _items(n: int, splits: list[str | None] | None = None) -> list[RawItem]:
    splits = splits or [None] * n
    return [RawItem(f"s{i:04d}", Path(f"s{i}.png"), Path(f"p{i}.png"), split=s) for i, s in enumerate(splits)]


def test_seeded_split_has_exact_counts_and_depends_on_seed() -> None:
    p = SplitParams(val=0.05, test=0.1)
    first = assign_splits(_items(1000), p, seed=0)
    assert (first.count("val"), first.count("test"), first.count("train")) == (50, 100, 850)
    assert first == assign_splits(_items(1000), p, seed=0)
    assert first != assign_splits(_items(1000), p, seed=1)


def test_official_split_is_kept_and_missing_test_is_carved_from_train() -> None:
    official = ["train"] * 80 + ["val"] * 20
    splits = assign_splits(_items(100, official), SplitParams(val=0.05, test=0.1), seed=0)
    assert splits[80:] == ["val"] * 20
    assert splits.count("test") == 8 and splits.count("val") == 20  # 10 % of the 80 train items


def test_official_split_files_of_the_folder_format(raw: Path, tmp_path: Path) -> None:
    (raw / "splits").mkdir()
    (raw / "splits" / "val.txt").write_text("item000\nitem001\n")
    (raw / "splits" / "test.txt").write_text("item002\n")
    run_preprocess(raw, tmp_path / "out")
    prepared = tmp_path / "out" / "prepared"
    assert open_split(prepared / "val").stems == ["item000", "item001"]
    assert open_split(prepared / "test").stems == ["item002"]


# ---------------------------------------------------------------------- conditioning
def test_colour_is_the_mean_of_each_segment() -> None:
    parsing = np.zeros((32, 32), np.uint8)
    parsing[:, 16:] = 5  # a straight border: the median filter leaves it in place
    image = np.zeros((32, 32, 3), np.uint8)
    image[parsing == 5] = (200, 40, 90)
    image[parsing == 0] = (10, 20, 30)
    colour = segment_mean_colour(image, parsing, ColourParams())
    assert np.array_equal(colour[16, 16], (200, 40, 90)) and np.array_equal(colour[0, 0], (10, 20, 30))
    for label in (0, 5):
        assert len(np.unique(colour[parsing == label], axis=0)) == 1


def test_sketch_is_canny_of_the_whole_image() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    edges = sketch_edges(image, 100, 200)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 1}
    assert edges[:, 15:17].any(axis=1).all() and not edges[:, :12].any()


def test_even_median_kernel_is_rejected_naming_the_param() -> None:
    with pytest.raises(ValueError, match="preprocess.colour.median"):
        segment_mean_colour(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), ColourParams(median=4))


# ----------------------------------------------------------------- label maps, sources
def test_label_map_accepts_names_and_splits_left_right_by_midline(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text("source: t\nmap: {0: background, 1: 14, 2: face}\nsplit_left_right: [left-arm]\n")
    label_map = load_label_map(tmp_path / "map.yaml")
    raw_ids = np.zeros((10, 20), np.uint8)
    raw_ids[:, 2:4] = 1  # arm on the image's left
    raw_ids[:, 16:18] = 1  # arm on the image's right
    raw_ids[2:8, 8:12] = 2
    make_tree(tmp_path / "raw", count=0)
    write_png(tmp_path / "raw" / "images" / "a.png", np.zeros((10, 20, 3), np.uint8))
    write_png(tmp_path / "raw" / "parsing" / "a.png", raw_ids)
    source = FolderSource(tmp_path / "raw", tmp_path / "map.yaml")
    parsing = source.load(next(source.items())).parsing
    assert (parsing[:, 2:4] == LABEL_ID["right-arm"]).all() and (parsing[:, 16:18] == LABEL_ID["left-arm"]).all()
    assert (parsing[2:8, 8:12] == LABEL_ID["face"]).all()
    assert label_map.split_pairs == ((LABEL_ID["left-arm"], LABEL_ID["right-arm"]),)


def test_label_map_with_a_bad_target_fails_naming_the_entry(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text("source: t\nmap: {0: background, 7: jacket}\n")
    with pytest.raises(DatasetError, match=r"map\[7\].*jacket"):
        load_label_map(tmp_path / "map.yaml")


def test_palette_parsing_png_gives_indices_not_colours(raw: Path) -> None:
    ids = np.zeros((40, 40), np.uint8)
    ids[10:30, 10:30] = 5
    image = Image.fromarray(ids, mode="P")
    image.putpalette([v for rgb in PALETTE for v in rgb])
    image.save(raw / "parsing" / "item000.png")
    source = FolderSource(raw, raw / "label_map.yaml")
    parsing = source.load(next(source.items())).parsing
    assert set(np.unique(parsing)) == {0, 5}


def test_build_source_dispatch_and_errors(tmp_path: Path) -> None:
    make_tree(tmp_path / "raw", count=1)
    assert type(build_source(DataParams(source="synthetic"), tmp_path / "raw")).__name__ == "SyntheticSource"
    with pytest.raises(DatasetError, match="data.root"):
        build_source(DataParams(source="folder"), tmp_path / "raw")
    with pytest.raises(DatasetError, match="dvc repro synthesize"):
        build_source(DataParams(source="synthetic"), tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="label map not found"):
        build_source(DataParams(source="folder", root=str(tmp_path / "raw"), label_map=str(tmp_path / "x.yaml")), tmp_path)


# ----------------------------------------------------------- bad inputs, one test each
def test_corrupt_image_is_skipped(raw: Path, tmp_path: Path) -> None:
    (raw / "images" / "bad.png").write_bytes(b"this is not a png" * 10)
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 40), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"unreadable image": 1}
    assert report["skipped_files"][0]["file"].endswith("images/bad.png")


def test_truncated_image_is_skipped(raw: Path, tmp_path: Path) -> None:
    data = (raw / "images" / "item005.png").read_bytes()
    (raw / "images" / "bad.png").write_bytes(data[: len(data) // 2])
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 40), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"unreadable image": 1}


def test_zero_byte_image_is_skipped(raw: Path, tmp_path: Path) -> None:
    (raw / "images" / "bad.png").write_bytes(b"")
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 40), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"empty file": 1}


def test_zero_byte_parsing_is_skipped(raw: Path, tmp_path: Path) -> None:
    write_png(raw / "images" / "bad.png", np.zeros((40, 40, 3), np.uint8))
    (raw / "parsing" / "bad.png").write_bytes(b"")
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"empty file": 1}
    assert report["skipped_files"][0]["file"].endswith("parsing/bad.png")


def test_ids_the_label_map_lacks_fail_naming_each_id_and_its_item_count(raw: Path, tmp_path: Path) -> None:
    for k in range(3):  # a map missing a common class would drop every item showing it: a biased subset
        ids = np.zeros((40, 40), np.uint8)
        ids[5:10, 5:10] = 23
        ids[20:25, 20:25] = 24 if k == 0 else 0
        write_png(raw / "images" / f"bad{k}.png", np.zeros((40, 40, 3), np.uint8))
        write_png(raw / "parsing" / f"bad{k}.png", ids)
    with pytest.raises(PreprocessError, match=r"label map lacks .*id 23 in 3 items, id 24 in 1 item, of 15 items"):
        run_preprocess(raw, tmp_path / "out")
    report = _report(tmp_path)  # written first: the list of files is there
    assert report["skipped_by_reason"] == {"unknown label id": 3}
    assert not (tmp_path / "out" / "prepared").exists()


def test_image_parsing_size_mismatch_is_skipped(raw: Path, tmp_path: Path) -> None:
    write_png(raw / "images" / "bad.png", np.zeros((40, 40, 3), np.uint8))
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 30), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"size mismatch": 1}


def test_image_without_parsing_is_skipped(raw: Path, tmp_path: Path) -> None:
    write_png(raw / "images" / "bad.png", np.zeros((40, 40, 3), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"missing file": 1}
    assert report["skipped_files"][0]["file"].endswith("parsing/bad.png")


def test_parsing_without_image_is_skipped(raw: Path, tmp_path: Path) -> None:
    write_png(raw / "parsing" / "bad.png", np.zeros((40, 40), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {"missing file": 1}
    assert report["skipped_files"][0]["file"].endswith("images/bad.png")


def test_nothing_usable_fails_clearly_and_still_reports(tmp_path: Path) -> None:
    raw = make_tree(tmp_path / "raw", count=3)
    for image in (raw / "images").iterdir():
        image.write_bytes(b"")
    with pytest.raises(PreprocessError, match="no usable items: all 3 items were skipped"):
        run_preprocess(raw, tmp_path / "out")
    assert _report(tmp_path)["skipped"] == 3
    assert not (tmp_path / "out" / "prepared").exists() and not (tmp_path / "out" / "prepared.partial").exists()


def test_empty_split_fails_naming_the_split_and_param(tmp_path: Path) -> None:
    raw = make_tree(tmp_path / "raw", count=4)
    with pytest.raises(PreprocessError, match=r"split 'val' is empty.*skipped: none\).*preprocess\.split\.val"):
        run_preprocess(raw, tmp_path / "out", small_params(split=SplitParams(val=0.0, test=0.25)))


def test_empty_dataset_fails(tmp_path: Path) -> None:
    raw = make_tree(tmp_path / "raw", count=0)
    with pytest.raises(PreprocessError, match="no items"):
        run_preprocess(raw, tmp_path / "out")


def test_stage_exits_non_zero_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    raw = make_tree(tmp_path / "raw", count=2)
    for image in (raw / "images").iterdir():
        image.write_bytes(b"")
    params = (REPO / "params.yaml").read_text().replace('  root: ""', f'  root: "{raw}"', 1)
    params = params.replace("  source: synthetic", "  source: folder", 1)
    (tmp_path / "params.yaml").write_text(params)
    result = subprocess.run(
        [sys.executable, "-m", "stages.preprocess", "--params", str(tmp_path / "params.yaml"),
         "--out", str(tmp_path / "prepared"), "--report", str(tmp_path / "report.json")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1
    assert "preprocess: error: no usable items" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["skipped_by_reason"] == {"empty file": 2}


@pytest.mark.parametrize("height, width, reason, param", [
    (6, 6, "too small", "preprocess.max_upscale 4"),  # 32x32 target: 5.3x
    (16, 512, "extreme aspect ratio", "preprocess.max_aspect 4"),  # 32x off a square target
], ids=["tiny", "strip"])
def test_a_photo_the_letterbox_would_ruin_is_a_counted_skip(raw: Path, tmp_path: Path, height: int, width: int,
                                                            reason: str, param: str) -> None:
    write_png(raw / "images" / "odd.png", np.zeros((height, width, 3), np.uint8))
    write_png(raw / "parsing" / "odd.png", np.zeros((height, width), np.uint8))
    report = _run_with_one_bad_item(raw, tmp_path)
    assert report["skipped_by_reason"] == {reason: 1}
    assert param in report["skipped_files"][0]["reason"]


def test_two_photos_with_one_name_are_a_counted_skip(raw: Path, tmp_path: Path) -> None:
    """Which of a.jpg and a.png the parsing a.png belongs to is unknown: neither is guessed."""
    stem = sorted(p.stem for p in (raw / "images").iterdir())[0]
    image = cv2.imread(str(raw / "images" / f"{stem}.png"))
    cv2.imwrite(str(raw / "images" / f"{stem}.jpg"), 255 - image)
    run_preprocess(raw, tmp_path / "out")
    report = _report(tmp_path)
    assert (report["read"], report["kept"], report["skipped"]) == (12, 11, 1)
    assert report["skipped_by_reason"] == {"duplicate name": 1}
    assert f"{stem}.png has the same stem" in report["skipped_files"][0]["reason"]
