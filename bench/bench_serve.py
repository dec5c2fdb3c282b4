"""Benchmark: an edit through the served page, from the Edit button to the displayed result, in headless Chromium.

    python -m bench.bench_serve [--checkpoint artifacts/editor] [--size 256] [--repeats 20]

Starts `fashion-edit serve` on 127.0.0.1 (a free port) over the editor (without --checkpoint: the networks
of params.yaml with random weights, saved to a temporary folder; the time does not depend on the weights),
opens the page in Chromium (Debian's chromium + chromium-driver), uploads a size x size photo, paints a
hole, a sketch line and a colour stroke with pointer events, then times with the page's clock:
- button -> displayed: click Edit until the result image is decoded and the next frame is due;
- POST /api/edit: the same request from Python (JSON of four PNG data URIs, decode, edit, encode);
- networks: the server's ``Editor.run`` alone (what bench.bench_edit measures in-process).
Targets (DESIGN.md section 10, issue 13): networks <= 150 ms, button -> displayed <= 300 ms at 256x256 on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import torch

from bench.bench_edit import random_editor, request
from fashion_edit.hardware import probe

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# click Edit with a new seed, resolve when the result carries that seed and a frame has been painted
TIME_ONE_EDIT = """
const done = arguments[arguments.length - 1], seed = String(arguments[0]);
const result = document.getElementById("result");
document.getElementById("seed").value = seed;
const started = performance.now();
document.getElementById("edit").click();
(function poll() {
  if (result.dataset.seed === seed) requestAnimationFrame(() => done(performance.now() - started));
  else setTimeout(poll, 1);
})();
"""


def percentiles(times: list[float]) -> tuple[float, float]:
    p90 = sorted(times)[max(0, int(round(0.9 * len(times))) - 1)]
    return statistics.median(times), p90


def report(name: str, times: list[float]) -> None:
    median, p90 = percentiles(times)
    print(f"{name:<40} median {median:7.1f} ms   p90 {p90:7.1f} ms   (n={len(times)})")


def start_page(checkpoint: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "fashion_edit.serving.cli", "serve", "--checkpoint", str(checkpoint),
               "--port", str(port), "--data", str(checkpoint / "no-examples")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"`fashion-edit serve` did not start on port {port}")
            time.sleep(0.3)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def draw_edit(driver, photo: Path) -> None:
    """Upload the photo and paint a hole, a sketch line and a colour stroke with pointer events."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "live").click()  # only the button edits while timing
    driver.find_element(By.ID, "upload").send_keys(str(photo))
    time.sleep(0.5)
    canvas = driver.find_element(By.ID, "canvas")
    driver.find_element(By.ID, "size").send_keys("\ue010")  # End: the largest brush

    def drag(points: list[tuple[int, int]]) -> None:
        actions = ActionChains(driver).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            actions = actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release().perform()

    drag([(-100, -60), (100, -60), (100, 0), (-100, 0), (-100, 60), (100, 60)])
    driver.find_element(By.CSS_SELECTOR, "[data-tool=sketch]").click()
    drag([(-80, -30), (80, 30)])
    driver.find_element(By.CSS_SELECTOR, ".swatch:nth-child(2)").click()
    drag([(-60, 40), (60, 40)])


def time_http(port: int, files: dict[str, str], repeats: int) -> tuple[list[float], list[float]]:
    """Round trips of POST /api/edit and the server's network time of each."""
    trips, networks = [], []
    for seed in range(repeats + 3):
        body = json.dumps({**files, "seed": seed}).encode()
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/edit", body,
                                                           {"Content-Type": "application/json"}), timeout=60) as answer:
            reply = json.loads(answer.read())
        if seed >= 3:  # warm-up first
            trips.append((time.perf_counter() - started) * 1000)
            networks.append(reply["networks_ms"])
    return trips, networks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="editor folder (default: random weights from params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--size", type=int, default=256, help="photo side in pixels (default 256)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="port for the page (default: a free one)")
    args = parser.parse_args(argv)
    hw = probe()  # speed claims are ratios measured in one run: say which machine (DESIGN.md §9.1)
    print(f"cpu capability {hw.cpu_capability}, mkldnn bf16 native {'yes' if hw.native_bf16 else 'no'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        checkpoint = args.checkpoint or random_editor(args.params).save(Path(tmp) / "editor")
        photo = Path(tmp) / "photo.png"
        cv2.imwrite(str(photo), cv2.cvtColor(request(args.size, args.params)["image"], cv2.COLOR_RGB2BGR))
        port = args.port or free_port()
        server = start_page(checkpoint, port)
        driver = chromium()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            time.sleep(1)
            status = driver.execute_script("return state.status")
            print(f"page edit of a {args.size}x{args.size} photo, model resolution "
                  f"{status['size'][0]}x{status['size'][1]}, {status['description']}")
            draw_edit(driver, photo)
            clicks = [driver.execute_async_script(TIME_ONE_EDIT, 1000 + k) for k in range(args.repeats + 3)][3:]
            files = driver.execute_script("return editFiles()")
            trips, networks = time_http(port, files, args.repeats)
        finally:
            driver.quit()
            server.terminate()
            server.wait(20)
    report("button -> displayed result (Chromium)", clicks)
    report("POST /api/edit (HTTP round trip)", trips)
    report("  networks (server's Editor.run)", networks)


def free_port() -> int:
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


if __name__ == "__main__":
    main()
