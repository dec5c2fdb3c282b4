"""The editor (one edit), its MLflow pyfunc and the `fashion-edit edit` command, on tiny random networks."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fashion_edit.serving import cli
from fashion_edit.serving.editor import EditInputError, Editor, EditorNetworks
from fashion_edit.weights import NetworkFileError
from fashion_edit.serving.pyfunc import load_registered_model, save_editor_model
from tests.conftest import (REPO_ROOT, free_port, open_residual_heads, repo_env, server_output, start_server,
                            stop_server, tiny_params, wait_for_http)

SIZE = (64, 64)
SAVED_BEFORE_REGROUP = REPO_ROOT / "tests" / "fixtures" / "editor_before_regroup"


@pytest.fixture(scope="module")
def editor() -> Editor:
    params = tiny_params()
    torch.manual_seed(0)
    networks = EditorNetworks.untrained(params)
    open_residual_heads(networks.parser, networks.inpainter)  # untrained, but every input reaches the output
    return Editor(networks, SIZE)


@pytest.fixture(scope="module")
def bundle(editor: Editor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return editor.save(tmp_path_factory.mktemp("editor") / "bundle")


def photo(height: int = 90, width: int = 70) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def hole(height: int = 90, width: int = 70) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[20:50, 15:45] = 255
    return mask


def write_png(path: Path, picture: np.ndarray) -> Path:
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), picture)
    return path


# ----------------------------------------------------------------------------- one edit
def test_edit_returns_input_size_and_keeps_known_pixels(editor: Editor):
    image, mask = photo(), hole()
    edited = editor.edit(image, mask)
    assert edited.shape == image.shape and edited.dtype == np.uint8
    known = mask == 0
    assert np.array_equal(edited[known], image[known])
    assert (edited[~known] != image[~known]).any()


@pytest.mark.parametrize("shape", [(90, 70), (40, 25)], ids=["shrunk", "enlarged"])
def test_a_photo_reaches_the_networks_as_preprocess_fitted_the_training_photos(editor: Editor, shape):
    """No train/serve skew: the editor's letterbox and interpolation are the preprocess stage's."""
    from fashion_edit.data.preprocess import fit_to_size
    from fashion_edit.serving.editor import EditInputs

    image = photo(*shape)
    trained, _ = fit_to_size(image, np.zeros(shape, np.uint8), *SIZE)
    batch, _ = editor.model_batch(EditInputs.read(image, hole(*shape)))
    served = np.rint((batch["image"][0].numpy().transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)
    assert served.shape == trained.shape and np.abs(served.astype(int) - trained.astype(int)).max() <= 1


def test_edit_is_deterministic_for_a_seed(editor: Editor):
    image, mask = photo(), hole()
    assert np.array_equal(editor.edit(image, mask, seed=3), editor.edit(image, mask, seed=3))


def test_sketch_and_colour_outside_the_hole_are_ignored(editor: Editor):
    image, mask = photo(), hole()
    outside = np.zeros(mask.shape, np.uint8)
    outside[70:80, :] = 255
    colour = np.zeros((*mask.shape, 3), np.uint8)
    colour[70:80, :] = (255, 0, 0)
    assert np.array_equal(editor.edit(image, mask), editor.edit(image, mask, sketch=outside, colour=colour))


def test_sketch_inside_the_hole_changes_the_edit(editor: Editor):
    image, mask = photo(), hole()
    sketch = np.zeros(mask.shape, np.uint8)
    sketch[35, 15:45] = 255
    assert not np.array_equal(editor.edit(image, mask), editor.edit(image, mask, sketch=sketch))


def test_rgba_colour_strokes_use_alpha(editor: Editor):
    image, mask = photo(), hole()
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[30:34, 20:40] = (0, 0, 0, 255)  # black strokes: only expressible with alpha
    assert not np.array_equal(editor.edit(image, mask), editor.edit(image, mask, colour=rgba))


def test_bundle_round_trip_gives_identical_edits(editor: Editor, bundle: Path):
    image, mask = photo(), hole()
    assert np.array_equal(Editor.load(bundle).edit(image, mask), editor.edit(image, mask))


def test_bundle_with_mismatched_weights_is_reported(bundle: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in bundle.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    torch.save({"unexpected": torch.zeros(1)}, broken / "parser.pt")
    with pytest.raises(NetworkFileError, match="parser.pt is not a parser file"):
        Editor.load(broken)


# ----------------------------------------------------------------------------- pyfunc
def test_editor_pyfunc_round_trip_through_mlflow(editor: Editor, bundle: Path, tmp_path: Path):
    from mlflow import MlflowClient

    from fashion_edit.tracking.registry import register_version

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("editor-test", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    save_editor_model(bundle, tmp_path / "editor_model")
    client.log_artifacts(run.info.run_id, str(tmp_path / "editor_model"), "editor")
    register_version(client, "editor", f"runs:/{run.info.run_id}/editor", metrics={"fid": 1.0}, identity={})

    model = load_registered_model("models:/editor@candidate", uri)
    image, mask = photo(), hole()
    expected = editor.edit(image, mask, seed=5)
    [edit] = model.predict([{"image": image, "mask": mask}], params={"seed": 5})  # arrays: one mapping per edit
    assert np.array_equal(png_pixels(edit["image"]), expected) and edit["notice"] is None
    encoded = {"image": base64_png(image), "mask": base64_png(mask)}
    table = pd.DataFrame([{**encoded, "sketch": None, "colour": np.nan}] * 2)
    edits = model.predict(table, params={"seed": 5, "output": "array"})
    assert len(edits) == 2 and all(np.array_equal(np.asarray(e["image"], np.uint8), expected) for e in edits)
    with pytest.raises(EditInputError, match="missing \\['mask'\\]"):
        model.predict({"image": base64_png(image)})


def test_the_registered_editor_shows_its_inputs_and_params(pyfunc):
    signature = pyfunc.metadata.signature
    assert signature.inputs.input_names() == ["image", "mask", "sketch", "colour", "attributes", "to_category", "samples"]
    assert {p.name: p.default for p in signature.params.params} == {"seed": 0, "output": "png"}


@pytest.fixture(scope="module")
def pyfunc(bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """The editor pyfunc as MLflow loads it (what `mlflow models serve` serves)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(save_editor_model(bundle, tmp_path_factory.mktemp("pyfunc") / "editor")))


