"""Real-dataset readers on small fixture trees in each dataset's exact on-disk layout.

Every fixture paints the same frontal figure (hair, face, neck, top, bare arms, belt,
shorts, bare legs, shoes, a bag) in the source's own label ids, writes it in the source's
file formats (JPEG photos, mode-L or palette PNG labels, keypoint text/JSON, split lists)
and checks where the labels land in LIP-20, the counts per split and the skip report of the
real ``preprocess``.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fashion_edit.config import DataParams, MaskParams, PreprocessParams, SplitParams
from fashion_edit.data.body_sides import assign_body_sides
from fashion_edit.data.labels import LABEL_ID, LEFT_RIGHT_PAIRS, PALETTE
from fashion_edit.data.preprocess import PreprocessError, preprocess
from fashion_edit.data.sources import SOURCES, DatasetError, SampleSkipped, build_source

H, W = 220, 150
L = LABEL_ID

# part -> (top, bottom, left, right), painted in this order; the figure's midline is x = 75
PARTS = {
    "hair": (8, 22, 60, 90),
    "face": (20, 45, 64, 86),
    "neck": (45, 55, 69, 81),
    "top": (55, 110, 50, 100),
    "arm_image_left": (58, 126, 38, 48),  # hands hang below the waist (row 108)
    "arm_image_right": (58, 126, 102, 112),
    "belt": (108, 112, 52, 98),
    "shorts": (112, 150, 52, 98),
    "leg_image_left": (150, 200, 54, 70),
    "leg_image_right": (150, 200, 80, 96),
    "shoe_image_left": (200, 212, 52, 72),
    "shoe_image_right": (200, 212, 78, 98),
    "bag": (95, 115, 120, 130),
}
# a frontal figure: the person's right limbs are on the image's left
EXPECTED_LIP20 = {
    "hair": L["hair"], "face": L["face"], "neck": L["torso-skin"], "top": L["upper-clothes"],
    "arm_image_left": L["right-arm"], "arm_image_right": L["left-arm"], "belt": L["pants"],
    "shorts": L["pants"], "leg_image_left": L["right-leg"], "leg_image_right": L["left-leg"],
    "shoe_image_left": L["right-shoe"], "shoe_image_right": L["left-shoe"], "bag": L["background"],
}
# source ids per part (the published class lists)
DEEPFASHION_MM_IDS = {
    "hair": 13, "face": 14, "neck": 15, "top": 1, "arm_image_left": 15, "arm_image_right": 15, "belt": 10,
    "shorts": 5, "leg_image_left": 15, "leg_image_right": 15, "shoe_image_left": 11, "shoe_image_right": 11,
    "bag": 12,
}
CIHP_IDS = {**EXPECTED_LIP20, "belt": 9, "bag": 0}  # CIHP / LIP / VITON-HD ids are the LIP-20 ids
ATR_IDS = {
    "hair": 2, "face": 11, "neck": 0, "top": 4, "arm_image_left": 15, "arm_image_right": 14, "belt": 8,
    "shorts": 6, "leg_image_left": 13, "leg_image_right": 12, "shoe_image_left": 10, "shoe_image_right": 9,
    "bag": 16,
}
EXPECTED_ATR = {**EXPECTED_LIP20, "neck": L["background"]}
# 21 DeepFashion-MultiModal keypoints placed symmetrically about x = 75; two are absent (-1, -1)
DFMM_KEYPOINTS = [(75, 30), (75, 50)] + [(75 + s * d, y) for d, y in ((12, 55), (30, 90), (32, 120), (12, 112),
                                                                       (14, 150), (14, 185), (14, 205))
                                          for s in (-1, 1)] + [(75, 100), (-1, -1), (-1, -1), (75, 80), (75, 70)]
PREP = PreprocessParams(height=64, width=64)
# with a skipped item: large enough val/test fractions that no split can end up empty
PREP_SKIPS = PreprocessParams(height=64, width=64, split=SplitParams(val=0.34, test=0.34))


# --------------------------------------------------------------------------- fixture writers
def paint(ids: dict[str, int], parts: dict[str, tuple[int, int, int, int]] = PARTS) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    for part, (y0, y1, x0, x1) in parts.items():
        labels[y0:y1, x0:x1] = ids[part]
    return labels


def photo(labels: np.ndarray, seed: int) -> np.ndarray:
    """A textured RGB rendering of a label image (colour per id + noise)."""
    rng = np.random.default_rng(seed)
    colours = np.array(PALETTE * 13, dtype=np.float32)[: 256]
    image = colours[labels] * 0.8 + rng.uniform(0, 50, (H, W, 3))
    return image.clip(0, 255).astype(np.uint8)


def write_jpg(path: Path, labels: np.ndarray, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(photo(labels, seed), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def write_label_png(path: Path, labels: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:  # indices = label ids, colours = a visualisation palette (how VITON-HD/ATR ship them)
        image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        image.putpalette([c for rgb in PALETTE for c in rgb] + [0] * (768 - 3 * len(PALETTE)))
    else:
        image = Image.fromarray(labels)  # mode "L"
    image.save(path)


def assert_parts(parsing: np.ndarray, expected: dict[str, int]) -> None:
    """Every part's pixels (minus a 1-pixel border against JPEG-free label edges) have its LIP-20 id."""
    for part, (y0, y1, x0, x1) in PARTS.items():
        later = list(PARTS)[list(PARTS).index(part) + 1 :]
        region = np.zeros((H, W), bool)
        region[y0:y1, x0:x1] = True
        for other in later:  # parts painted later cover earlier ones
            oy0, oy1, ox0, ox1 = PARTS[other]
            region[oy0:oy1, ox0:ox1] = False
        values = np.unique(parsing[region])
        assert values.tolist() == [expected[part]], f"{part}: got LIP-20 ids {values.tolist()}, want {expected[part]}"


