"""Every command the README and docs/ give, run exactly as written in a fresh clone with nothing activated.

The fast test checks that each documented command is either run by the slow test or listed in
``NOT_RUN_HERE`` with the reason, so a new command in the docs cannot go untested unnoticed.
The slow test clones a tiny copy of the repository, links the project's venv as ``.venv`` (what
``make`` would have created) and runs the commands through ``bash -c`` with a PATH that holds no
venv, a Prefect server on the documented port included.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import QUIET_ENV, REPO_ROOT, copy_repo, interrupt_group, tiny_params

DOCS = ("README.md", "docs/orchestration.md", "docs/datasets.md", "docs/results.md", "docs/architecture.md")
_FENCE = re.compile(r"```(?:bash|sh)\n(.*?)```", re.S)

# Run by test_documented_commands_work_as_written, in this order (the edit command's bracketed
# options are run as separate concrete commands below).
MAKE_RUN = "make run"
METRICS_SHOW = ".venv/bin/dvc metrics show"
PLOTS_SHOW = ".venv/bin/dvc plots show"
EXP_RUN = ".venv/bin/dvc exp run -S inpainter.norm=spade -S train_inpainter.steps=200"
EXP_SHOW = ".venv/bin/dvc exp show"
NETWORKS = ".venv/bin/python -m fashion_edit.networks --params params.yaml"
EDIT = (".venv/bin/python -m fashion_edit.serving.cli edit --image in.png --mask hole.png [--sketch lines.png] "
        "[--colour strokes.png] --out edited.png [--model models:/editor@champion | --checkpoint artifacts/editor]")
ATTRIBUTE_EDIT = (".venv/bin/python -m fashion_edit.serving.cli edit --image figure.png --attribute sleeve_length=+0.3 "
                  "--out longer.png --checkpoint artifacts/editor")
SWAP_EDIT = (".venv/bin/python -m fashion_edit.serving.cli edit --image figure.png --to trousers --out trousers.png "
             "--checkpoint artifacts/editor")
SAMPLES_EDIT = (".venv/bin/python -m fashion_edit.serving.cli edit --image in.png --mask hole.png --samples 4 "
                "--out edited.png --checkpoint artifacts/editor")
FLOW_RUN = ".venv/bin/python -m flows.retrain run -S train_inpainter.steps=200 --target register"
SERVER = ".venv/bin/prefect server start --host 127.0.0.1 &"
API_URL = "export PREFECT_API_URL=http://127.0.0.1:4200/api"
SERVE = ".venv/bin/python -m flows.retrain serve"
TRIGGER = ".venv/bin/prefect deployment run 'fashion-edit-retrain/retrain-local'"
FLOW_RUNS = ".venv/bin/prefect flow-run ls --flow-name fashion-edit-retrain --limit 10"
RESULT = ".venv/bin/prefect artifact inspect retrain-result"
ABLATIONS_SERVE = ".venv/bin/python -m flows.ablations serve"
ABLATIONS_TRIGGER = ".venv/bin/prefect deployment run 'fashion-edit-ablations/ablations-local'"
ABLATIONS_RUN = ".venv/bin/python -m flows.ablations run --parallel 2"
ABLATIONS_TWO = ".venv/bin/python -m flows.ablations run --variant spade_norm --variant no_gan"
STUDY = "make study"
UI = "make ui"
COMPARE = ".venv/bin/fashion-edit compare"
EXP_DIFF = ".venv/bin/dvc exp diff <exp-a> <exp-b>"
EXP_SHOW_NARROW = (".venv/bin/dvc exp show --only-changed --drop "
                   "'(?!Experiment|reports/metrics/evaluate/model.json:(fid|psnr_hole)|[a-z_]+\\.[a-z_]+$)'")
# the editing page and the REST example: run by tests/test_webapp.py and tests/test_editor.py (which runs the
# README's request lines as written against a real `mlflow models serve`)
MAKE_EDIT = "make edit"
SERVE_PAGE = ".venv/bin/fashion-edit serve --checkpoint artifacts/editor --port 8050"
REST_SERVER = ".venv/bin/mlflow models serve -m models:/editor@champion --env-manager local --host 127.0.0.1 --port 5001 &"
REST_REQUEST = (
    """printf '{"inputs": {"image": "%s", "mask": "%s"}, "params": {"seed": 0}}' "$(base64 -w0 in.png)" """
    """"$(base64 -w0 hole.png)" > request.json""",
    "curl -sS --fail-with-body http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' "
    "--data @request.json -o answer.json",
    """.venv/bin/python -c "import base64, json; open('edited.png', 'wb').write(base64.b64decode("""
    "json.load(open('answer.json'))['predictions'][0]['image']))\"",
)
RUN_HERE = (MAKE_RUN, METRICS_SHOW, COMPARE, PLOTS_SHOW, EXP_RUN, EXP_SHOW, EXP_DIFF, EXP_SHOW_NARROW, NETWORKS, EDIT,
            ATTRIBUTE_EDIT, SWAP_EDIT, SAMPLES_EDIT, FLOW_RUN, SERVER, API_URL, SERVE, TRIGGER, FLOW_RUNS, RESULT, ABLATIONS_SERVE, ABLATIONS_TRIGGER,
            ABLATIONS_RUN, ABLATIONS_TWO, UI)