def base64_png(picture: np.ndarray) -> str:
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", picture)
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()


def png_pixels(text: str) -> np.ndarray:
    """The RGB pixels of base64 PNG text (what the editor model answers)."""
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None, "not a PNG"
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def serve(model, body: dict) -> tuple[int, dict]:
    """One request as `mlflow models serve` handles it (its JSON decoding and parsing, then predict)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import invocations

    try:
        response = invocations(json.dumps(body), "application/json", model, None)
    except MlflowException as exc:
        return exc.get_http_status_code(), {"message": exc.message, **exc.json_kwargs}
    return response.status, json.loads(response.response)


def test_pyfunc_accepts_nested_lists_as_a_json_request_decodes_to(editor: Editor, pyfunc):
    image, mask = photo(), hole()
    expected = editor.edit(image, mask, seed=5)
    lists = {"image": image.tolist(), "mask": mask.tolist()}
    [edit] = pyfunc.predict([lists], params={"seed": 5})
    assert np.array_equal(png_pixels(edit["image"]), expected)
    status, answer = serve(pyfunc, {"dataframe_records": [lists], "params": {"seed": 5, "output": "array"}})
    assert status == 200 and np.array_equal(np.asarray(answer["predictions"][0]["image"], np.uint8), expected)


def test_pyfunc_accepts_base64_png_strings_and_answers_a_png(editor: Editor, pyfunc):
    image, mask = photo(), hole()
    expected = editor.edit(image, mask, seed=5)
    encoded = {"image": base64_png(image), "mask": "data:image/png;base64," + base64_png(mask)}
    status, answer = serve(pyfunc, {"inputs": encoded, "params": {"seed": 5}})
    assert status == 200 and np.array_equal(png_pixels(answer["predictions"][0]["image"]), expected)
    as_arrays = len(json.dumps(serve(pyfunc, {"inputs": encoded, "params": {"seed": 5, "output": "array"}})[1]))
    assert len(json.dumps(answer)) < as_arrays / 2  # the reason PNG is the default


def test_a_bad_rest_request_is_a_client_error_with_the_message_and_no_stack_trace(pyfunc):
    status, answer = serve(pyfunc, {"inputs": {"image": base64_png(photo())}})
    assert status == 400 and answer["message"] == "an edit needs ['image', 'mask']; missing ['mask']"
    assert "stack_trace" not in answer


def test_a_rest_request_without_a_hole_is_a_400_saying_so(pyfunc):
    status, answer = serve(pyfunc, {"inputs": {"image": base64_png(photo()), "mask": base64_png(hole() * 0)}})
    assert status == 400 and answer["message"] == "mask has no hole: paint the region to edit white (>= 128) on black"


@pytest.mark.parametrize("mask, message", [
    (7, r"mask: got int; send base64-encoded PNG/JPEG text or an array"),
    ([[0, 255], [255]], r"mask \(nested lists\): rows of unequal length"),
    ([[300] * 70] * 90, r"mask \(nested lists\): pixels are int64 with values above 255"),
    ("data:image/png;base64,bm90IGFuIGltYWdl", r"mask: not an image file \(a text value must be base64"),
])
def test_pyfunc_names_the_input_and_what_it_accepts(pyfunc, mask, message):
    with pytest.raises(EditInputError, match=message):
        pyfunc.predict([{"image": photo().tolist(), "mask": mask}])


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/hostname", "/nonexistent/secret.png", "../../mlflow.db",
                                  str(SAVED_BEFORE_REGROUP / "mask.png")])
def test_pyfunc_never_reads_a_server_path_and_says_so_alike_for_files_that_exist_or_not(pyfunc, path):
    status, answer = serve(pyfunc, {"inputs": {"image": base64_png(photo()), "mask": path}})
    assert status == 400 and "file paths are not accepted" in answer["message"]
    assert path not in answer["message"] and "not found" not in answer["message"]


def test_a_huge_photo_is_downscaled_with_a_notice(pyfunc):
    from fashion_edit.serving.pyfunc import MAX_SIDE

    height, width = MAX_SIDE + 952, 1500
    image = np.full((height, width, 3), 90, np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[1000:1400, 500:900] = 255
    [edit] = pyfunc.predict({"image": base64_png(image), "mask": base64_png(mask)})
    edited = png_pixels(edit["image"])
    assert max(edited.shape[:2]) == MAX_SIDE and f"{width}x{height}" in edit["notice"]


def test_a_picture_announcing_too_many_pixels_is_refused_before_decoding(pyfunc):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, "PNG")  # ~10 kB of file, 81 M pixels
    encoded = base64.b64encode(buffer.getvalue()).decode()
    status, answer = serve(pyfunc, {"inputs": {"image": encoded, "mask": encoded}})
    assert status == 400 and "9000x9000 pixels is more than" in answer["message"]


def test_the_readme_rest_example_edits_through_a_real_mlflow_models_serve(editor: Editor, bundle: Path,
                                                                         tmp_path: Path):
    """README's `mlflow models serve` and request lines, run as written (only the port is a free one) in a
    folder holding in.png and hole.png, against a registry whose editor@champion is this editor."""
    import urllib.error
    import urllib.request

    from mlflow import MlflowClient

    from fashion_edit.tracking.registry import promote, register_version
    from tests.test_documented_commands import REST_REQUEST, REST_SERVER, documented_commands

    assert REST_SERVER in documented_commands() and all(line in documented_commands() for line in REST_REQUEST)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("rest", artifact_location=(tmp_path / "a").as_uri()))
    client.log_artifacts(run.info.run_id, str(save_editor_model(bundle, tmp_path / "model")), "editor")
    promote(client, "editor", register_version(client, "editor", f"runs:/{run.info.run_id}/editor", metrics={},
                                               identity={}).version)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    image, mask = photo(), hole()
    write_png(work / "in.png", image), write_png(work / "hole.png", mask)
    port = str(free_port())
    env = repo_env({"MLFLOW_TRACKING_URI": uri})
    server = start_server(["bash", "-c", "exec " + REST_SERVER.removesuffix("&").replace("5001", port)], cwd=work,
                          env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=240)
        for line in REST_REQUEST:
            done = subprocess.run(["bash", "-c", line.replace("5001", port)], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert np.array_equal(cv2.cvtColor(cv2.imread(str(work / "edited.png")), cv2.COLOR_BGR2RGB),
                              editor.edit(image, mask, seed=0))
        probe = json.dumps({"inputs": {"image": base64_png(image), "mask": "/etc/passwd"}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", probe,
                                         {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 400 and answer["message"].startswith("mask: not valid base64")
        assert "file paths are not accepted" in answer["message"] and "passwd" not in answer["message"]
    finally:
        output = server_output(server)
        stop_server(server)
    assert "Traceback" not in output, output


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"image": write_png(tmp_path / "in.png", photo()), "mask": write_png(tmp_path / "mask.png", hole())}


def edit_command(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["edit", "--image", str(files["image"]), "--mask", str(files["mask"]), "--out", str(out), *extra]


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


def test_cli_edit_with_checkpoint_writes_the_image(files, bundle: Path, tmp_path: Path, capsys):
    sketch = write_png(tmp_path / "sketch.png", np.zeros((90, 70), np.uint8))
    colour = write_png(tmp_path / "colour.png", np.zeros((90, 70, 3), np.uint8))
    out = tmp_path / "out" / "edited.png"
    code = cli.main(edit_command(files, out, "--checkpoint", str(bundle), "--sketch", str(sketch),
                                 "--colour", str(colour)))
    assert code == 0 and "wrote" in capsys.readouterr().out
    written = cv2.imread(str(out))
    assert written.shape == (90, 70, 3)


def test_cli_runs_as_a_module(files, bundle: Path, tmp_path: Path):
    out = tmp_path / "edited.png"
    done = subprocess.run([sys.executable, "-m", "fashion_edit.serving.cli", *edit_command(files, out, "--checkpoint",
                                                                                   str(bundle))],
                          cwd=REPO_ROOT, env=repo_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file()


def test_cli_rejects_a_mask_of_another_size(files, bundle: Path, tmp_path: Path, capsys):
    files["mask"] = write_png(tmp_path / "small_mask.png", hole(40, 40))
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "mask is 40x40 pixels but the image is 70x90" in err


def test_cli_rejects_a_sketch_of_another_size(files, bundle: Path, tmp_path: Path, capsys):
    sketch = write_png(tmp_path / "sketch.png", np.zeros((30, 30), np.uint8))
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle), "--sketch", str(sketch)),
                        capsys)
    assert code == 1 and "sketch is 30x30" in err


def test_cli_rejects_a_mask_without_hole(files, bundle: Path, tmp_path: Path, capsys):
    files["mask"] = write_png(tmp_path / "empty.png", np.zeros((90, 70), np.uint8))
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "mask has no hole" in err


def test_cli_rejects_a_mask_that_erases_everything(files, bundle: Path, tmp_path: Path, capsys):
    files["mask"] = write_png(tmp_path / "full.png", np.full((90, 70), 255, np.uint8))
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "covers the whole image" in err


def test_cli_rejects_a_non_image_file(files, bundle: Path, tmp_path: Path, capsys):
    files["image"] = tmp_path / "notes.png"
    files["image"].write_text("not a picture")
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "not an image file" in err and "notes.png" in err


def test_cli_rejects_a_missing_input_file(files, bundle: Path, tmp_path: Path, capsys):
    files["mask"] = tmp_path / "absent.png"
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "--mask" in err and "file not found" in err


def test_cli_rejects_an_unsupported_output_type(files, bundle: Path, tmp_path: Path, capsys):
    code, err = run_cli(edit_command(files, tmp_path / "o.txt", "--checkpoint", str(bundle)), capsys)
    assert code == 1 and "unsupported image type '.txt'" in err


def test_cli_reports_a_missing_checkpoint_folder(files, tmp_path: Path, capsys):
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--checkpoint", str(tmp_path / "nowhere")), capsys)
    assert code == 1 and "no editor model" in err


def test_cli_reports_a_missing_tracking_store(files, tmp_path: Path, capsys):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--tracking-uri", uri), capsys)
    assert code == 1 and "no MLflow store" in err
    assert not (tmp_path / "absent.db").exists()  # not created as a side effect


def test_cli_reports_a_model_missing_from_the_registry(files, tmp_path: Path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates an empty store
    code, err = run_cli(edit_command(files, tmp_path / "o.png", "--tracking-uri", uri), capsys)
    assert code == 1 and "cannot load model models:/editor@champion" in err and "--checkpoint" in err


def test_sixteen_bit_input_is_rejected(editor: Editor):
    with pytest.raises(EditInputError, match="uint16 with values above 255, expected 8-bit"):
        editor.edit(photo().astype(np.uint16) * 257, hole())


def test_float_input_is_rejected(editor: Editor):
    with pytest.raises(EditInputError, match="float32, expected 8-bit"):
        editor.edit(photo().astype(np.float32) / 255, hole())


def test_integer_arrays_from_json_are_accepted(editor: Editor):
    image, mask = photo(), hole()
    assert np.array_equal(editor.edit(image.astype(np.int64), (mask > 0).astype(np.int64)), editor.edit(image, mask))


# ----------------------------------------------------------------------------- compatibility


def test_an_editor_saved_by_older_code_still_loads_and_edits_the_same():
    """Registered models outlive code moves: the pickled class path and the bundle format must keep loading
    in a process that already imported today's package (the CLI, the flows, the editor app)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(SAVED_BEFORE_REGROUP / "model"))
    # served models take image bytes, not paths (issue 13): the old model gets the same files' content
    files = {name: base64.b64encode((SAVED_BEFORE_REGROUP / f"{name}.png").read_bytes()).decode()
             for name in ("image", "mask")}
    edited = png_pixels(model.predict(files, params={"seed": 5})["image"])
    expected = cv2.cvtColor(cv2.imread(str(SAVED_BEFORE_REGROUP / "edited_seed5.png")), cv2.COLOR_BGR2RGB)
    difference = np.abs(edited.astype(int) - expected.astype(int))
    assert edited.shape == expected.shape and difference.max() <= 2  # other CPUs round a few pixels differently