def run_preprocess(source, tmp_path: Path, p: PreprocessParams = PREP) -> tuple[dict, dict]:
    manifest = preprocess(source, DataParams(), p, MaskParams(), tmp_path / "prepared", tmp_path / "report.json")
    return manifest, json.loads((tmp_path / "report.json").read_text())


def dfmm_tree(root: Path, names: list[str], keypoints: bool = True) -> Path:
    labels = paint(DEEPFASHION_MM_IDS)
    rows = []
    for i, name in enumerate(names):
        write_jpg(root / "image" / f"{name}.jpg", labels, seed=i)
        write_label_png(root / "segm" / f"{name}_segm.png", labels)
        rows.append(f"{name}.jpg " + " ".join(f"{x} {y}" for x, y in DFMM_KEYPOINTS))
    if keypoints:
        (root / "keypoints").mkdir(parents=True)
        (root / "keypoints" / "keypoints_loc.txt").write_text("\n".join(rows) + "\n")
    return root


DFMM_NAMES = [f"WOMEN-Dresses-id_0000000{i}-01_1_front" for i in range(6)]


def source_for(name: str, root: Path, **extra: str):
    return build_source(DataParams(source=name, root=str(root), **extra), root / "unused-raw")


# --------------------------------------------------------------------------- DeepFashion-MultiModal
def test_deepfashion_mm_labels_land_on_lip20(tmp_path: Path) -> None:
    source = source_for("deepfashion_mm", dfmm_tree(tmp_path / "dfmm", DFMM_NAMES[:1]))
    (item,) = list(source.items())
    sample = source.load(item)
    assert sample.image.shape == (H, W, 3) and sample.keypoints.shape == (21, 3)
    assert sample.keypoints[:, 2].sum() == 19  # two points are (-1, -1)
    assert_parts(sample.parsing, EXPECTED_LIP20)


def test_deepfashion_mm_without_keypoints_uses_the_foreground_midline(tmp_path: Path) -> None:
    source = source_for("deepfashion_mm", dfmm_tree(tmp_path / "dfmm", DFMM_NAMES[:1], keypoints=False))
    (item,) = list(source.items())
    assert item.keypoints_path is None
    assert_parts(source.load(item).parsing, EXPECTED_LIP20)


