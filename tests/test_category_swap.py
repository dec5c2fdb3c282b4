"""Garment-category swaps (issue 14): the swap's hole and label strokes on synthetic figures, the parser's training
holes, the editor / CLI / registered model / page surfaces on tiny untrained networks, and the evaluation stage."""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fashion_edit.config import SynthesizeParams
from fashion_edit.data.categories import (NO_STROKE, PANTS, PROTECTED, SKIRT, SWAP_CATEGORIES, CategorySwapError,
                                          category_training_hole, swap_region, swap_source, target_label_strokes)
from fashion_edit.data.labels import LABEL_ID
from fashion_edit.data.synthetic import Figure, lower_shape, render_figure, render_swapped
from fashion_edit.serving.editor import EditInputError, EditInputs, Editor, EditorNetworks
from tests.conftest import free_port, open_residual_heads, tiny_params, write_params, write_random_artifacts
from tests.test_editor import base64_png, png_pixels, serve, write_png

FULL = SynthesizeParams()  # 128 px figures: the shapes the region geometry is read from
SMALL = SynthesizeParams(height=64, width=64)  # the tiny networks' resolution
LEGS = (LABEL_ID["left-leg"], LABEL_ID["right-leg"])
TARGET_OF = {"skirt": "trousers", "trousers": "skirt", "shorts": "skirt"}


@lru_cache(maxsize=None)
def figure_wearing(shape: str, p: SynthesizeParams = FULL, skip: int = 0) -> tuple[int, Figure]:
    """The (index, figure) of the ``skip``-th synthetic figure whose lower garment is ``shape`` (skirt, trousers,
    shorts, dress)."""
    found = 0
    for index in range(300):
        figure = render_figure(index, p)
        if lower_shape(figure.description) == shape:
            if found == skip:
                return index, figure
            found += 1
    raise AssertionError(f"no synthetic figure wears {shape}")


# ----------------------------------------------------------------------------- the swap region
@pytest.mark.parametrize("shape, skip", [("skirt", 0), ("skirt", 1), ("skirt", 2)])
def test_the_trousers_region_holds_the_old_skirt_and_the_legs_from_hip_to_ankle(shape: str, skip: int):
    index, before = figure_wearing(shape, FULL, skip)
    region = swap_region(before.parsing, swap_source(before.parsing, "trousers"), "trousers")
    assert region[before.parsing == SKIRT].all(), "the old garment must be erased"
    legs = np.isin(before.parsing, LEGS)
    assert region[legs].mean() > 0.97, "the bare legs below the skirt become trousers"
    truth = render_swapped(index, FULL, "trousers").parsing == PANTS  # the same figure in trousers
    assert region[truth].mean() > 0.95
    assert not region[np.isin(before.parsing, PROTECTED[:-2])].any(), "never the head, upper garments or arms"


@pytest.mark.parametrize("shape, skip", [("trousers", 0), ("trousers", 1), ("shorts", 0)])
def test_the_skirt_region_holds_the_old_trousers_and_a_flared_hem_below_the_knee(shape: str, skip: int):
    index, before = figure_wearing(shape, FULL, skip)
    region = swap_region(before.parsing, swap_source(before.parsing, "skirt"), "skirt")
    pants = before.parsing == PANTS
    assert region[pants].all()
    truth = render_swapped(index, FULL, "skirt").parsing == SKIRT
    assert region[truth].mean() > 0.95, "the skirt the generator draws for this figure fits the hole"
    # flared: at the widest rows of the truth skirt's hem the region is wider than the old trousers there
    hem_rows = np.flatnonzero(truth.any(axis=1))[-3:]
    for row in hem_rows:
        assert region[row].sum() > pants[row].sum()
    assert not region[np.isin(before.parsing, PROTECTED)].any()