_GPU = "needs GPUs (torchrun/DDP is tested on CPU by tests/test_training_distributed.py)"
_CLUSTER = "needs a Kubernetes cluster, a Docker host or an image registry (prefect.yaml is tested by test_flows.py)"
_LONG = "takes hours on a CPU; its stages are the ones `make run` runs, with other params"
_PAGE = "a web server in the foreground; `fashion-edit serve` is run by tests/test_webapp.py (in Chromium too)"
_REST = "run as written against a real `mlflow models serve` by tests/test_editor.py (test_the_readme_rest_example_...)"
NOT_RUN_HERE = {
    "make test": "this is the test suite itself",
    MAKE_EDIT: _PAGE,
    ".venv/bin/python -m bench.bench_serve": "a benchmark; tests/test_webapp.py runs it with one repeat",
    SERVE_PAGE: _PAGE,
    REST_SERVER: _REST,
    **{line: _REST for line in REST_REQUEST},
    ".venv/bin/python -m bench.bench_networks": "a benchmark of minutes; its code is tested by test_fegan_reference.py",
    ".venv/bin/python -m bench.learning_curve --budget-minutes 30":
        "a 30-minute benchmark; tests/test_learning_curve.py runs it on a tiny budget",
    "dvc exp run -S train_parser.distributed=true": _GPU,
    "torchrun --nproc_per_node 4": _GPU,
    "export FASHION_EDIT_": _CLUSTER,
    "export MLFLOW_TRACKING_URI=http://mlflow.internal": _CLUSTER,
    "pip install prefect-docker prefect-kubernetes": "downloads the deployment plug-ins; not needed to run flows",
    "prefect work-pool create": _CLUSTER,
    "prefect deploy": _CLUSTER,
    "prefect worker start": _CLUSTER,
    "prefect deployment schedule": _CLUSTER,
    "docker run": _CLUSTER,
    "prefect deployment run 'fashion-edit-retrain/retrain-weekly'": _CLUSTER,
    "prefect deployment run 'fashion-edit-ablations/ablations'": _CLUSTER,
    "mlflow ui --backend-store-uri \"$MLFLOW_TRACKING_URI\"": "needs a tracking server; `make ui` is run here",
    "dvc exp run -S data.source=<source> -S data.root=/path/to/dataset":
        "needs a dataset on disk; every reader is tested on fixture trees in its exact layout (test_sources.py)",
    ".venv/bin/dvc exp run -S inpainter.base_channels=32": _LONG,
    ".venv/bin/dvc exp run -n diverse": _LONG,
    ".venv/bin/dvc exp run -n attributes -S train_parser.steps=3000":
        "25 minutes of parser training; its stages are `make run`'s, tested on a tiny config by test_attribute_edit.py",
    STUDY: _LONG + " (test_the_study_command_names_every_variant checks its list)",
}