def test_deepfashion_mm_preprocess_counts_and_seeded_split(tmp_path: Path) -> None:
    root = dfmm_tree(tmp_path / "dfmm", DFMM_NAMES)
    write_jpg(root / "image" / "MEN-Denim-id_00000099-01_7_additional.jpg", paint(DEEPFASHION_MM_IDS))  # no segm
    manifest, report = run_preprocess(source_for("deepfashion_mm", root), tmp_path)
    assert report["read"] == 6 and report["skipped"] == 0  # photos without parsing are not part of the source
    assert manifest["counts"] == {"train": 4, "val": 1, "test": 1}
    histogram = np.sum([manifest["label_histogram"][s] for s in ("train", "val", "test")], axis=0)
    present = set(np.flatnonzero(histogram).tolist())
    assert present == set(EXPECTED_LIP20.values())


def test_deepfashion_mm_back_view_mirrors_left_and_right(tmp_path: Path) -> None:
    back = {**DEEPFASHION_MM_IDS, "face": 13}  # seen from the back: hair where the face was
    parsing = source_for("deepfashion_mm", dfmm_tree(tmp_path / "dfmm", DFMM_NAMES[:1])).label_map.apply(
        paint(back), Path("x.png")
    )
    sides = assign_body_sides(parsing, LEFT_RIGHT_PAIRS, skin=L["torso-skin"])
    assert np.unique(sides[70:120, 38:48]).tolist() == [L["left-arm"]]
    assert np.unique(sides[160:190, 80:96]).tolist() == [L["right-leg"]]


def test_keypoint_midline_overrides_the_foreground(tmp_path: Path) -> None:
    source = source_for("deepfashion_mm", dfmm_tree(tmp_path / "dfmm", DFMM_NAMES[:1]))
    parsing = source.label_map.apply(paint(DEEPFASHION_MM_IDS), Path("x.png"))
    keypoints = np.array([[115, 40, 1], [118, 120, 1], [-1, -1, 0]], np.float32)  # midline x = 116.5
    sides = assign_body_sides(parsing, LEFT_RIGHT_PAIRS, skin=L["torso-skin"], keypoints=keypoints)
    assert np.unique(sides[110:126, 102:112]).tolist() == [L["right-arm"]]  # now left of the midline


def test_deepfashion_mm_truncated_keypoint_row_is_a_counted_skip(tmp_path: Path) -> None:
    root = dfmm_tree(tmp_path / "dfmm", DFMM_NAMES)
    kp_file = root / "keypoints" / "keypoints_loc.txt"
    lines = kp_file.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:20])  # truncated row of the third image
    kp_file.write_text("\n".join(lines) + "\n")
    manifest, report = run_preprocess(source_for("deepfashion_mm", root), tmp_path, PREP_SKIPS)
    assert report["skipped_by_reason"] == {"bad keypoints": 1}
    (skip,) = report["skipped_files"]
    assert skip["file"] == str(kp_file) and "line 3" in skip["reason"] and DFMM_NAMES[2] in skip["reason"]
    assert sum(manifest["counts"].values()) == 5


def test_deepfashion_mm_parsing_without_image_is_a_counted_skip(tmp_path: Path) -> None:
    root = dfmm_tree(tmp_path / "dfmm", DFMM_NAMES)
    (root / "image" / f"{DFMM_NAMES[0]}.jpg").unlink()
    _, report = run_preprocess(source_for("deepfashion_mm", root), tmp_path, PREP_SKIPS)
    assert report["skipped_by_reason"] == {"missing file": 1}
    assert report["skipped_files"][0]["file"].endswith(f"{DFMM_NAMES[0]}.jpg")


# --------------------------------------------------------------------------- VITON-HD
def viton_tree(root: Path, train: int = 4, test: int = 2) -> Path:
    labels = paint(CIHP_IDS)
    body25 = [v for x, y in DFMM_KEYPOINTS[:21] for v in ((x, y, 0.9) if x >= 0 else (0, 0, 0))] + [0.0] * 12
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            stem = f"{i:05d}_00"
            write_jpg(root / split / "image" / f"{stem}.jpg", labels, seed=i)
            write_label_png(root / split / "image-parse-v3" / f"{stem}.png", labels, palette=True)
            keypoints = root / split / "openpose_json" / f"{stem}_keypoints.json"
            keypoints.parent.mkdir(parents=True, exist_ok=True)
            person = {"person_id": [-1], "pose_keypoints_2d": body25}
            keypoints.write_text(json.dumps({"version": 1.3, "people": [person]}))
    return root