def test_label_strokes_lie_inside_the_region_and_ask_for_the_target():
    for shape, target in (("skirt", "trousers"), ("trousers", "skirt")):
        index, before = figure_wearing(shape)
        region = swap_region(before.parsing, swap_source(before.parsing, target), target)
        strokes = target_label_strokes(np.random.default_rng(0), before.parsing, region, target)
        assert strokes.dtype == np.int64 and strokes.shape == before.parsing.shape
        drawn = strokes != NO_STROKE
        assert drawn.any() and region[drawn].all()
        assert (strokes == SWAP_CATEGORIES[target]).any()
        allowed = {SWAP_CATEGORIES[target], *(LEGS if target == "skirt" else ())}
        assert set(np.unique(strokes[drawn])) <= allowed
        after = render_swapped(index, FULL, target).parsing
        assert (strokes[drawn] == after[drawn]).mean() > 0.9, "the strokes say what the truth shows"


def test_a_skirt_swap_paints_legs_below_its_hem():
    _, before = figure_wearing("trousers")
    region = swap_region(before.parsing, PANTS, "skirt")
    strokes = target_label_strokes(np.random.default_rng(0), before.parsing, region, "skirt")
    legs = np.isin(strokes, LEGS)
    assert legs.any()
    assert np.flatnonzero(legs.any(axis=1)).min() > np.flatnonzero((strokes == SKIRT).any(axis=1)).max()
    without = target_label_strokes(np.random.default_rng(0), before.parsing, region, "skirt", leg_strokes=False)
    assert not np.isin(without, LEGS).any()


def test_label_strokes_are_seeded():
    _, before = figure_wearing("skirt")
    region = swap_region(before.parsing, SKIRT, "trousers")
    first = target_label_strokes(np.random.default_rng(3), before.parsing, region, "trousers")
    assert np.array_equal(first, target_label_strokes(np.random.default_rng(3), before.parsing, region, "trousers"))


# ----------------------------------------------------------------------------- clear errors
def test_an_unknown_category_lists_the_known_ones():
    _, before = figure_wearing("skirt")
    with pytest.raises(CategorySwapError, match=r"unknown garment category 'jeans'; known: trousers, skirt"):
        swap_source(before.parsing, "jeans")
    assert issubclass(CategorySwapError, ValueError)


def test_a_dress_or_an_empty_photo_has_nothing_to_swap():
    _, dress = figure_wearing("dress")
    with pytest.raises(CategorySwapError, match="shows a dress, which a swap does not change"):
        swap_source(dress.parsing, "trousers")
    with pytest.raises(CategorySwapError, match="nothing to turn into skirt: .* no trousers, shorts or skirt"):
        swap_source(np.zeros((64, 64), np.uint8), "skirt")


@pytest.mark.parametrize("shape, category, message", [
    ("skirt", "skirt", "already a skirt: a swap to skirt needs trousers or shorts"),
    ("shorts", "trousers", r"already trousers \(LIP pants: trousers and shorts\)"),
])
def test_a_garment_already_of_the_category_says_what_to_do(shape: str, category: str, message: str):
    _, before = figure_wearing(shape)
    with pytest.raises(CategorySwapError, match=message):
        swap_source(before.parsing, category)


def test_the_source_is_the_other_lower_garment():
    _, skirt = figure_wearing("skirt")
    _, shorts = figure_wearing("shorts")
    assert swap_source(skirt.parsing, "trousers") == SKIRT
    assert swap_source(shorts.parsing, " Skirt ") == PANTS


# ----------------------------------------------------------------------------- the parser's training holes
def test_training_holes_are_swap_regions_with_truthful_label_strokes():
    _, skirt = figure_wearing("skirt")
    shapes = set()
    for seed in range(6):
        hole, strokes = category_training_hole(np.random.default_rng(seed), skirt.parsing)
        assert hole.dtype == np.bool_ and strokes.dtype == np.int64 and hole.shape == strokes.shape == (128, 128)
        drawn = strokes != NO_STROKE
        assert drawn.any() and hole[drawn].all()
        assert np.array_equal(strokes[drawn], skirt.parsing[drawn].astype(np.int64)), "strokes follow the truth"
        assert (strokes == SKIRT).any()
        assert hole[skirt.parsing == SKIRT].all()
        shapes.add(int(hole.sum()))
        assert any(np.array_equal(hole, swap_region(skirt.parsing, SKIRT, name)) for name in SWAP_CATEGORIES)
    assert len(shapes) == 2, "both hole shapes: the figure's own and the other category's"


