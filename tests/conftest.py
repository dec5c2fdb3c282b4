"""Shared fixtures: quiet telemetry, a tiny params set, a throw-away repository copy, tiny prepared data.

- ``TINY``: overrides that shrink the real ``params.yaml`` (64 px images, few figures, few steps,
  narrow networks); :func:`tiny_params` applies them (plus your own) through the typed loader.
- ``tiny_repo``: a copy of this repository's source files (tracked + untracked, not ignored) in
  a temporary folder, with the tiny ``params.yaml``, a fresh git repository (one commit) and DVC
  metadata, ready for ``dvc repro``; :func:`repo_env` / :func:`run_in` run commands in it with
  the venv first on PATH and telemetry off.
- ``prepared_data``: synthetic figures preprocessed in-process (session-scoped, read-only).
"""
from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from fashion_edit.config import Params, load_params
from flows.dvc_runner import QUIET_ENV as TELEMETRY_OFF

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

QUIET_ENV = {**TELEMETRY_OFF, "MPLBACKEND": "Agg"}

DVC_METRICS_WIDTH = 120  # issue 19: the default `dvc metrics show` fits a 120-column terminal

# The smallest configuration that still exercises every code path.
TINY: dict[str, Any] = {
    "synthesize": {"count": 40, "height": 64, "width": 64, "contact_sheet": 8},
    "preprocess": {"height": 64, "width": 64, "split": {"val": 0.1, "test": 0.1}},
    "parser": {"base_channels": 8, "n_downsample": 2, "n_res_blocks": 1, "d_channels": 8, "d_scales": 2,
               "d_layers": 2},
    "inpainter": {"base_channels": 8, "n_res_blocks": 1, "d_channels": 8},
    "segmenter": {"base_channels": 8, "n_res_blocks": 1},
    # an explicit layout: `auto` times both on this machine, so two runs could differ in float rounding
    "train_parser": {"steps": 6, "batch_size": 4, "checkpoint_every": 2, "sample_every": 3, "log_every": 2,
                     "channels_last": False},
    "train_inpainter": {"steps": 6, "batch_size": 4, "checkpoint_every": 2, "sample_every": 3, "log_every": 2,
                        "channels_last": False},
    "train_segmenter": {"steps": 5, "batch_size": 8, "checkpoint_every": 2, "sample_every": 3, "log_every": 2,
                        "channels_last": False},
    "evaluate": {"batch_size": 4, "grid_items": 4, "fid_batch_size": 4, "samples": 2},
    "ablation": {"steps": 4, "seeds": 1},
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_params(overrides: dict[str, Any] | None = None) -> Params:
    """The repository's params with TINY and then ``overrides`` applied (validated)."""
    merged = deep_merge(deep_merge(load_params(REPO_ROOT / "params.yaml").model_dump(mode="json"), TINY),
                       overrides or {})
    return Params.model_validate(merged)


def write_random_artifacts(artifacts: Path, seed: int = 0) -> None:
    """Tiny random-init networks where the training stages put theirs (``artifacts/<name>/``)."""
    import torch

    from fashion_edit.serving.editor import TRAINED_WEIGHTS, EditorNetworks
    from fashion_edit.weights import architecture_of, save_network

    params = tiny_params()
    torch.manual_seed(seed)
    networks = EditorNetworks.untrained(params)
    for name, (relative, _) in TRAINED_WEIGHTS.items():
        save_network(artifacts / relative, name, architecture_of(params, name), getattr(networks, name))


def write_params(path: Path, params: Params) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return path


def repo_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: venv first on PATH, telemetry off, no inherited tracking URI."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "FASHION_EDIT_PIPELINE_RUN")}
    env.update(QUIET_ENV)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def run_in(repo: Path, *command: str, timeout: float = 600, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run ``command`` in ``repo``; on failure the assertion shows its output."""
    result = subprocess.run(command, cwd=repo, env=env or repo_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
                             f"\n--- stderr\n{result.stderr[-6000:]}")
    return result


# pipeline outputs and local stores: never copied, even when not (yet) git-ignored
# (dvc.lock too: the copy starts with no recorded runs, its params differ anyway)
_NOT_SOURCE = ("data/", "checkpoints/", "artifacts/", "reports/", "mlartifacts/", "mlruns/", ".dvc/tmp/",
               ".dvc/cache/", "mlflow.db", "dvc.lock", "dvc_plots/")


def _source_files(root: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0")
            if name and not name.startswith(_NOT_SOURCE) and (root / name).is_file()]


def copy_repo(destination: Path, params: Params) -> Path:
    """Copy the repository's source files to ``destination`` as a fresh git + DVC repository."""
    for name in _source_files(REPO_ROOT):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    write_params(destination / "params.yaml", params)
    git = ["git", "-c", "user.name=tests", "-c", "user.email=tests@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "test copy"], cwd=destination, check=True)
    return destination


@pytest.fixture(autouse=True, scope="session")
def _quiet_environment(tmp_path_factory: pytest.TempPathFactory):
    """Telemetry off for the whole session; Prefect keeps its state in a temporary folder."""
    saved = {k: os.environ.get(k) for k in (*QUIET_ENV, "PREFECT_HOME")}
    os.environ.update(QUIET_ENV)
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def tiny_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away copy of the repository with the tiny params (MLflow defaults to its own SQLite file)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FASHION_EDIT_PIPELINE_RUN", raising=False)
    return copy_repo(tmp_path / "repo", tiny_params())


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/prepared`` of the tiny params, built in-process once per session (treat as read-only)."""
    from fashion_edit.data.preprocess import preprocess
    from fashion_edit.data.sources import build_source
    from fashion_edit.data.synthetic import write_dataset

    params = tiny_params()
    root = tmp_path_factory.mktemp("tiny_data")
    write_dataset(params.synthesize, root / "raw", root / "contact_sheet.png")
    preprocess(build_source(params.data, root / "raw"), params.data, params.preprocess, params.masks,
               root / "prepared", root / "preprocess.json")
    return root / "prepared"


@pytest.fixture(scope="session")
def _session_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def mlflow_uri(_session_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite tracking store shared by the session (creating one costs ~2 s), exported as
    MLFLOW_TRACKING_URI for this test. Tests that count runs should use their own experiment."""
    uri = f"sqlite:///{_session_mlflow_db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("FASHION_EDIT_PIPELINE_RUN", raising=False)
    return uri


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is as fast and does not collapse when other jobs share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def open_residual_heads(*networks: "torch.nn.Module") -> None:
    """Give zero-initialised residual heads (the coarse-fill models' last convs) small random weights, as
    training would: with exact zeros no gradient reaches the layers below and no input but the fill counts."""
    import torch

    for network in networks:
        head = getattr(network, "to_rgb", None)
        if head is None and hasattr(network, "net"):
            head = network.net[-1]
        if head is not None and getattr(network, "prefill", False):
            with torch.no_grad():
                torch.nn.init.normal_(head.weight, std=0.05, generator=torch.Generator().manual_seed(0))


def mount_tmpfs(folder: Path, size_kib: int) -> bool:
    """Mount a small tmpfs at ``folder`` (a real disk that fills up, or is remounted read-only);
    False where this process may not mount (not root, or no CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB filesystem of its own (skipped where mounting is not allowed)."""
    disk = tmp_path / "small_disk"
    if not mount_tmpfs(disk, 512):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield disk
    unmount(disk)


@contextmanager
def tracking_server_stub(api_status: int = 404) -> Iterator[str]:
    """A local HTTP server whose /health answers 200 and every other GET or POST ``api_status`` (503: a tracking
    server whose database is down; 401: behind auth; 404: a proxy that maps paths); yields its URI."""
    class Stub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status = 200 if self.path.startswith("/health") else api_status
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_POST = do_GET  # noqa: N815 - the stage's client creates runs with POST

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- serving: editors, servers, browser
# a tiny editor (64 px, the test params' networks) that an older commit saved; loading it through the public
# Editor.load keeps these fixtures independent of where the network builders live
SAVED_EDITOR_BUNDLE = REPO_ROOT / "tests" / "fixtures" / "editor_before_regroup" / "model" / "artifacts" / "bundle"


@pytest.fixture(scope="session")
def editor_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny editor (what ``--checkpoint`` takes), written by today's ``Editor.save``; read-only."""
    from fashion_edit.serving.editor import Editor

    return Editor.load(SAVED_EDITOR_BUNDLE).save(tmp_path_factory.mktemp("editor_bundle") / "editor")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until it answers (any HTTP status); AssertionError with the server's output if it dies or times out."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}:\n{server_output(process)}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                output = server_output(process)
                stop_server(process)
                raise AssertionError(f"{url} did not answer in {timeout:.0f} s:\n{output}") from None
            time.sleep(0.3)


def start_server(command: list[str], cwd: Path = REPO_ROOT, env: dict[str, str] | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    """A server process in its own session, output to ``log`` (a temporary file if None); stop with stop_server."""
    import tempfile

    handle = open(log, "w+") if log else tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, cwd=cwd, env=env or repo_env(), stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True)
    process.log = handle  # type: ignore[attr-defined]
    return process


def server_output(process: subprocess.Popen) -> str:
    """What the server printed so far (the end of it)."""
    process.log.flush()
    process.log.seek(0)
    return process.log.read()[-6000:]


def interrupt_group(process: subprocess.Popen) -> None:
    """SIGINT to a process group started with ``start_new_session`` (what Ctrl-C does), SIGKILL if it lingers."""
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_server(process: subprocess.Popen) -> None:
    interrupt_group(process)
    process.log.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_chromium() -> None:
    """Skip when Debian's chromium / chromium-driver are absent, except in CI (CI=true), where that fails."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = ("headless Chromium is not installed: apt-get install -y chromium chromium-driver "
                   "(.ci/run installs it)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path):
    """Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) through selenium, downloads to
    ``tmp_path/downloads``. Skipped when the browser is absent, except in CI (CI=true), where that fails."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    # the system chromedriver, named explicitly: selenium-manager must not download anything
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()
