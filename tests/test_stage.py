"""The stage skeleton: one line and an exit code for what a user can act on, a traceback for a bug."""
from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fashion_edit.config import ParamsError
from fashion_edit.stage import INTERRUPTED, run_stage
from tests.conftest import REPO_ROOT, repo_env, tiny_params, write_params


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    return write_params(tmp_path / "params.yaml", tiny_params())


def _run(params_file: Path, failure: BaseException) -> int:
    def work(params, root, args):
        raise failure
    return run_stage("demo", None, work, ["--params", str(params_file)])


@pytest.mark.parametrize("failure, code, line", [
    (ParamsError("params.yaml: missing x.y"), 1, "demo: error: params.yaml: missing x.y"),
    (OSError(errno.ENOSPC, "No space left on device", "data/prepared/train/shard-0.npz"), 1,
     "demo: error: cannot write data/prepared/train/shard-0.npz: No space left on device. Free space"),
    (OSError(errno.EROFS, "Read-only file system", "reports/x.json"), 1, "Read-only file system"),
    (KeyboardInterrupt("signal SIGTERM"), INTERRUPTED, "demo: stopped (signal SIGTERM); its MLflow run is marked KILLED"),
], ids=["params", "full-disk", "read-only", "sigterm"])
def test_what_a_user_can_act_on_is_one_line(params_file, capsys, failure, code, line):
    assert _run(params_file, failure) == code
    err = capsys.readouterr().err
    assert line in err and len(err.strip().splitlines()) == 1


def test_a_bug_keeps_its_traceback(params_file):
    with pytest.raises(ZeroDivisionError):
        _run(params_file, ZeroDivisionError("a bug"))
    with pytest.raises(FileNotFoundError):  # not a disk the user must fix: the code asked for a wrong file
        _run(params_file, FileNotFoundError(errno.ENOENT, "No such file", "x"))


def test_sigterm_stops_a_training_stage_with_one_line(tmp_path, prepared_data, mlflow_uri):
    """What a CI timeout or a Prefect cancellation sends: no traceback, exit 130, the checkpoint resumes."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "prepared").symlink_to(prepared_data)
    params = tiny_params({"mlflow": {"experiment": "sigterm"},
                          "train_parser": {"steps": 100000, "checkpoint_every": 2, "batch_size": 2}})
    write_params(root / "params.yaml", params)
    env = {**repo_env(), "MLFLOW_TRACKING_URI": mlflow_uri, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "stages.train_parser", "--params", str(root / "params.yaml")],
                               cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    checkpoint = root / "checkpoints" / "parser" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), process.communicate(timeout=30)[1][-3000:]
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == INTERRUPTED, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "train_parser: stopped (signal SIGTERM)" in stderr.strip().splitlines()[-1]


STAGE_COMMANDS = {
    "check_params": [], "synthesize": [], "preprocess": [], "train_parser": [], "train_inpainter": [],
    "train_segmenter": [], "fid_reference": [], "evaluate": [], "register": [], "ablate": ["--variant", "full"],
    "report": [], "swap_pairs": [], "category_swap": [],
}


@pytest.mark.parametrize("stage", sorted(STAGE_COMMANDS))
def test_every_stage_names_a_missing_params_key_in_one_line(stage, tmp_path, capsys):
    import importlib

    import yaml

    data = tiny_params().model_dump(mode="json")
    del data["synthesize"]["count"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    main = importlib.import_module(f"stages.{stage}").main
    assert main(["--params", str(path), *STAGE_COMMANDS[stage]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and "missing synthesize.count" in err[0], err