def test_viton_hd_palette_parsing_and_openpose_keypoints(tmp_path: Path) -> None:
    source = source_for("viton_hd", viton_tree(tmp_path / "viton", train=1, test=1))
    items = list(source.items())
    assert [(i.stem, i.split) for i in items] == [("train-00000_00", "train"), ("test-00000_00", "test")]
    sample = source.load(items[0])
    assert sample.keypoints.shape == (25, 3) and sample.keypoints[:, 2].sum() == 19
    assert_parts(sample.parsing, EXPECTED_LIP20)


def test_viton_hd_official_split_with_val_carved_from_train(tmp_path: Path) -> None:
    manifest, report = run_preprocess(source_for("viton_hd", viton_tree(tmp_path / "viton")), tmp_path)
    assert report["skipped"] == 0
    assert manifest["counts"] == {"train": 3, "val": 1, "test": 2}


def test_viton_hd_unknown_palette_index_fails_naming_it(tmp_path: Path) -> None:
    root = viton_tree(tmp_path / "viton", train=6)
    bad = root / "train" / "image-parse-v3" / "00001_00.png"
    labels = paint(CIHP_IDS)
    labels[0:5, 0:5] = 25  # not a CIHP class
    write_label_png(bad, labels, palette=True)
    with pytest.raises(PreprocessError, match=r"id 25 in 1 item, of 8 items"):
        run_preprocess(source_for("viton_hd", root), tmp_path, PREP_SKIPS)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["skipped_files"][0]["file"] == str(bad) and "[25]" in report["skipped_files"][0]["reason"]


def test_viton_hd_keypoints_without_people_is_a_counted_skip(tmp_path: Path) -> None:
    root = viton_tree(tmp_path / "viton", train=6)
    bad = root / "test" / "openpose_json" / "00001_00_keypoints.json"
    bad.write_text(json.dumps({"version": 1.3, "people": []}))
    _, report = run_preprocess(source_for("viton_hd", root), tmp_path, PREP_SKIPS)
    assert report["skipped_by_reason"] == {"bad keypoints": 1}
    assert report["skipped_files"][0]["file"] == str(bad)


# --------------------------------------------------------------------------- LIP / CIHP / ATR
def lip_tree(root: Path, train: int = 4, val: int = 2) -> Path:
    labels = paint(CIHP_IDS)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            stem = f"{100000 + i}_{i}"
            write_jpg(root / "TrainVal_images" / f"{split}_images" / f"{stem}.jpg", labels, seed=i)
            write_label_png(root / "TrainVal_parsing_annotations" / f"{split}_segmentations" / f"{stem}.png", labels)
    return root


def cihp_tree(root: Path, train: int = 4, val: int = 2) -> Path:
    labels = paint(CIHP_IDS)
    base = root / "instance-level_human_parsing"
    for folder, count in (("Training", train), ("Validation", val)):
        for i in range(count):  # the same ids in both folders, as in the release
            write_jpg(base / folder / "Images" / f"{i:07d}.jpg", labels, seed=i)
            write_label_png(base / folder / "Category_ids" / f"{i:07d}.png", labels)
    return root


def atr_tree(root: Path, count: int = 5) -> Path:
    labels = paint(ATR_IDS)
    for i in range(count):
        write_jpg(root / "humanparsing" / "JPEGImages" / f"{i}.jpg", labels, seed=i)
        write_label_png(root / "humanparsing" / "SegmentationClassAug" / f"{i}.png", labels, palette=True)
    return root


@pytest.mark.parametrize(
    ("name", "tree", "expected", "counts"),
    [
        ("lip", lip_tree, EXPECTED_LIP20, {"train": 3, "val": 2, "test": 1}),  # test carved from train
        ("cihp", cihp_tree, EXPECTED_LIP20, {"train": 3, "val": 2, "test": 1}),
        ("atr", atr_tree, EXPECTED_ATR, {"train": 3, "val": 1, "test": 1}),  # seeded split
    ],
)
def test_human_parsing_sources(tmp_path: Path, name, tree, expected, counts) -> None:
    source = source_for(name, tree(tmp_path / name))
    assert_parts(source.load(next(iter(source.items()))).parsing, expected)
    manifest, report = run_preprocess(source, tmp_path)
    assert report["skipped"] == 0 and manifest["counts"] == counts