def test_no_training_hole_without_trousers_or_skirt():
    _, dress = figure_wearing("dress")
    assert category_training_hole(np.random.default_rng(0), dress.parsing) is None
    assert category_training_hole(np.random.default_rng(0), np.zeros((32, 32), np.uint8)) is None


# ----------------------------------------------------------------------------- the editor
class FixedSegmenter(torch.nn.Module):
    """A segmenter that parses every photo as ``parsing`` (what a trained one would say about the figure)."""

    def __init__(self, parsing: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("labels", torch.from_numpy(parsing.astype(np.int64)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(self.labels, 20).permute(2, 0, 1).float()
        return onehot[None].expand(images.shape[0], -1, -1, -1)


def swap_editor(parsing: np.ndarray, overrides: dict | None = None) -> Editor:
    torch.manual_seed(0)
    networks = EditorNetworks.untrained(tiny_params({"parser": {"label_strokes": True}, **(overrides or {})}))
    open_residual_heads(networks.parser, networks.inpainter)  # untrained, but every input reaches the output
    return Editor(replace(networks, segmenter=FixedSegmenter(parsing)), (64, 64))


@pytest.fixture(scope="module")
def skirt_photo() -> Figure:
    return figure_wearing("skirt", SMALL)[1]


@pytest.fixture(scope="module")
def editor(skirt_photo: Figure) -> Editor:
    return swap_editor(skirt_photo.parsing)


def test_a_swap_needs_no_mask_and_repaints_only_its_region(editor: Editor, skirt_photo: Figure):
    image = skirt_photo.image
    inputs, strengths, category = editor.checked(image, to_category="Trousers")
    assert category == "trousers" and not strengths and not inputs.hole.any()
    result = editor.run(inputs, seed=1, to_category=category)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    expected = swap_region(skirt_photo.parsing, SKIRT, "trousers")
    assert np.array_equal(result.hole, expected), "the photo is the model's size: the hole is the swap region"
    assert np.array_equal(result.image[~result.hole], image[~result.hole])
    assert (result.image[result.hole] != image[result.hole]).any()
    assert np.array_equal(editor.edit(image, to_category="trousers", seed=1), result.image)


def test_a_swap_takes_the_users_own_hole_too(editor: Editor, skirt_photo: Figure):
    mask = np.zeros((64, 64), np.uint8)
    mask[2:8, 2:8] = 255
    result = editor.run(EditInputs.read(skirt_photo.image, mask), 0, to_category="trousers")
    assert result.hole[2:8, 2:8].all() and result.hole[skirt_photo.parsing == SKIRT].all()


def test_label_strokes_reach_the_parser(editor: Editor, skirt_photo: Figure, monkeypatch: pytest.MonkeyPatch):
    from fashion_edit.serving import editor as editor_module

    seen = []
    real = editor_module.two_stage

    def spy(networks, batch, *args, **kwargs):
        seen.append(batch.get("label_strokes"))
        return real(networks, batch, *args, **kwargs)

    monkeypatch.setattr(editor_module, "two_stage", spy)
    editor.edit(skirt_photo.image, to_category="trousers")
    [strokes] = seen
    assert strokes.shape == (1, 64, 64) and (strokes == PANTS).any()


def test_samples_give_one_result_per_seed_and_repeat(editor: Editor, skirt_photo: Figure):
    first = editor.samples(skirt_photo.image, to_category="trousers", seed=5, count=3)
    again = editor.samples(skirt_photo.image, to_category="trousers", seed=5, count=3)
    assert len(first) == 3 and all(a.image.shape == (64, 64, 3) for a in first)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again))
    assert not np.array_equal(first[0].image, first[1].image), "each sample has its own seed"
    shifted = editor.samples(skirt_photo.image, to_category="trousers", seed=6, count=1)
    assert np.array_equal(shifted[0].image, first[1].image), "sample k is seed + k"
    with pytest.raises(EditInputError, match="samples: 0 is not a positive whole number"):
        editor.samples(skirt_photo.image, to_category="trousers", count=0)


def test_samples_of_a_stochastic_editor_differ_by_their_draws(skirt_photo: Figure):
    stochastic = swap_editor(skirt_photo.parsing, {"parser": {"label_strokes": True, "latent_dim": 4}})
    results = stochastic.samples(skirt_photo.image, to_category="trousers", seed=2, count=2)
    assert len(results) == 2 and all(r.image.shape == (64, 64, 3) for r in results)
    again = stochastic.samples(skirt_photo.image, to_category="trousers", seed=2, count=2)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(results, again))


