"""Fixtures for the Prefect flow tests: one Prefect test server per session, tiny DVC projects.

Import the fixtures into a test module (``from tests.flows_fixtures import prefect_harness``);
``tests/conftest.py`` belongs to the training tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fashion_edit.config import load_params
from flows.dvc_runner import QUIET_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A temporary Prefect server + database for the whole session, PREFECT_HOME in a temp folder."""
    home = tmp_path_factory.mktemp("prefect-home")
    saved = {k: os.environ.get(k) for k in [*QUIET_ENV, "PREFECT_HOME"]}
    os.environ.update(QUIET_ENV)
    os.environ["PREFECT_HOME"] = str(home)
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    try:
        with temporary_settings({PREFECT_HOME: home}):
            with prefect_test_harness(server_startup_timeout=60):
                yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)


def _dvc(repo: Path, *args: str) -> None:
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), *args], cwd=repo, check=True, capture_output=True, text=True,
                   env={**os.environ, **QUIET_ENV})


# The fake pipeline's one stage: "trains" (metrics are a function of the params, so a params
# override makes a better or worse model), writes the evaluate metrics and registers the three
# models and gates them with the real register stage's functions (fashion_edit.tracking.register).
FAKE_STAGE = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from mlflow import MlflowClient
    from fashion_edit.tracking import registry
    from fashion_edit.config import load_params
    from fashion_edit.evaluation.headline import MODEL_HEADLINE, write_headline
    from fashion_edit.layout import REGISTER_REPORT
    from fashion_edit.tracking.register import register_and_gate, write_register_report
    from fashion_edit.tracking.runs import resolve_tracking_uri

    params = load_params("params.yaml")
    if params.data.source != "synthetic":
        sys.exit(f"FAKE-STAGE-ERROR: data source {params.data.source!r} has no data.root")
    metrics = {"fid": 1000.0 / params.train_inpainter.steps, "parser_miou": min(1.0, params.train_parser.steps / 1000),
               "kid": 0.01, "st_lpips": 0.1, "psnr_hole": 20.0}
    metrics |= {f"{key}_se": 0.01 for key in list(metrics)}  # the gate compares gaps with these
    write_headline(MODEL_HEADLINE, metrics)
    root = Path.cwd()
    client = MlflowClient(resolve_tracking_uri(params.mlflow, root))
    experiment = client.get_experiment_by_name("fake") or client.get_experiment(
        client.create_experiment("fake", artifact_location=(root.parent / "artifacts").as_uri()))
    Path("model").mkdir(exist_ok=True)
    Path("model/MLmodel").write_text("flavors: {}\\n")
    run = client.create_run(experiment.experiment_id, run_name="register",
                            tags={"fashion_edit.pipeline_run": os.environ.get("FASHION_EDIT_PIPELINE_RUN", "")})
    for name in registry.MODEL_NAMES:
        client.log_artifacts(run.info.run_id, "model", name)
    uris = {name: f"runs:/{run.info.run_id}/{name}" for name in registry.MODEL_NAMES}
    # the real register stage's registration and gate, and its decision file
    report = register_and_gate(client, uris, metrics, params, root, os.environ.get("FASHION_EDIT_PIPELINE_RUN", ""))
    write_register_report(root / REGISTER_REPORT, report)
    print("fake pipeline done", metrics)
''')

# One ablation variant: metrics from the variant's params, where it ran, and whether all
# variants were running at the same time (a file barrier, so the test does not rely on timing).
FAKE_ABLATION = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    from fashion_edit.config import load_params

    variant = sys.argv[1]
    params = load_params("params.yaml")
    together = None
    if os.environ.get("FAKE_ABLATION_BARRIER"):  # wait until every defined variant has started (max 90 s)
        barrier = Path(os.environ["FAKE_ABLATION_BARRIER"])
        (barrier / variant).touch()
        deadline = time.time() + 90
        while not (together := set(params.ablations) <= {p.name for p in barrier.iterdir()}):
            if time.time() > deadline:
                break
            time.sleep(0.2)
    metrics = {"fid": 1000.0 / params.variant(variant).train_inpainter.steps, "parser_miou": 0.5,
               "ran_together": together, "cwd": str(Path.cwd())}
    out = Path(f"reports/ablations/{variant}/seed0.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics))
''')

FAKE_DVC_YAML = textwrap.dedent('''
    stages:
      pipeline:
        cmd: {python} pipeline.py
        deps: [pipeline.py]
        params: [data, train_parser.steps, train_inpainter.steps, registry]
        outs:
          - model
          - reports/register.json:
              cache: false
        metrics:
          - reports/metrics/evaluate/model.json:
              cache: false
      ablations:
        foreach: ${{ablation.variants}}
        do:
          cmd: {python} ablate.py ${{item}}
          deps: [ablate.py]
          params: [train_inpainter.steps]
          metrics:
            - reports/ablations/${{item}}/seed0.json:
                cache: false
''')


def make_fake_project(root: Path) -> Path:
    """A git + DVC repo with one stage that writes metrics and registers the three models."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "tests@localhost")
    _git(root, "config", "user.name", "tests")
    _dvc(root, "init", "-q")
    _dvc(root, "config", "core.analytics", "false")
    (root / "pipeline.py").write_text(FAKE_STAGE)
    (root / "ablate.py").write_text(FAKE_ABLATION)
    (root / "dvc.yaml").write_text(FAKE_DVC_YAML.format(python=sys.executable))
    params = load_params(REPO_ROOT / "params.yaml").model_dump(mode="json")  # a params file spells out every key
    for section, values in {"data": {"source": "synthetic"}, "train_parser": {"steps": 500},
                            "train_inpainter": {"steps": 100}, "registry": {"noise_z": 2.0},
                            "ablation": {"variants": ["full", "short"]}}.items():
        params[section].update(values)
    params["ablations"] = {"full": {}, "short": {"train_inpainter": {"steps": 50}}}
    (root / "params.yaml").write_text(json.dumps(params, indent=1))
    (root / ".gitignore").write_text("/model\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "fake pipeline")
    return root