def test_cihp_stems_stay_unique_across_split_folders(tmp_path: Path) -> None:
    stems = [item.stem for item in source_for("cihp", cihp_tree(tmp_path / "cihp", 2, 2)).items()]
    assert stems == ["train-0000000", "train-0000001", "val-0000000", "val-0000001"]


def test_lip_image_without_parsing_is_a_counted_skip(tmp_path: Path) -> None:
    root = lip_tree(tmp_path / "lip")
    orphan = root / "TrainVal_images" / "train_images" / "999999_9.jpg"
    write_jpg(orphan, paint(CIHP_IDS))
    manifest, report = run_preprocess(source_for("lip", root), tmp_path, PREP_SKIPS)
    assert report["skipped_by_reason"] == {"missing parsing": 1}
    assert report["skipped_files"][0]["file"] == str(orphan)
    assert sum(manifest["counts"].values()) == 6


def test_lip_missing_label_folder_is_a_dataset_error(tmp_path: Path) -> None:
    root = lip_tree(tmp_path / "lip")
    for png in (root / "TrainVal_parsing_annotations" / "val_segmentations").iterdir():
        png.unlink()
    (root / "TrainVal_parsing_annotations" / "val_segmentations").rmdir()
    with pytest.raises(DatasetError, match="val_segmentations"):
        source_for("lip", root)


