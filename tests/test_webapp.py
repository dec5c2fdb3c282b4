"""`fashion-edit serve`: the page's API in-process (bad inputs, no model), the command as a process, and the real
page in headless Chromium driven with pointer events, its downloads replayed through `fashion-edit edit`."""
from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fashion_edit.serving import cli
from fashion_edit.serving.pyfunc import MAX_SIDE
from fashion_edit.serving.webapp import EditorService, Examples, create_app
from tests.conftest import (REPO_ROOT, free_port, repo_env, require_chromium, server_output, start_server,
                            stop_server, tracking_server_stub, wait_for_http)

SCREENSHOTS = REPO_ROOT / "reports" / "ui"


def png_uri(picture: np.ndarray) -> str:
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", picture)
    assert ok
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


def uri_pixels(uri: str) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    return decoded


def photo_and_hole(height: int = 90, width: int = 70) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4:height // 2, width // 4:width // 2] = 255
    return image, mask


def service_of(args: list[str]) -> EditorService:
    """The service `fashion-edit serve` builds for these command-line options."""
    parsed = cli.parse_args(["serve", *args])
    return EditorService(lambda: cli.load_editor(parsed.model, parsed.checkpoint, parsed.tracking_uri, parsed.params))


@pytest.fixture(scope="module")
def client(editor_bundle: Path, prepared_data: Path) -> TestClient:
    return TestClient(create_app(service_of(["--checkpoint", str(editor_bundle)]), Examples.read(prepared_data)))