def documented_commands() -> list[str]:
    """The shell commands in the docs' bash blocks: continuation lines joined, comments dropped."""
    commands = []
    for doc in DOCS:
        for block in _FENCE.findall((REPO_ROOT / doc).read_text()):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                command = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
                if command and not command.startswith("#"):
                    commands.append(re.sub(r"\s+", " ", command))
    return commands


def test_every_documented_command_is_run_here_or_says_why_not():
    documented = documented_commands()
    unclassified = [c for c in documented if c not in RUN_HERE and not any(c.startswith(p) for p in NOT_RUN_HERE)]
    assert not unclassified, f"documented commands neither run by this test nor excused: {unclassified}"
    stale = [c for c in RUN_HERE if c not in documented]
    assert not stale, f"commands this test runs are no longer in the docs: {stale}"


def test_the_study_command_names_every_variant():
    from fashion_edit.config import load_params

    assert STUDY in documented_commands()
    listed = re.search(r"^STUDY_VARIANTS := (.*)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert sorted(listed.split(",")) == sorted(load_params(REPO_ROOT / "params.yaml").ablations), \
        "the Makefile's study misses a variant of params.yaml"


# ----------------------------------------------------------------------------- the slow run
def _clean_env(tmp: Path) -> dict[str, str]:
    """A shell as a new user has it: no venv on PATH, no tracking URI, Prefect's home in the temp dir,
    a terminal 200 columns wide (Prefect's tables truncate names to fit)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp)),
           "LANG": "C.UTF-8", "COLUMNS": "200", "PREFECT_HOME": str(tmp / "prefect-home"),
           "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site-cache"), **QUIET_ENV}
    return env


class Shell:
    """Runs documented commands in the clone as `bash -c`, keeping `export`s and background jobs."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.clone, self.env, self.background = clone, env, []

    def run(self, command: str, timeout: float = 900, or_error: tuple[str, ...] = ()) -> str:
        """The command's output; ``or_error``: it may instead fail with one ``fashion-edit: error:`` line holding
        one of these reasons."""
        if command.startswith("export "):
            key, _, value = command.removeprefix("export ").partition("=")
            self.env[key] = value
            return ""
        if command.endswith("&"):
            return self.start(command.removesuffix("&").strip())
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", command], cwd=self.clone, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        print(f"{time.monotonic() - started:6.1f} s  {command}")  # shown when the test fails
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        if done.returncode == 1 and error.startswith("fashion-edit: error:") and any(r in error for r in or_error):
            return error
        assert done.returncode == 0, (f"`{command}` exited {done.returncode}\n--- stdout\n{done.stdout[-4000:]}"
                                      f"\n--- stderr\n{done.stderr[-6000:]}")
        return done.stdout + done.stderr

    def start(self, command: str) -> str:
        log = open(self.clone.parent / f"bg{len(self.background)}.log", "w")
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.clone, env=dict(self.env),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((process, log))
        return ""

    def stop_all(self) -> None:
        for process, log in reversed(self.background):
            interrupt_group(process)
            log.close()

    def logs(self) -> str:
        return "\n".join(Path(log.name).read_text()[-3000:] for _, log in self.background)


def _wait_for(url: str, timeout: float, shell: Shell) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer in {timeout:.0f} s\n{shell.logs()}") from None
            time.sleep(1)


def _wait_for_flow_run(shell: Shell, triggered: str, timeout: float) -> dict:
    """Poll the Prefect API until the flow run that `prefect deployment run` printed is final."""
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", triggered)
    assert run_id, triggered
    url = f"{shell.env['PREFECT_API_URL']}/flow_runs/{run_id.group(1)}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = json.loads(_wait_for(url, 30, shell))
        if run["state"] and run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{shell.logs()}"
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id.group(1)} did not finish in {timeout:.0f} s\n{shell.logs()}")


