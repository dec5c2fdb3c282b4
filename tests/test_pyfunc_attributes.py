"""The registered editor pyfunc with attribute strengths (issue 15): in-process and as `mlflow models serve` answers,
on a tiny untrained editor whose parser learned every attribute (max strength 0.5)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_edit.serving.editor import EditInputError, Editor, EditorNetworks
from fashion_edit.serving.pyfunc import save_editor_model
from tests.conftest import tiny_params
from tests.test_editor import base64_png, png_pixels, serve

SLEEVES = {"sleeve_length": 0.3}


@pytest.fixture(scope="module")
def editor() -> Editor:
    torch.manual_seed(0)
    return Editor(EditorNetworks.untrained(tiny_params()), (64, 64))


@pytest.fixture(scope="module")
def pyfunc(editor: Editor, tmp_path_factory: pytest.TempPathFactory):
    """The editor pyfunc as MLflow loads it (what `mlflow models serve` serves)."""
    import mlflow.pyfunc

    folder = tmp_path_factory.mktemp("pyfunc")
    return mlflow.pyfunc.load_model(str(save_editor_model(editor.save(folder / "bundle"), folder / "editor")))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)


def test_the_signature_names_the_attributes_input(pyfunc):
    assert "attributes" in pyfunc.metadata.signature.inputs.input_names()


def test_an_attribute_edit_needs_no_mask_and_matches_the_editor(pyfunc, editor: Editor, photo: np.ndarray):
    expected = editor.edit(photo, attributes=SLEEVES, seed=2)
    assert (expected != photo).any()
    [edit] = pyfunc.predict([{"image": base64_png(photo), "attributes": SLEEVES}], params={"seed": 2})
    assert np.array_equal(png_pixels(edit["image"]), expected) and edit["notice"] is None
    # an empty mask is no hole of its own: the attribute edit alone, the same pixels
    empty = np.zeros(photo.shape[:2], np.uint8)
    [edit] = pyfunc.predict([{"image": photo, "mask": empty, "attributes": json.dumps(SLEEVES)}], params={"seed": 2})
    assert np.array_equal(png_pixels(edit["image"]), expected)


def test_rest_requests_take_an_object_per_record_or_json_text_in_a_single_mapping(pyfunc, editor: Editor,
                                                                               photo: np.ndarray):
    expected = editor.edit(photo, attributes=SLEEVES, seed=2)
    image = base64_png(photo)
    for body in ({"dataframe_records": [{"image": image, "attributes": SLEEVES}], "params": {"seed": 2}},
                 {"inputs": {"image": image, "attributes": json.dumps(SLEEVES)}, "params": {"seed": 2}}):
        status, answer = serve(pyfunc, body)
        assert status == 200, answer
        assert np.array_equal(png_pixels(answer["predictions"][0]["image"]), expected)


def test_a_zero_strength_returns_the_input_unchanged(pyfunc, photo: np.ndarray):
    [edit] = pyfunc.predict([{"image": base64_png(photo), "attributes": {"hem_length": 0.0}}])
    assert np.array_equal(png_pixels(edit["image"]), photo)


@pytest.mark.parametrize("attributes, message", [
    ({"collar": 0.2}, "attributes: unknown attribute 'collar'; known: sleeve_length, hem_length, width"),
    ({"hem_length": 0.8}, "attributes: strength 0.8 for 'hem_length' is outside the trained range [-0.5, +0.5]"),
    ({"hem_length": "long"}, "attributes: the strength of 'hem_length' must be a number, got 'long'"),
    ("{sleeve_length: 0.2}", "attributes: not a JSON object"),
    (0.2, "attributes: got float; send an object of attribute name -> strength"),
])
def test_bad_attributes_are_a_400_naming_the_field_without_a_stack_trace(pyfunc, photo: np.ndarray, attributes,
                                                                        message: str):
    status, answer = serve(pyfunc, {"dataframe_records": [{"image": base64_png(photo), "attributes": attributes}]})
    assert status == 400 and answer["message"].startswith(message) and "stack_trace" not in answer
    with pytest.raises(EditInputError, match="^attributes: "):
        pyfunc.predict([{"image": base64_png(photo), "attributes": attributes}])


def test_an_object_in_a_single_mapping_says_to_send_json_text(pyfunc, photo: np.ndarray):
    """MLflow spreads an object inside a single-edit mapping over rows; the message says what to send instead."""
    with pytest.raises(EditInputError, match="as JSON text when the edit is a single mapping"):
        pyfunc.predict({"image": base64_png(photo), "attributes": SLEEVES})


def test_without_mask_or_attributes_the_mask_is_missing(pyfunc, photo: np.ndarray):
    status, answer = serve(pyfunc, {"inputs": {"image": base64_png(photo), "attributes": "{}"}})
    assert status == 400 and answer["message"] == "an edit needs ['image', 'mask']; missing ['mask']"


def test_a_model_whose_parser_learned_no_attributes_says_so(tmp_path: Path, photo: np.ndarray):
    import mlflow.pyfunc

    torch.manual_seed(0)
    plain = Editor(EditorNetworks.untrained(tiny_params({"parser": {"attributes": []}})), (64, 64))
    model = mlflow.pyfunc.load_model(str(save_editor_model(plain.save(tmp_path / "bundle"), tmp_path / "editor")))
    status, answer = serve(model, {"dataframe_records": [{"image": base64_png(photo), "attributes": SLEEVES}]})
    assert status == 400 and "not trained to edit 'sleeve_length'" in answer["message"]


class Background(torch.nn.Module):
    """A segmenter that sees no figure: every pixel background."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(images.shape[0], 20, *images.shape[2:])
        logits[:, 0] = 1
        return logits


def test_a_photo_without_the_garment_to_edit_is_a_clear_input_error(editor: Editor, photo: np.ndarray):
    """The attribute code's own error (nothing to measure in the photo's parsing) is a bad input (REST: 400)."""
    from dataclasses import replace

    from fashion_edit.serving.pyfunc import EditorModel

    model = EditorModel()
    model.editor = Editor(replace(editor.networks, segmenter=Background()), editor.size)
    with pytest.raises(EditInputError, match="^attributes: cannot edit 'sleeve_length'"):
        model.predict(None, [{"image": base64_png(photo), "attributes": SLEEVES}])