@pytest.fixture(scope="module")
def attribute_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained editor whose parser learned every attribute (max strength 0.5), saved for --checkpoint."""
    import torch

    from fashion_edit.serving.editor import Editor, EditorNetworks
    from tests.conftest import tiny_params

    torch.manual_seed(0)
    editor = Editor(EditorNetworks.untrained(tiny_params()), (64, 64))
    return editor.save(tmp_path_factory.mktemp("attribute_editor") / "editor")


@pytest.fixture(scope="module")
def attribute_client(attribute_bundle: Path, prepared_data: Path) -> TestClient:
    return TestClient(create_app(service_of(["--checkpoint", str(attribute_bundle)]), Examples.read(prepared_data)))


# ----------------------------------------------------------------------------- the API in-process
def test_status_names_the_model_and_how_to_replay_with_it(client: TestClient, editor_bundle: Path):
    status = client.get("/api/status").json()
    assert status["ready"] and status["replay"] == f"--checkpoint {editor_bundle}"
    assert status["max_side"] == MAX_SIDE


def test_status_lists_the_attributes_the_model_edits_and_their_range(client: TestClient,
                                                                   attribute_client: TestClient):
    status = attribute_client.get("/api/status").json()
    assert status["attributes"] == ["sleeve_length", "hem_length"] and status["max_strength"] == 0.5
    assert client.get("/api/status").json()["attributes"] == []  # an editor saved before attributes: no sliders


def test_examples_come_from_the_prepared_test_split(client: TestClient, prepared_data: Path):
    from fashion_edit.data.store import open_split

    listed = client.get("/api/examples").json()
    split = open_split(prepared_data / "test")
    assert [e["stem"] for e in listed["examples"]] == split.stems[:len(listed["examples"])] and listed["examples"]
    first = cv2.imdecode(np.frombuffer(client.get("/api/examples/0").content, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(cv2.cvtColor(first, cv2.COLOR_BGR2RGB), split.images[0])


def test_without_prepared_data_the_strip_is_replaced_by_a_note(tmp_path: Path):
    examples = Examples.read(tmp_path / "prepared")
    assert not examples.images and "does not exist" in examples.note and "upload" in examples.note


def test_an_edit_answers_the_result_parsing_and_hole(client: TestClient, editor_bundle: Path):
    from fashion_edit.serving.editor import Editor

    image, mask = photo_and_hole()
    answer = client.post("/api/edit", json={"image": png_uri(image), "mask": png_uri(mask), "seed": 4})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = Editor.load(editor_bundle).edit(image, mask, seed=4)
    assert np.array_equal(cv2.cvtColor(uri_pixels(body["image"]), cv2.COLOR_BGR2RGB), expected)
    assert uri_pixels(body["parsing"]).shape == (90, 70, 3)
    hole = uri_pixels(body["hole"])
    assert hole.shape == (90, 70, 4) and np.array_equal(hole[..., 3] > 0, mask > 0)
    assert body["notice"] is None and body["seed"] == 4


@pytest.mark.parametrize("change, message", [
    ({"mask": png_uri(np.zeros((90, 70), np.uint8))}, "mask has no hole"),
    ({"image": "data:image/png;base64," + base64.b64encode(b"just some notes, not a picture").decode()},
     "image: not an image file"),
    ({"mask": "/etc/passwd"}, "file paths are not accepted"),
    ({"mask": None}, "mask"),
    ({"seed": "many"}, "seed"),
])
def test_a_bad_edit_is_a_clear_400_and_the_server_keeps_serving(client: TestClient, change: dict, message: str):
    image, mask = photo_and_hole()
    body = {"image": png_uri(image), "mask": png_uri(mask), **change}
    answer = client.post("/api/edit", json={k: v for k, v in body.items() if v is not None})
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert client.post("/api/edit", json={"image": png_uri(image), "mask": png_uri(mask)}).status_code == 200


def test_an_attribute_edit_needs_no_hole_and_repaints_only_the_region_it_reports(attribute_client: TestClient,
                                                                                attribute_bundle: Path):
    from fashion_edit.serving.editor import Editor

    image, mask = photo_and_hole()
    expected = Editor.load(attribute_bundle).edit(image, attributes={"sleeve_length": 0.3}, seed=2)
    for body in ({"mask": png_uri(mask * 0)}, {}):  # an empty hole, or no mask at all
        answer = attribute_client.post("/api/edit", json={"image": png_uri(image), "attributes": {"sleeve_length": 0.3},
                                                          "seed": 2, **body})
        assert answer.status_code == 200, answer.text
        result = cv2.cvtColor(uri_pixels(answer.json()["image"]), cv2.COLOR_BGR2RGB)
        assert np.array_equal(result, expected) and (result != image).any()
    repainted = uri_pixels(answer.json()["hole"])[..., 3] > 0
    assert repainted.any() and not ((result != image).any(axis=2) & ~repainted).any()


@pytest.mark.parametrize("attributes, message", [
    ({"collar": 0.2}, "attributes: unknown attribute 'collar'"),
    ({"hem_length": -0.8}, "attributes: strength -0.8 for 'hem_length' is outside the trained range [-0.5, +0.5]"),
    ({"hem_length": "long"}, "attributes.hem_length: Input should be a valid number"),
    ({}, "mask has no hole"),
])
def test_bad_attributes_are_a_clear_400(attribute_client: TestClient, attributes: dict, message: str):
    image, mask = photo_and_hole()
    answer = attribute_client.post("/api/edit", json={"image": png_uri(image), "mask": png_uri(mask * 0),
                                                      "attributes": attributes})
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_attributes_a_model_did_not_learn_are_a_clear_400(client: TestClient):
    image, mask = photo_and_hole()
    answer = client.post("/api/edit", json={"image": png_uri(image), "attributes": {"sleeve_length": 0.2}})
    assert answer.status_code == 400
    assert "not trained to edit 'sleeve_length' (it edits: no attributes" in answer.json()["error"]


def test_a_huge_photo_is_downscaled_with_a_notice(client: TestClient):
    image, mask = photo_and_hole(MAX_SIDE + 500, 1200)
    answer = client.post("/api/edit", json={"image": png_uri(image), "mask": png_uri(mask)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert max(uri_pixels(body["image"]).shape[:2]) == MAX_SIDE and f"1200x{MAX_SIDE + 500}" in body["notice"]


def test_a_body_larger_than_the_limit_is_refused_before_reading(client: TestClient):
    from fashion_edit.serving.webapp import MAX_BODY_BYTES

    answer = client.post("/api/edit", content=b"{}", headers={"Content-Length": str(MAX_BODY_BYTES + 1),
                                                              "Content-Type": "application/json"})
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_a_registry_without_champion_says_how_to_get_one_and_keeps_serving(tmp_path: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # an empty store
    client = TestClient(create_app(service_of(["--tracking-uri", uri]), Examples.read(tmp_path)))
    status = client.get("/api/status").json()
    assert not status["ready"] and "models:/editor@champion" in status["error"]
    assert "make run" in status["error"] and "--checkpoint artifacts/editor" in status["error"]
    image, mask = photo_and_hole()
    answer = client.post("/api/edit", json={"image": png_uri(image), "mask": png_uri(mask)})
    assert answer.status_code == 503 and "make run" in answer.json()["error"]
    assert client.get("/").status_code == 200 and client.post("/api/reload").json()["ready"] is False


def test_an_unreachable_tracking_server_is_a_clear_message_not_a_hang(tmp_path: Path):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    client = TestClient(create_app(service_of(["--tracking-uri", uri]), Examples.read(tmp_path)))
    status = client.get("/api/status").json()
    assert time.monotonic() - started < 30  # MLflow's own client would retry for minutes
    assert not status["ready"] and "unreachable" in status["error"] and uri in status["error"]
    assert client.get("/api/examples").status_code == 200


def test_a_tracking_server_whose_api_fails_is_a_clear_message():
    with tracking_server_stub(503) as uri:
        status = service_of(["--tracking-uri", uri]).status()
    assert not status["ready"] and "answers but its API fails" in status["error"]


def test_the_served_registry_model_shows_name_version_alias_and_metrics(editor_bundle: Path, tmp_path: Path):
    from mlflow import MlflowClient

    from fashion_edit.serving.pyfunc import save_editor_model
    from fashion_edit.tracking.registry import promote, register_version

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("serve", artifact_location=(tmp_path / "a").as_uri()))
    client.log_artifacts(run.info.run_id, str(save_editor_model(editor_bundle, tmp_path / "model")), "editor")
    version = register_version(client, "editor", f"runs:/{run.info.run_id}/editor",
                               metrics={"fid": 12.5, "fid_se": 0.5}, identity={})
    promote(client, "editor", version.version)
    status = service_of(["--tracking-uri", uri]).status()
    assert status["ready"] and (status["name"], status["version"], status["alias"]) == ("editor", "1", "champion")
    assert status["metrics"]["fid"] == 12.5 and status["replay"] == "--model models:/editor@champion"


# ----------------------------------------------------------------------------- the command, as a process
def serve_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "fashion_edit.serving.cli", "serve", "--port", str(port), *options]


def test_serve_without_a_model_starts_and_says_how_to_get_one(tmp_path: Path):
    port = free_port()
    server = start_server(serve_command(port, "--tracking-uri", f"sqlite:///{tmp_path / 'absent.db'}",
                                        "--data", str(tmp_path / "none")))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status", server)
        output = server_output(server)
    finally:
        stop_server(server)
    assert "no model" in output and "make run" in output and "--checkpoint artifacts/editor" in output
    assert "no example photos" in output and f"http://127.0.0.1:{port}/" in output


def test_serve_on_a_taken_port_says_which_and_exits_1(editor_bundle: Path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["serve", "--port", str(port), "--checkpoint", str(editor_bundle)])
    assert code == 1 and f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the page in Chromium
def served_page(bundle: Path, prepared_data: Path):
    """`fashion-edit serve --checkpoint bundle` running; yields the page's URL."""
    port = free_port()
    server = start_server(serve_command(port, "--checkpoint", str(bundle), "--data", str(prepared_data)))
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url + "api/status", server)
    yield url
    stop_server(server)