@pytest.mark.parametrize("category, message", [
    ("skirt", "already a skirt"), ("jeans", "unknown garment category 'jeans'")])
def test_the_editor_reports_a_swap_it_cannot_do(editor: Editor, skirt_photo: Figure, category: str, message: str):
    with pytest.raises(CategorySwapError, match=message):
        editor.edit(skirt_photo.image, to_category=category)


def test_an_editor_without_label_strokes_says_to_retrain(skirt_photo: Figure):
    plain = swap_editor(skirt_photo.parsing, {"parser": {"label_strokes": False}})
    with pytest.raises(CategorySwapError, match="not trained with label strokes.*parser.label_strokes: true"):
        plain.edit(skirt_photo.image, to_category="trousers")


# ----------------------------------------------------------------------------- the command line
@pytest.fixture
def cli_with(editor: Editor, monkeypatch: pytest.MonkeyPatch):
    """`fashion-edit edit` with ``editor`` as the loaded model."""
    from fashion_edit.serving import cli

    monkeypatch.setattr(cli, "load_editor", lambda *args: cli.LoadedEditor(editor, "test editor"))
    return cli


def test_cli_swaps_without_a_mask_and_writes_samples(cli_with, editor: Editor, skirt_photo: Figure,
                                                     tmp_path: Path, capsys):
    image = write_png(tmp_path / "photo.png", skirt_photo.image)
    assert cli_with.main(["edit", "--image", str(image), "--to", "trousers", "--seed", "2",
                          "--out", str(tmp_path / "out.png")]) == 0
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(written, editor.edit(skirt_photo.image, to_category="trousers", seed=2))
    assert cli_with.main(["edit", "--image", str(image), "--to", "trousers", "--samples", "3", "--seed", "2",
                          "--out", str(tmp_path / "many.png")]) == 0
    assert "wrote 3 files" in capsys.readouterr().out
    expected = editor.samples(skirt_photo.image, to_category="trousers", seed=2, count=3)
    for path, result in zip(["many.png", "many_1.png", "many_2.png"], expected):
        assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / path)), cv2.COLOR_BGR2RGB), result.image)


def test_cli_reports_bad_swaps(cli_with, skirt_photo: Figure, tmp_path: Path, capsys):
    image = write_png(tmp_path / "photo.png", skirt_photo.image)
    assert cli_with.main(["edit", "--image", str(image), "--to", "skirt", "--out", str(tmp_path / "o.png")]) == 1
    assert "fashion-edit: error: the lower garment is already a skirt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_with.main(["edit", "--image", str(image), "--to", "jeans", "--out", str(tmp_path / "o.png")])
    assert "invalid choice: 'jeans'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_with.main(["edit", "--image", str(image), "--to", "skirt", "--samples", "0", "--out", "o.png"])
    assert "'0' is not a positive whole number" in capsys.readouterr().err
    assert cli_with.main(["edit", "--image", str(image), "--out", str(tmp_path / "o.png")]) == 1
    assert "or --to CATEGORY (trousers, skirt)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the registered model