@pytest.fixture()
def fresh_clone(tmp_path: Path) -> Path:
    """`git clone` of a tiny copy of the repository, with the project's venv linked in as `.venv`."""
    source = copy_repo(tmp_path / "source", tiny_params())
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    for key, value in (("user.name", "tests"), ("user.email", "tests@localhost")):
        subprocess.run(["git", "config", key, value], cwd=clone, check=True)
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent)
    # what `make install` leaves behind: the install stamp newer than pyproject.toml (make must not reinstall)
    old = (clone / ".venv" / ".installed").stat().st_mtime - 60 if (clone / ".venv" / ".installed").exists() else 0
    os.utime(clone / "pyproject.toml", (old, old))
    return clone


@pytest.mark.slow
def test_documented_commands_work_as_written(fresh_clone: Path, tmp_path: Path):
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed: the README's two commands need it (.ci/run installs it)")
    shell = Shell(fresh_clone, _clean_env(tmp_path))
    try:
        _pipeline_and_results(shell, fresh_clone)
        _orchestration(shell, fresh_clone)
    finally:
        shell.stop_all()


def _pipeline_and_results(shell: Shell, clone: Path) -> None:
    import cv2
    import numpy as np

    ran = shell.run(MAKE_RUN)
    assert "Running stage 'register'" in ran and "Running stage 'report'" in ran
    assert len(_pipeline_runs(clone)) == 1, "one `dvc repro` must make one MLflow parent run"
    shown = shell.run(METRICS_SHOW)
    assert "fid" in shown and max(map(len, shown.splitlines())) <= 120, shown
    assert "verdict" in shell.run(COMPARE)  # the first run is the champion: compared with itself
    shell.run(PLOTS_SHOW)
    assert (clone / "dvc_plots" / "index.html").is_file()
    assert "dvc_plots" not in subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                                             text=True).stdout, "dvc_plots/ is not git-ignored"
    assert "| inpainter default |" in shell.run(NETWORKS)

    cv2.imwrite(str(clone / "in.png"), np.full((64, 64, 3), 120, np.uint8))
    cv2.imwrite(str(clone / "hole.png"), np.pad(np.full((20, 20), 255, np.uint8), 22))
    # the edit command with each bracketed option in turn
    base = EDIT.split(" [--sketch")[0] + " --out edited.png"
    shell.run(base)
    shell.run(f"{base} --model models:/editor@champion")
    shell.run(f"{base} --checkpoint artifacts/editor")
    assert cv2.imread(str(clone / "edited.png")).shape == (64, 64, 3)
    # an attribute edit of a test figure (RGB in the store, BGR on disk), no mask
    from fashion_edit.data.store import open_split

    figure = np.asarray(open_split(clone / "data" / "prepared" / "test").images[0])
    cv2.imwrite(str(clone / "figure.png"), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    # the tiny pipeline's segmenter (5 steps) may find no figure or no sleeve in it: then the command must say
    # so in one line (the edit itself is tested on a figure it parses by test_attribute_edit.py)
    answer = shell.run(ATTRIBUTE_EDIT, or_error=("shows no figure", "cannot edit 'sleeve_length'"))
    if not answer.startswith("fashion-edit: error:"):
        assert "wrote longer.png" in answer and cv2.imread(str(clone / "longer.png")).shape == figure.shape
    # a category swap of the same figure: as above, the tiny segmenter may find no lower garment in it
    answer = shell.run(SWAP_EDIT, or_error=("nothing to turn into", "no figure with a lower garment", "already"))
    if not answer.startswith("fashion-edit: error:"):
        assert "wrote trousers.png" in answer and cv2.imread(str(clone / "trousers.png")).shape == figure.shape
    assert "4 files" in shell.run(SAMPLES_EDIT)
    assert all(cv2.imread(str(clone / f"edited{suffix}.png")).shape == (64, 64, 3) for suffix in ("", "_1", "_3"))

    shell.run(EXP_RUN)
    assert "Experiment" in shell.run(EXP_SHOW)
    # the whole study, as written: `--dry` checks that DVC expands every variant (its training takes hours)


def _pipeline_runs(clone: Path, key: str | None = None) -> list:
    """The MLflow parent runs that group stage runs (of one run-group id, if given)."""
    from mlflow import MlflowClient

    from fashion_edit.tracking.runs import TAG_PIPELINE_RUN, TAG_ROLE

    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    wanted = f"tags.`{TAG_ROLE}` = 'pipeline'" + (f" and tags.`{TAG_PIPELINE_RUN}` = '{key}'" if key else "")
    return client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string=wanted)