@pytest.fixture
def page_server(editor_bundle: Path, prepared_data: Path):
    yield from served_page(editor_bundle, prepared_data)


@pytest.fixture
def attribute_page_server(attribute_bundle: Path, prepared_data: Path):
    yield from served_page(attribute_bundle, prepared_data)


def wait_until(driver, condition, timeout: float = 30, what: str = "the page"):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        logs = "\n".join(str(entry) for entry in driver.get_log("browser"))
        raise AssertionError(f"{what} did not happen in {timeout} s; the page says {message(driver)!r}\n{logs}") from None


def stroke(driver, canvas, points: list[tuple[int, int]]) -> None:
    """A real pointer drag through ``points`` (offsets from the canvas centre, in screen pixels)."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        actions = actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


def downloaded(driver, names: list[str], timeout: float = 20) -> dict[str, Path]:
    """Click each download link and wait for the files in the browser's download folder."""
    for name in names:
        driver.find_element("id", f"download-{name}").click()
    deadline = time.monotonic() + timeout
    files = {name: driver.downloads / f"{name}.png" for name in names}
    while not all(f.is_file() and f.stat().st_size > 0 for f in files.values()) or any(
            driver.downloads.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"downloads missing: {sorted(p.name for p in driver.downloads.iterdir())}"
        time.sleep(0.2)
    return files


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def message(driver) -> str:
    return driver.find_element("id", "message").text


def test_the_page_edits_inside_the_hole_and_its_downloads_replay_on_the_command_line(
        browser, page_server: str, editor_bundle: Path, tmp_path: Path):
    from selenium.webdriver.common.by import By

    browser.get(page_server)
    wait_until(browser, lambda d: "serving editor from" in d.find_element(By.ID, "model").text, what="model status")
    examples = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#examples img.example"),
                          what="example strip")
    examples[0].click()
    assert not browser.find_element(By.ID, "attribute-bar").is_displayed()  # this editor learned no attributes
    browser.find_element(By.ID, "live").click()  # edits only on the button in this test
    browser.find_element(By.ID, "edit").click()
    wait_until(browser, lambda d: "Erase brush first" in message(d), what="the no-hole message")

    canvas = browser.find_element(By.ID, "canvas")
    browser.find_element(By.ID, "size").send_keys("\ue010")  # End: the largest brush
    stroke(browser, canvas, [(-90, -60), (90, -60), (90, 0), (-90, 0), (-90, 50), (90, 50)])
    browser.find_element(By.CSS_SELECTOR, "[data-tool=sketch]").click()
    stroke(browser, canvas, [(-80, -30), (80, 20)])
    browser.find_element(By.CSS_SELECTOR, ".swatch:nth-child(5)").click()  # blue, selects the colour brush
    stroke(browser, canvas, [(-50, 30), (50, 30)])
    browser.find_element(By.ID, "seed").clear()
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "edit").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "7",
               what="the edit")
    assert message(browser) == ""
    save_screenshot(browser, tmp_path / "editor_result.png")
    browser.find_element(By.ID, "show-hole").click()
    browser.find_element(By.ID, "show-parsing").click()
    assert browser.find_element(By.ID, "parsing-overlay").is_displayed()
    save_screenshot(browser, tmp_path / "editor_overlays.png")

    files = downloaded(browser, ["result", "image", "mask", "sketch", "colour"])
    image, result = read_rgb(files["image"]), read_rgb(files["result"])
    hole = cv2.imread(str(files["mask"]), cv2.IMREAD_GRAYSCALE) >= 128
    changed = (image != result).any(axis=2)
    near_hole = cv2.dilate(hole.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # 2 px of resampling
    assert changed.any() and not (changed & ~near_hole).any(), "the edit changed pixels outside the hole"
    colour = cv2.imread(str(files["colour"]), cv2.IMREAD_UNCHANGED)
    assert colour.shape[2] == 4 and (colour[..., 3] > 0).any() and (cv2.imread(str(files["sketch"])) > 0).any()

    replayed = tmp_path / "replayed.png"
    done = subprocess.run([sys.executable, "-m", "fashion_edit.serving.cli", "edit", *[
        arg for name in ("image", "mask", "sketch", "colour") for arg in (f"--{name}", str(files[name]))],
        "--checkpoint", str(editor_bundle), "--seed", "7", "--out", str(replayed)],
        cwd=REPO_ROOT, env=repo_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read_rgb(replayed), result), "the downloaded inputs do not replay to the page's result"
    replay = browser.find_element(By.ID, "replay").text
    assert "--seed 7" in replay and f"--checkpoint {editor_bundle}" in replay


def test_the_page_undoes_varies_and_reports_bad_uploads(browser, page_server: str, tmp_path: Path):
    from selenium.webdriver.common.by import By

    browser.get(page_server)
    examples = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#examples img.example"),
                          what="example strip")
    examples[1].click()
    canvas = browser.find_element(By.ID, "canvas")
    stroke(browser, canvas, [(-60, -20), (60, -20)])  # live: edits after the stroke
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "0",
               what="the live edit")
    browser.find_element(By.ID, "undo").click()
    assert browser.execute_script("return hasHole()") is False
    browser.find_element(By.ID, "undo").click()  # nothing left to undo: no error
    stroke(browser, canvas, [(-60, 20), (60, 20)])
    browser.find_element(By.ID, "variations").click()
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#variation-strip img")) == 4,
               what="four variations")
    browser.find_elements(By.CSS_SELECTOR, "#variation-strip img")[2].click()
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "3",
               what="choosing a variation")
    browser.find_element(By.ID, "clear").click()
    assert browser.execute_script("return hasHole()") is False

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    browser.find_element(By.ID, "upload").send_keys(str(notes))
    wait_until(browser, lambda d: "notes.png is not an image" in message(d), what="the bad-upload message")

    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.full((MAX_SIDE + 1000, 1500, 3), 200, np.uint8))
    browser.find_element(By.ID, "upload").send_keys(str(huge))
    wait_until(browser, lambda d: "downscaled" in message(d), what="the downscale notice")
    assert browser.execute_script("return [state.photo.width, state.photo.height]") == [
        round(1500 * MAX_SIDE / (MAX_SIDE + 1000)), MAX_SIDE]
    stroke(browser, canvas, [(-30, 0), (30, 0)])  # the server keeps serving: a live edit of the big photo
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "3", timeout=60,
               what="the edit of the downscaled photo")