@pytest.fixture(scope="module")
def pyfunc(editor: Editor, tmp_path_factory: pytest.TempPathFactory):
    """The editor pyfunc as `mlflow models serve` loads it, its editor replaced by the swap editor (a saved editor
    keeps its own untrained segmenter, which parses no figure)."""
    import mlflow.pyfunc

    from fashion_edit.serving.pyfunc import save_editor_model

    folder = tmp_path_factory.mktemp("pyfunc")
    segmenter = EditorNetworks.untrained(tiny_params()).segmenter  # the test double has no weights file format
    saved = Editor(replace(editor.networks, segmenter=segmenter), editor.size).save(folder / "bundle")
    model = mlflow.pyfunc.load_model(str(save_editor_model(saved, folder / "editor")))
    model.unwrap_python_model().editor = editor
    return model


def test_the_signature_names_the_swap_and_samples_columns(pyfunc):
    names = pyfunc.metadata.signature.inputs.input_names()
    assert {"to_category", "samples"} <= set(names)
    assert "samples" in pyfunc.metadata.signature.outputs.input_names()


def test_the_registered_model_swaps_and_answers_samples(pyfunc, editor: Editor, skirt_photo: Figure):
    photo = base64_png(skirt_photo.image)
    [edit] = pyfunc.predict([{"image": photo, "to_category": "trousers"}], params={"seed": 2})
    assert set(edit) == {"image", "notice"}, "one sample: the answer keeps its two keys"
    assert np.array_equal(png_pixels(edit["image"]), editor.edit(skirt_photo.image, to_category="trousers", seed=2))
    status, answer = serve(pyfunc, {"dataframe_records": [{"image": photo, "to_category": "trousers", "samples": 2}],
                                    "params": {"seed": 2}})
    assert status == 200, answer
    [edit] = answer["predictions"]
    expected = editor.samples(skirt_photo.image, to_category="trousers", seed=2, count=2)
    assert [np.array_equal(png_pixels(s), r.image) for s, r in zip(edit["samples"], expected)] == [True, True]
    assert edit["image"] == edit["samples"][0]


def test_an_old_request_is_answered_as_before(pyfunc, skirt_photo: Figure):
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    [edit] = pyfunc.predict({"image": base64_png(skirt_photo.image), "mask": base64_png(mask)})
    assert set(edit) == {"image", "notice"}


@pytest.mark.parametrize("row, message", [
    ({"to_category": "jeans"}, "to_category: unknown garment category 'jeans'; known: trousers, skirt"),
    ({"to_category": "skirt"}, "to_category: the lower garment is already a skirt"),
    ({"to_category": 3}, "to_category: got int; send a category name (trousers, skirt)"),
    ({"to_category": "trousers", "samples": 0}, "samples: 0 is not a whole number of completions from 1 to 16"),
    ({"to_category": "trousers", "samples": 2.5}, "samples: 2.5 is not a whole number"),
])
def test_bad_swap_requests_are_a_400_naming_the_field(pyfunc, skirt_photo: Figure, row: dict, message: str):
    status, answer = serve(pyfunc, {"dataframe_records": [{"image": base64_png(skirt_photo.image), **row}]})
    assert status == 400 and answer["message"].startswith(message), answer


# ----------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def page_client(editor: Editor, prepared_data: Path):
    from fastapi.testclient import TestClient

    from fashion_edit.serving import cli
    from fashion_edit.serving.webapp import EditorService, Examples, create_app

    service = EditorService(lambda: cli.LoadedEditor(editor, "test editor"))
    return TestClient(create_app(service, Examples.read(prepared_data)))