# --------------------------------------------------------------------------- DeepFashion In-shop
INSHOP_ROWS = [
    ("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
    ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
    ("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "train"),
    ("img/WOMEN/Skirts/id_00000100/01_1_front.jpg", "id_00000100", "gallery"),
    ("img/WOMEN/Skirts/id_00000100/01_2_side.jpg", "id_00000100", "query"),
    ("img/WOMEN/Skirts/id_00000100/01_4_full.jpg", "id_00000100", "query"),
]


def inshop_tree(root: Path, parsing: Path, rows=INSHOP_ROWS) -> tuple[Path, Path]:
    labels = paint(CIHP_IDS)  # what a LIP-20 parser writes
    lines = [str(len(rows)), "image_name item_id evaluation_status"] + [f"{n} {i} {s}" for n, i, s in rows]
    (root / "Eval").mkdir(parents=True)
    (root / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    for k, (name, _, _) in enumerate(rows):
        relative = Path(name).relative_to("img")
        write_jpg(root / "img_highres" / relative, labels, seed=k)
        if k % 2:  # parser output flat, named by the stem
            write_label_png(parsing / ("-".join(relative.with_suffix("").parts) + ".png"), labels)
        else:  # parser output mirroring the image tree
            write_label_png(parsing / relative.with_suffix(".png"), labels)
    return root, parsing


def test_inshop_official_partition_and_parser_output(tmp_path: Path) -> None:
    root, parsing = inshop_tree(tmp_path / "inshop", tmp_path / "parsed")
    source = source_for("deepfashion_inshop", root, parsing_dir=str(parsing))
    items = {item.stem: item for item in source.items()}
    assert items["WOMEN-Dresses-id_00000002-02_1_front"].split == "train"
    assert items["WOMEN-Skirts-id_00000100-01_1_front"].split == "val"  # gallery
    assert items["WOMEN-Skirts-id_00000100-01_2_side"].split == "test"  # query
    assert_parts(source.load(items["WOMEN-Dresses-id_00000002-02_2_side"]).parsing, EXPECTED_LIP20)
    manifest, report = run_preprocess(source, tmp_path)
    assert report["skipped"] == 0 and manifest["counts"] == {"train": 3, "val": 1, "test": 2}


def test_inshop_image_without_parsing_is_a_counted_skip(tmp_path: Path) -> None:
    root, parsing = inshop_tree(tmp_path / "inshop", tmp_path / "parsed")
    (parsing / "WOMEN" / "Dresses" / "id_00000002" / "02_1_front.png").unlink()
    _, report = run_preprocess(source_for("deepfashion_inshop", root, parsing_dir=str(parsing)), tmp_path, PREP_SKIPS)
    assert report["skipped_by_reason"] == {"missing parsing": 1}
    assert report["skipped_files"][0]["file"].endswith("img_highres/WOMEN/Dresses/id_00000002/02_1_front.jpg")


def test_inshop_missing_split_file_is_a_dataset_error(tmp_path: Path) -> None:
    root, parsing = inshop_tree(tmp_path / "inshop", tmp_path / "parsed")
    (root / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetError, match=r"Eval/list_eval_partition\.txt"):
        source_for("deepfashion_inshop", root, parsing_dir=str(parsing))


def test_inshop_malformed_partition_row_is_a_dataset_error(tmp_path: Path) -> None:
    rows = INSHOP_ROWS[:2] + [("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "holdout")]
    root, parsing = inshop_tree(tmp_path / "inshop", tmp_path / "parsed", rows)
    with pytest.raises(DatasetError, match="line 5"):
        source_for("deepfashion_inshop", root, parsing_dir=str(parsing))


def test_inshop_without_parsing_dir_is_a_dataset_error(tmp_path: Path) -> None:
    root, _ = inshop_tree(tmp_path / "inshop", tmp_path / "parsed")
    with pytest.raises(DatasetError, match="data.parsing_dir"):
        source_for("deepfashion_inshop", root)


# --------------------------------------------------------------------------- all sources
REAL_SOURCES = ["deepfashion_mm", "deepfashion_inshop", "viton_hd", "lip", "cihp", "atr"]


@pytest.mark.parametrize("name", ["folder", *REAL_SOURCES])
def test_root_that_does_not_exist_says_so_up_front(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(DatasetError) as error:  # before any layout check ("no images/ folder", ...)
        source_for(name, missing, parsing_dir=str(tmp_path))
    assert str(error.value).startswith(f"{missing} (data.root) does not exist: "), error.value
    assert f"data.source={name}" in str(error.value)  # says how to set it


@pytest.mark.parametrize("name", ["folder", "lip"])
def test_root_that_is_a_file_says_so(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "dataset.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(DatasetError, match=r"dataset\.zip \(data\.root\) is not a folder: "):
        source_for(name, archive)


@pytest.mark.parametrize("name", ["folder", *REAL_SOURCES])
def test_empty_root_param_says_how_to_set_it(name: str) -> None:
    with pytest.raises(DatasetError, match="data.root"):
        build_source(DataParams(source=name), Path("unused"))


@pytest.mark.parametrize("name", ["deepfashion_mm", "viton_hd", "lip", "cihp", "atr"])
def test_root_with_another_layout_is_a_dataset_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "images").mkdir()  # the generic folder layout, not this source's
    with pytest.raises(DatasetError, match=str(tmp_path)):
        source_for(name, tmp_path)


def test_sources_survive_pickling_for_preprocess_workers(tmp_path: Path) -> None:
    root, parsing = inshop_tree(tmp_path / "inshop", tmp_path / "parsed")
    sources = [
        source_for("deepfashion_mm", dfmm_tree(tmp_path / "dfmm", DFMM_NAMES[:1])),
        source_for("viton_hd", viton_tree(tmp_path / "viton", 1, 1)),
        source_for("deepfashion_inshop", root, parsing_dir=str(parsing)),
    ]
    for source in sources:
        copy = pickle.loads(pickle.dumps(source))  # preprocess workers receive the source this way
        item = next(iter(copy.items()))
        assert np.array_equal(copy.load(item).parsing, source.load(item).parsing)


def test_every_real_source_is_registered() -> None:
    assert set(REAL_SOURCES) <= set(SOURCES)


def test_sample_skipped_names_the_file(tmp_path: Path) -> None:
    root = lip_tree(tmp_path / "lip", 2, 1)
    (root / "TrainVal_images" / "val_images" / "100000_0.jpg").write_bytes(b"")  # empty photo
    source = source_for("lip", root)
    item = next(i for i in source.items() if i.split == "val")
    with pytest.raises(SampleSkipped) as caught:
        source.load(item)
    assert caught.value.path.endswith("100000_0.jpg")