def test_a_slider_edits_an_attribute_without_a_painted_hole(browser, attribute_page_server: str, tmp_path: Path):
    from selenium.webdriver.common.by import By

    browser.get(attribute_page_server)
    sliders = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#attributes input[type=range]"),
                         what="the attribute sliders")
    assert [s.get_attribute("data-attribute") for s in sliders] == ["sleeve_length", "hem_length"]
    assert [sliders[0].get_attribute(a) for a in ("min", "max", "step", "value")] == ["-0.50", "0.50", "0.05", "0"]
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#examples img.example"),
               what="example strip")[0].click()
    browser.find_element(By.ID, "live").click()  # edits only on the button in this test
    browser.find_element(By.ID, "edit").click()  # no hole, every slider at 0: nothing to edit
    wait_until(browser, lambda d: "or move an attribute slider" in message(d), what="the nothing-to-edit message")

    browser.execute_script("const s = document.getElementById('attribute-sleeve_length'); s.value = '0.3'; "
                           "s.dispatchEvent(new Event('input', {bubbles: true}));")
    assert browser.find_element(By.CSS_SELECTOR, "#attributes label output").text == "+0.30"
    assert browser.execute_script("return hasHole()") is False
    browser.find_element(By.ID, "edit").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "result").get_attribute("data-seed") == "0",
               what="the attribute edit")
    assert message(browser) == ""
    save_screenshot(browser, tmp_path / "editor_attribute.png")
    photo = uri_pixels(browser.execute_script("return state.photo.toDataURL('image/png')"))[..., :3]
    result = uri_pixels(browser.find_element(By.ID, "result").get_attribute("src"))[..., :3]
    assert result.shape == photo.shape and (result != photo).any(), "the attribute edit changed nothing"
    assert "--attribute sleeve_length=+0.30 --seed 0" in browser.find_element(By.ID, "replay").text


def save_screenshot(driver, path: Path) -> None:
    """The page as a test artefact (pytest's tmp folder) and in reports/ui/ for people to look at."""
    driver.save_screenshot(str(path))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)


def test_the_serve_benchmark_times_the_page_in_chromium(editor_bundle: Path, capsys):
    """bench.bench_serve runs (one repeat): the CPU line and the three timings."""
    from bench.bench_serve import main

    require_chromium()
    main(["--checkpoint", str(editor_bundle), "--repeats", "1", "--size", "96"])
    printed = capsys.readouterr().out
    assert "cpu capability" in printed and "button -> displayed result (Chromium)" in printed
    assert "POST /api/edit" in printed and "networks (server's Editor.run)" in printed