def data_uri(picture: np.ndarray) -> str:
    return "data:image/png;base64," + base64_png(picture)


def test_the_page_api_lists_the_categories_and_swaps_without_a_hole(page_client, editor: Editor,
                                                                    skirt_photo: Figure):
    assert page_client.get("/api/status").json()["categories"] == ["trousers", "skirt"]
    answer = page_client.post("/api/edit", json={"image": data_uri(skirt_photo.image), "to_category": "trousers",
                                                 "seed": 3})
    assert answer.status_code == 200, answer.text
    result = png_pixels(answer.json()["image"].split(",", 1)[1])
    assert np.array_equal(result, editor.edit(skirt_photo.image, to_category="trousers", seed=3))
    bad = page_client.post("/api/edit", json={"image": data_uri(skirt_photo.image), "to_category": "skirt"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("to_category: the lower garment is already")
    nothing = page_client.post("/api/edit", json={"image": data_uri(skirt_photo.image)})
    assert nothing.status_code == 400 and "or a category to swap the lower garment to" in nothing.json()["error"]


def test_a_page_for_an_editor_without_label_strokes_offers_no_categories(skirt_photo: Figure, prepared_data: Path):
    from fastapi.testclient import TestClient

    from fashion_edit.serving import cli
    from fashion_edit.serving.webapp import EditorService, Examples, create_app

    plain = swap_editor(skirt_photo.parsing, {"parser": {"label_strokes": False}})
    client = TestClient(create_app(EditorService(lambda: cli.LoadedEditor(plain, "plain")), Examples([], [], None)))
    assert client.get("/api/status").json()["categories"] == []


@pytest.fixture
def swap_page(editor: Editor, prepared_data: Path):
    """The page over the swap editor, served by uvicorn in a thread (the editor's segmenter is a test double, which
    a `fashion-edit serve` process could not load)."""
    import uvicorn

    from fashion_edit.serving import cli
    from fashion_edit.serving.webapp import EditorService, Examples, create_app

    app = create_app(EditorService(lambda: cli.LoadedEditor(editor, "test editor")), Examples.read(prepared_data))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the page's server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


def test_the_page_swaps_a_garment_picked_in_the_category_select(browser, swap_page: str, editor: Editor,
                                                                skirt_photo: Figure, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.test_webapp import message, uri_pixels, wait_until

    browser.get(swap_page)
    wait_until(browser, lambda d: "serving editor from test editor" in d.find_element(By.ID, "model").text,
               what="model status")
    assert browser.find_element(By.ID, "category-bar").is_displayed()
    options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "category")).options]
    assert options == ["keep", "trousers", "skirt"]
    photo = write_png(tmp_path / "skirt.png", skirt_photo.image)
    browser.find_element(By.ID, "upload").send_keys(str(photo))
    wait_until(browser, lambda d: d.execute_script("return state.photo !== null"), what="the upload")
    browser.find_element(By.ID, "live").click()  # edits only on the button in this test
    browser.find_element(By.ID, "edit").click()  # no hole, "keep": nothing to edit
    wait_until(browser, lambda d: "or pick a garment category" in message(d), what="the nothing-to-edit message")

    Select(browser.find_element(By.ID, "category")).select_by_value("trousers")
    assert browser.execute_script("return hasHole()") is False
    browser.find_element(By.ID, "edit").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "0", what="the swap")
    assert message(browser) == ""
    result = uri_pixels(browser.find_element(By.ID, "result").get_attribute("src"))[..., :3]
    expected = editor.edit(skirt_photo.image, to_category="trousers", seed=0)
    assert np.array_equal(cv2.cvtColor(result, cv2.COLOR_BGR2RGB), expected)
    assert "--to trousers --seed 0" in browser.find_element(By.ID, "replay").text

    Select(browser.find_element(By.ID, "category")).select_by_value("skirt")
    browser.find_element(By.ID, "edit").click()
    wait_until(browser, lambda d: "already a skirt" in message(d), what="the already-a-skirt message")


