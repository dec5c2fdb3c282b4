"""Prefect flows end to end on a tiny fake DVC project, against a real SQLite MLflow registry."""
from __future__ import annotations

import json
import sys

import pytest

from tests.flows_fixtures import REPO_ROOT, make_fake_project, prefect_harness  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def _dvc_site_cache(tmp_path_factory, monkeypatch):
    """DVC keeps a folder per repository under /var/tmp/dvc: keep those of the test repos in the temp dir."""
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dvc-site-cache"))


@pytest.fixture()
def fake_project(tmp_path, monkeypatch, prefect_harness):  # noqa: F811
    project = make_fake_project(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the fake stage imports fashion_edit
    monkeypatch.chdir(project)
    return project


def test_retrain_promotes_first_then_gates_worse_and_better(fake_project):
    from flows.retrain import retrain

    first = retrain(repo=str(fake_project), experiment="first")
    assert first.promoted and first.new_version
    assert "no champion" in first.reason
    assert {key: first.metrics[key] for key in ("fid", "parser_miou")} == {"fid": 10.0, "parser_miou": 0.5}
    assert first.champion_versions == {"parser": "1", "inpainter": "1", "editor": "1"}

    worse = retrain(repo=str(fake_project), experiment="worse", overrides=["train_inpainter.steps=50"])
    assert not worse.promoted
    assert "fid worse" in worse.reason
    assert worse.candidate_versions["editor"] == "2" and worse.champion_versions["editor"] == "1"

    better = retrain(repo=str(fake_project), experiment="better", overrides=["train_inpainter.steps=200"])
    assert better.promoted, better.reason
    assert better.champion_versions == {"parser": "3", "inpainter": "3", "editor": "3"}

    # the one-off override stays with its experiment, not in the workspace's params.yaml
    assert "\"steps\": 100" in (fake_project / "params.yaml").read_text()
    # `dvc exp run` applied the better run's outputs to the workspace: the same override has nothing to redo
    again = retrain(repo=str(fake_project), experiment="again", overrides=["train_inpainter.steps=200"])
    assert not again.promoted and not again.new_version
    assert "outputs were up to date" in again.reason and again.candidate_versions["editor"] == "3"


def test_a_dry_run_reports_the_register_stages_decision_and_moves_no_alias(fake_project):
    from flows.retrain import retrain

    result = retrain(repo=str(fake_project), experiment="dry", promote=False)
    assert not result.promoted and result.new_version
    assert result.reason.startswith("dry run (registry.promote=false): no champion yet")
    assert result.candidate_versions["editor"] == "1" and result.champion_versions["editor"] is None
    assert "promote\": true" in (fake_project / "params.yaml").read_text()  # the switch stayed with the run


def test_failing_stage_fails_the_flow_run_with_the_stage_error_in_its_logs(fake_project):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.retrain import retrain

    params_before = (fake_project / "params.yaml").read_text()
    state = retrain(repo=str(fake_project), experiment="broken", data_source="folder", return_state=True)
    assert state.is_failed()
    assert "dvc exp run" in state.message and "FAKE-STAGE-ERROR" in state.message
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    assert any("FAKE-STAGE-ERROR" in log.message for log in logs)
    assert (fake_project / "params.yaml").read_text() == params_before, "failed run leaked its -S override"


def test_ablation_variants_run_at_once_in_own_worktrees_and_are_gathered(fake_project, tmp_path, monkeypatch):
    from flows.ablations import ablations

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("FAKE_ABLATION_BARRIER", str(barrier))
    result = ablations(repo=str(fake_project), max_parallel=2)
    full, short = result["metrics"]["full"][0], result["metrics"]["short"][0]
    assert (full["fid"], short["fid"]) == (10.0, 20.0)
    assert full["cwd"] != short["cwd"] and str(fake_project) not in (full["cwd"], short["cwd"])
    assert full["ran_together"] and short["ran_together"], "variants did not run at the same time"
    report = fake_project / "reports/ablation_flow"
    gathered = json.loads((report / "metrics_by_variant.json").read_text())
    assert set(gathered) == {"full", "short"}
    assert "| short |" in (report / "ablations.md").read_text() and (report / "ablations.png").is_file()


def test_a_variant_outside_the_pipelines_list_runs_too(fake_project):
    import subprocess

    from flows.ablations import ablations

    params = json.loads((fake_project / "params.yaml").read_text())
    params["ablation"]["variants"] = ["full"]  # dvc.yaml makes no `ablations@short` stage from this list
    (fake_project / "params.yaml").write_text(json.dumps(params))
    subprocess.run(["git", "commit", "-qam", "only full in the pipeline"], cwd=fake_project, check=True)
    result = ablations(repo=str(fake_project), variants=["short"])
    assert list(result["metrics"]) == ["short"] and result["metrics"]["short"][0]["fid"] == 20.0


# ------------------------------------------------------------------ bad input, before any run
def test_malformed_override_fails_naming_it():
    from flows.retrain import collect_overrides

    with pytest.raises(ValueError, match="'train_inpainter.steps'"):
        collect_overrides(["train_inpainter.steps"], None, None)


def test_override_of_unknown_param_fails_before_the_run():
    from fashion_edit.config import ParamsError, Params
    from flows.retrain import params_with_overrides

    with pytest.raises(ParamsError, match="stepz"):
        params_with_overrides(Params(), ["train_inpainter.stepz=5"])
    assert params_with_overrides(Params(), ["train_inpainter.steps=5"]).train_inpainter.steps == 5


@pytest.mark.parametrize("arguments, message", [
    (["-S", "train_inpainter.steps"], "'train_inpainter.steps': expected KEY=VALUE"),
    (["-S", "train_inpainter.stepz=5"], "stepz"),
    (["--repo", "{tmp}"], "not a DVC repository"),
], ids=["malformed", "unknown-key", "not-a-checkout"])
def test_a_bad_run_request_is_one_line_before_any_flow_run(tmp_path, arguments, message):
    import subprocess

    command = [sys.executable, "-m", "flows.retrain", "run", *[a.format(tmp=tmp_path) for a in arguments]]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stderr.startswith("python -m flows.retrain: error: ")


def test_repro_mode_rejects_overrides(fake_project):
    from flows.retrain import retrain

    state = retrain(repo=str(fake_project), mode="repro", overrides=["train_inpainter.steps=5"], return_state=True)
    assert state.is_failed() and "need mode='exp'" in state.message


def test_dvc_timeout_stops_the_whole_process_group(tmp_path):
    import time

    from flows import dvc_runner

    project = make_fake_project(tmp_path / "project")
    marker = tmp_path / "still-running"
    (project / "dvc.yaml").write_text(
        f"stages:\n  slow:\n    cmd: {sys.executable} -c \"import time; time.sleep(30); open('{marker}', 'w')\"\n")
    started = time.monotonic()
    with pytest.raises(dvc_runner.DvcTimeout, match="exceeded its timeout of 3 s"):
        dvc_runner.repro(project, timeout=3)
    assert time.monotonic() - started < 25
    time.sleep(1)
    assert not marker.exists()


# ------------------------------------------------------------------------ deployments
def _deploy_configs() -> dict[str, dict]:
    import io

    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    configs, actions = _load_deploy_configs_and_actions(REPO_ROOT / "prefect.yaml", console=Console(file=io.StringIO()))
    assert actions["build"] and actions["pull"], "prefect.yaml lost its build/pull steps"
    return {c["name"]: c for c in configs}


def test_prefect_yaml_deployments_load_with_the_weekly_cron():
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.flows import load_flow_from_entrypoint

    from flows.retrain import DEFAULT_CRON

    configs = _deploy_configs()
    assert {"retrain-weekly", "retrain-weekly-docker", "ablation-variant", "ablations"} <= set(configs)
    for name, config in configs.items():
        flow = load_flow_from_entrypoint(str(REPO_ROOT / config["entrypoint"]))
        flow.validate_parameters(config.get("parameters", {}) | ({"variant": "full"} if name == "ablation-variant" else {}))
    weekly = [_schedule_config_to_deployment_schedule(s) for s in configs["retrain-weekly"]["schedules"]]
    assert [s["schedule"].cron for s in weekly] == [DEFAULT_CRON] and weekly[0].get("active", True)
    docker = _schedule_config_to_deployment_schedule(configs["retrain-weekly-docker"]["schedules"][0])
    assert docker["schedule"].cron == DEFAULT_CRON and docker["active"] is False
    requests = configs["retrain-weekly-docker"]["work_pool"]["job_variables"]["container_create_kwargs"]["device_requests"]
    import docker.types

    assert docker.types.DeviceRequest(**requests[0])["Capabilities"] == [["gpu"]]


def test_kubernetes_gpu_deployment_registers_and_renders_a_gpu_job(prefect_harness, monkeypatch):  # noqa: F811
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.utilities.templating import apply_values

    from flows.retrain import DEFAULT_CRON, retrain

    template = json.loads((REPO_ROOT / "flows/work_pools/kubernetes-gpu.json").read_text())
    config = _deploy_configs()["retrain-weekly"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    job_variables = apply_values(config["work_pool"]["job_variables"], {"build_image": {"image": "reg/fe:1"}})
    with get_client(sync_client=True) as client:  # the server validates the template's variables
        client.create_work_pool(WorkPoolCreate(name=config["work_pool"]["name"], type="kubernetes",
                                               base_job_template=template), overwrite=True)
    deployment = retrain.to_deployment(name=config["name"], cron=config["schedules"][0]["cron"],
                                       parameters=config["parameters"], work_pool_name=config["work_pool"]["name"],
                                       job_variables=job_variables, concurrency_limit=config["concurrency_limit"])
    deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment_by_name(f"fashion-edit-retrain/{config['name']}")
    assert [s.schedule.cron for s in stored.schedules] == [DEFAULT_CRON]
    assert stored.parameters["push"] is True and stored.job_variables["gpu_count"] == 1
    defaults = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    job = apply_values(template["job_configuration"], {**defaults, **stored.job_variables, "command": "x"})
    container = job["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and container["image"] == "reg/fe:1"
    assert job["env"]["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"


def test_serve_command_serves_the_flow_on_the_same_cron(prefect_harness, monkeypatch):  # noqa: F811
    from prefect import get_client

    from flows import retrain as module

    served = {}
    monkeypatch.setattr(module.retrain, "serve", lambda **kwargs: served.update(kwargs))
    assert module.main(["serve", "--param", "push=true"]) == 0
    assert served["cron"] == module.DEFAULT_CRON and served["parameters"] == {"push": True}
    # what serve() registers before it starts polling: the deployment with that schedule
    served.pop("description")
    module.retrain.to_deployment(**served).apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment_by_name(f"{module.FLOW_NAME}/{module.LOCAL_DEPLOYMENT}")
    assert [s.schedule.cron for s in stored.schedules] == [module.DEFAULT_CRON]


@pytest.mark.parametrize("path", ["Makefile", ".ci/run", "Dockerfile"])
def test_every_entry_point_turns_the_same_telemetry_off(path):
    from flows.dvc_runner import QUIET_ENV

    text = (REPO_ROOT / path).read_text()
    missing = [f"{key}={value}" for key, value in QUIET_ENV.items() if f"{key}={value}" not in text]
    assert not missing, f"{path} does not set {missing} (flows/dvc_runner.py QUIET_ENV)"