def _orchestration(shell: Shell, clone: Path) -> None:
    before = (clone / "params.yaml").read_text()
    out = shell.run(FLOW_RUN)
    assert '"promoted"' in out
    assert (clone / "params.yaml").read_text() == before, "the flow left its -S override in params.yaml"
    experiments = shell.run(".venv/bin/dvc exp ls --name-only").split()
    assert experiments, "the README's `dvc exp run` left no experiment"
    first, second = (["HEAD", *experiments])[-2:]
    assert "fid" in shell.run(EXP_DIFF.replace("<exp-a>", first).replace("<exp-b>", second))
    assert "psnr_hole" in shell.run(EXP_SHOW_NARROW)

    shell.run(SERVER)
    shell.run(API_URL)
    _wait_for(shell.env["PREFECT_API_URL"] + "/health", 120, shell)
    shell.start(SERVE)  # serving blocks; the docs trigger runs from another shell
    shell.start(ABLATIONS_SERVE)
    for served in ("fashion-edit-retrain/retrain-local", "fashion-edit-ablations/ablations-local",
                   "fashion-edit-ablation-variant/ablation-variant-local"):
        _wait_for(f"{shell.env['PREFECT_API_URL']}/deployments/name/{served}", 120, shell)  # 404 until served
    # a scheduled-style run that trains: the documented `--param` form of a one-off override
    _wait_for_flow_run(shell, shell.run(TRIGGER + """ --param 'overrides=["train_inpainter.steps=8"]'"""), 900)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    newest = max(client.search_model_versions("name='editor'"), key=lambda v: int(v.version))
    experiment = newest.tags["pipeline.run"]  # the served run trained, evaluated and registered a version
    assert experiment.startswith("retrain-") and len(_pipeline_runs(clone, experiment)) == 1
    assert "COMPLETED" in shell.run(FLOW_RUNS).upper()
    assert "Retraining" in shell.run(RESULT)

    # the ablation flows read the variants' worktrees at HEAD: commit the pipeline state first, as documented
    subprocess.run(["git", "add", "dvc.lock"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline state"], cwd=clone, check=True)
    _wait_for_flow_run(shell, shell.run(ABLATIONS_TRIGGER), 900)
    shell.run(ABLATIONS_RUN)
    shell.run(ABLATIONS_TWO)
    assert {"spade_norm", "no_gan"} <= set(json.loads(
        (clone / "reports" / "ablation_flow" / "metrics_by_variant.json").read_text()))

    shell.start(UI)  # a server in the foreground, like `mlflow ui`
    deadline = time.monotonic() + 120
    while not (link := re.search(r"(http://127\.0\.0\.1:5000)/#/experiments/(\d+)/runs", shell.logs())):
        assert time.monotonic() < deadline, f"`make ui` printed no link to the runs:\n{shell.logs()}"
        time.sleep(1)
    _wait_for(link.group(1) + "/health", 120, shell)
    experiment = json.loads(_wait_for(f"{link.group(1)}/ajax-api/2.0/mlflow/experiments/get?experiment_id="
                                      f"{link.group(2)}", 30, shell))
    assert experiment["experiment"]["name"] == "fashion-edit"