# ----------------------------------------------------------------------------- the evaluation's measures
def test_target_iou_is_intersection_over_union():
    from fashion_edit.evaluation.category_swap import target_iou

    predicted = np.zeros((4, 4), bool)
    truth = np.zeros((4, 4), bool)
    predicted[0, :3] = True  # 3 pixels
    truth[0, 1:] = True  # 3 pixels, 2 shared
    assert target_iou(predicted, truth) == pytest.approx(2 / 4)
    assert target_iou(truth, truth) == 1.0
    assert math.isnan(target_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))


def test_the_texture_distance_compares_the_regions_textures_only():
    from fashion_edit.evaluation.category_swap import texture_distance
    from models.vgg import antialiased_vgg16

    torch.manual_seed(0)
    trunk = antialiased_vgg16()  # random weights: the measure's arithmetic, not its calibration
    rng = np.random.default_rng(0)
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[::4] = (200, 40, 40)
    noise = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    left, right = np.zeros((48, 48), bool), np.zeros((48, 48), bool)
    left[8:40, 4:20], right[4:44, 26:44] = True, True
    assert texture_distance(trunk, stripes, left, stripes, left) == 0.0
    same_texture = texture_distance(trunk, stripes, left, stripes, right)  # another shape, the same stripes
    other_texture = texture_distance(trunk, stripes, left, noise, right)
    assert 0 < same_texture < other_texture
    assert math.isnan(texture_distance(trunk, stripes, left, stripes, np.zeros((48, 48), bool)))


def test_skin_error_is_measured_on_newly_exposed_skin_only():
    from fashion_edit.evaluation.category_swap import skin_colour_error

    before = np.full((2, 3), PANTS, np.uint8)
    after = np.array([[LEGS[0], LEGS[1], 0], [SKIRT, LABEL_ID["torso-skin"], 0]], np.uint8)
    before[1, 1] = LABEL_ID["upper-clothes"]  # skin after, but not where the trousers were
    truth = np.zeros((2, 3, 3), np.uint8)
    edited = truth.copy()
    edited[0, 0] = (10, 20, 30)  # exposed: error 20 on average
    edited[0, 1] = (0, 0, 3)  # exposed: error 1
    edited[1, 1] = (255, 255, 255)  # not exposed by the swap: ignored
    edited[0, 2] = (255, 255, 255)  # background: ignored
    assert skin_colour_error(edited, truth, before, after, PANTS) == pytest.approx((60 + 3) / 6)
    assert math.isnan(skin_colour_error(edited, truth, before, np.full((2, 3), PANTS, np.uint8), PANTS))


def test_mean_and_standard_error_skip_undefined_values():
    from fashion_edit.evaluation.category_swap import mean_and_se

    assert mean_and_se([1.0, 3.0, math.nan]) == {"mean": 2.0, "se": pytest.approx(1.0), "n": 2}
    assert mean_and_se([math.nan]) == {"mean": None, "se": None, "n": 0}


def test_the_plain_baseline_erases_the_old_garment_dilated():
    from fashion_edit.evaluation.category_swap import plain_hole

    _, before = figure_wearing("skirt")
    hole = plain_hole(before.parsing, SKIRT)
    swap = swap_region(before.parsing, SKIRT, "trousers")
    assert hole[before.parsing == SKIRT].all() and hole.sum() > (before.parsing == SKIRT).sum()
    assert hole.sum() < swap.sum(), "the plain hole is the old garment's, the swap's also the target's place"


# ----------------------------------------------------------------------------- the stage
def write_pairs(folder: Path, count: int) -> None:
    """``count`` before/after pairs of 64 px synthetic figures, as the swap_pairs stage writes them."""
    from fashion_edit.data.swap_pairs import SwapPairs, write_swap_pairs
    from fashion_edit.data.synthetic import GARMENT_LABEL

    rows = []
    for index in range(200):
        before = render_figure(index, SMALL)
        shape = lower_shape(before.description)
        if shape not in TARGET_OF:
            continue
        after = render_swapped(index, SMALL, TARGET_OF[shape])
        rows.append({"image_before": before.image, "image_after": after.image, "parsing_before": before.parsing,
                     "parsing_after": after.parsing, "source_label": GARMENT_LABEL[shape],
                     "target_label": GARMENT_LABEL[TARGET_OF[shape]], "target_category": TARGET_OF[shape],
                     "stems": f"fig{index:06d}"})
        if len(rows) == count:
            break
    text = ("target_category", "stems")
    arrays = {key: np.array([row[key] for row in rows], np.str_ if key in text else np.uint8) for key in rows[0]}
    write_swap_pairs(SwapPairs(**arrays), {"pairs": count}, folder)


def test_the_stage_scores_both_methods_and_draws_the_figure(tmp_path: Path, mlflow_uri: str, one_thread):
    from fashion_edit.layout import SWAP_PAIRS
    from fashion_edit.layout import CATEGORY_SWAP_DETAIL, CATEGORY_SWAP_FIGURE
    from stages.category_swap import main

    write_random_artifacts(tmp_path / "artifacts")
    write_pairs(tmp_path / SWAP_PAIRS, 3)
    params = tiny_params({"category_swap": {"figure_pairs": 2, "max_pairs": 2}, "mlflow": {"experiment": "swap"}})
    assert main(["--params", str(write_params(tmp_path / "params.yaml", params))]) == 0
    stored = json.loads((tmp_path / CATEGORY_SWAP_DETAIL).read_text())
    assert stored["pairs"] == 2 and stored["available"] == 3 and stored["skipped"] == 0
    assert set(stored["methods"]) == {"swap", "plain"}
    for metrics in stored["methods"].values():
        assert set(metrics) == {"target_iou", "st_lpips", "l1", "texture", "skin_error"}
        for name in ("target_iou", "st_lpips", "l1", "texture"):
            assert metrics[name]["n"] == 2 and metrics[name]["mean"] >= 0 and metrics[name]["se"] is not None
    assert stored["truth"]["texture"]["n"] == 2
    figure = cv2.imread(str(tmp_path / CATEGORY_SWAP_FIGURE))
    assert figure.shape == (2 + 2 * 66, 2 + 5 * 66, 3), "rows: pairs; columns: before | region | swap | plain | truth"

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("swap").experiment_id])
    [run] = [r for r in runs if r.info.run_name == "category_swap"]
    assert {"swap_target_iou", "plain_target_iou", "truth_texture"} <= set(run.data.metrics)


def test_the_stage_without_pairs_says_so(tmp_path: Path, capsys):
    from fashion_edit.data.swap_pairs import empty_pairs, write_swap_pairs
    from fashion_edit.layout import SWAP_PAIRS
    from fashion_edit.layout import CATEGORY_SWAP_DETAIL, CATEGORY_SWAP_FIGURE
    from stages.category_swap import main

    write_swap_pairs(empty_pairs(64, 64), {"pairs": 0}, tmp_path / SWAP_PAIRS)
    assert main(["--params", str(write_params(tmp_path / "params.yaml", tiny_params()))]) == 0
    stored = json.loads((tmp_path / CATEGORY_SWAP_DETAIL).read_text())
    assert stored["pairs"] == 0 and stored["methods"] == {} and "no swap pairs" in stored["note"]
    assert (tmp_path / CATEGORY_SWAP_FIGURE).is_file()
    assert "no swap pairs" in capsys.readouterr().out


def test_the_stage_without_the_pairs_file_names_the_stage_to_run(tmp_path: Path, capsys):
    from stages.category_swap import main

    assert main(["--params", str(write_params(tmp_path / "params.yaml", tiny_params()))]) == 1
    assert "pairs.npz: missing; run `dvc repro swap_pairs`" in capsys.readouterr().err
