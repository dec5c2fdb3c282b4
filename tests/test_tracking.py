"""MLflow tracking helpers: URI resolution, reachability probe, params flattening/hash, run grouping."""
from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fashion_edit.config import MlflowParams
from fashion_edit.tracking.runs import (ENV_PIPELINE_RUN, TAG_PARAMS_HASH, TAG_PIPELINE_RUN, TAG_STAGE, NullRun,
                                        TrackingError, artifact_location, flatten_params, params_hash, pipeline_run_key,
                                        probe_tracking_server, resolve_tracking_uri, start_stage_run)
from tests.conftest import tiny_params, tracking_server_stub, unmount


def test_default_uri_is_sqlite_in_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(MlflowParams(), tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_env_overrides_default_and_params_override_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert resolve_tracking_uri(MlflowParams(), tmp_path) == "http://from-env:5000"
    assert resolve_tracking_uri(MlflowParams(tracking_uri="http://from-params:1"), tmp_path) == "http://from-params:1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_fast_with_clear_message():
    uri = f"http://127.0.0.1:{_free_port()}"
    started = time.perf_counter()
    with pytest.raises(TrackingError, match="unreachable") as error:
        probe_tracking_server(uri, timeout=2.0)
    assert uri in str(error.value) and "mlflow.tracking_uri" in str(error.value)
    assert time.perf_counter() - started < 5


@pytest.fixture
def client_retry_env(monkeypatch):
    """The MLflow client's retry settings unset for the test, and restored after it (the probe sets them)."""
    from fashion_edit.tracking.runs import CLIENT_RETRY_ENV

    for name in CLIENT_RETRY_ENV:
        monkeypatch.setenv(name, "")  # records the original value, restored after the test
        monkeypatch.delenv(name)
    return CLIENT_RETRY_ENV


def test_answering_server_passes_probe(client_retry_env):
    with tracking_server_stub() as uri:  # the API answers 404, as behind a proxy that maps paths: reachable
        probe_tracking_server(uri, timeout=2.0)


def test_server_whose_api_fails_is_reported_within_seconds(client_retry_env):
    with tracking_server_stub(api_status=503) as uri:
        started = time.perf_counter()
        with pytest.raises(TrackingError, match="HTTP 503") as error:
            probe_tracking_server(uri, timeout=2.0)
    assert time.perf_counter() - started < 5
    assert uri in str(error.value) and "/api/2.0/mlflow/" in str(error.value)
    assert "mlflow.tracking_uri" in str(error.value)  # says what to do


def test_server_whose_api_wants_credentials_counts_as_reachable(client_retry_env):
    with tracking_server_stub(api_status=401) as uri:  # the probe sends none; the client sends the user's
        probe_tracking_server(uri, timeout=2.0)


def test_stage_runs_keep_the_clients_retries_short_unless_set(client_retry_env, monkeypatch):
    from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                              MLFLOW_HTTP_REQUEST_TIMEOUT)

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "90")  # the user's own value wins
    with tracking_server_stub() as uri:
        start_stage_run(tiny_params({"mlflow": {"tracking_uri": uri}}), "train_parser", ("train_parser",),
                        Path("."), is_main=False)  # rank > 0: probes and sets the limits, opens no run
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() <= 3 and MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() <= 1
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 90


def test_training_refuses_to_start_when_server_unreachable(tmp_path):
    params = tiny_params({"mlflow": {"tracking_uri": f"http://127.0.0.1:{_free_port()}"}})
    with pytest.raises(TrackingError, match="unreachable"):
        start_stage_run(params, "train_parser", ("train_parser",), tmp_path)


def test_flatten_params_uses_dotted_keys():
    flat = flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}})
    assert flat == {"a.b": "1", "a.c.d": "x", "e": "[1, 2]", "f": "{}"}
    params = tiny_params()
    assert flatten_params(params)["train_parser.lr_g"] == str(params.train_parser.lr_g)


def test_params_hash_depends_only_on_named_sections():
    base = tiny_params()
    other_section = tiny_params({"inpainter": {"base_channels": 16}})
    same_section = tiny_params({"train_parser": {"lr_g": 0.5}})
    assert params_hash(base, ["train_parser"]) == params_hash(other_section, ["train_parser"])
    assert params_hash(base, ["train_parser"]) != params_hash(same_section, ["train_parser"])


def test_stage_runs_share_a_parent_and_carry_tags(tmp_path, mlflow_uri):
    params = tiny_params({"mlflow": {"experiment": "grouping"}})
    first = start_stage_run(params, "train_parser", ("train_parser",), tmp_path)
    second = start_stage_run(params, "train_inpainter", ("train_inpainter",), tmp_path)
    first.end(), second.end()
    client = MlflowClient(mlflow_uri)
    runs = {r.info.run_id: r for r in client.search_runs([first.experiment_id])}
    child = runs[first.run_id]
    parent_id = child.data.tags["mlflow.parentRunId"]
    assert runs[second.run_id].data.tags["mlflow.parentRunId"] == parent_id
    assert runs[parent_id].data.tags["fashion_edit.role"] == "pipeline"
    assert len(runs) == 3  # one parent, two stages
    assert child.data.tags[TAG_STAGE] == "train_parser"
    assert child.data.tags[TAG_PARAMS_HASH] == params_hash(params, ["train_parser"])
    assert "git_commit" in child.data.tags
    assert child.data.params["train_parser.batch_size"] == str(params.train_parser.batch_size)
    experiment = client.get_experiment(first.experiment_id)
    assert experiment.artifact_location == artifact_location(tmp_path)


def test_pipeline_run_env_var_starts_a_new_group(tmp_path, mlflow_uri, monkeypatch):
    params = tiny_params({"mlflow": {"experiment": "grouping-env"}})
    default_run = start_stage_run(params, "train_parser", ("train_parser",), tmp_path)
    monkeypatch.setenv(ENV_PIPELINE_RUN, "flow-run-42")
    grouped = start_stage_run(params, "train_parser", ("train_parser",), tmp_path)
    default_run.end(), grouped.end()
    client = MlflowClient(mlflow_uri)
    tags = client.get_run(grouped.run_id).data.tags
    assert tags[TAG_PIPELINE_RUN] == "flow-run-42"
    assert tags["mlflow.parentRunId"] != client.get_run(default_run.run_id).data.tags["mlflow.parentRunId"]


# A stand-in for `dvc repro`: a process named `dvc` that starts one child per "stage", each with
# other params (like the ablation variants); every child prints its run-group id.
_FAKE_DVC = '''import subprocess, sys
STAGE = """
import sys
from fashion_edit.tracking.runs import pipeline_run_key
from tests.conftest import tiny_params
print(pipeline_run_key(tiny_params({"train_inpainter": {"steps": int(sys.argv[1])}}), "0123456789abcdef"))
"""
for steps in ("3", "4"):
    subprocess.run([sys.executable, "-c", STAGE, steps], check=True)
'''


def test_stages_of_one_dvc_invocation_share_one_group_whatever_their_params(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    monkeypatch.delenv(ENV_PIPELINE_RUN, raising=False)
    fake_dvc = tmp_path / "bin" / "dvc"
    fake_dvc.parent.mkdir()
    fake_dvc.write_text(_FAKE_DVC)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    invocations = [subprocess.run([sys.executable, str(fake_dvc)], capture_output=True, text=True, check=True,
                                  env=env).stdout.split() for _ in range(2)]
    assert [len(set(keys)) for keys in invocations] == [1, 1], invocations  # one group per invocation
    assert invocations[0][0] != invocations[1][0] and invocations[0][0].startswith("dvc-")
    # outside dvc (a stage started by hand) the group is the commit and params, as before
    assert pipeline_run_key(tiny_params(), "0123456789abcdef").startswith("0123456789ab-")


def test_parent_run_is_named_by_its_start_and_commit(tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.delenv(ENV_PIPELINE_RUN, raising=False)
    run = start_stage_run(tiny_params({"mlflow": {"experiment": "naming"}}), "train_parser", ("train_parser",),
                          tmp_path)
    run.end()
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(client.get_run(run.run_id).data.tags["mlflow.parentRunId"])
    assert re.fullmatch(r"pipeline \d{4}-\d\d-\d\d \d\d:\d\d:\d\d @\S{1,8}", parent.info.run_name), parent.info.run_name


def test_metrics_and_images_are_logged(tmp_path, mlflow_uri):
    run = start_stage_run(tiny_params({"mlflow": {"experiment": "logging"}}), "train_parser", ("train_parser",),
                          tmp_path)
    for step in (1, 2, 3):
        run.log_metrics({"loss_g/ce": 1.0 / step}, step=step)
    run.log_image(np.zeros((8, 8, 3), np.uint8), artifact_file="samples/step_000003.png")
    run.end()
    client = MlflowClient(mlflow_uri)
    history = client.get_metric_history(run.run_id, "loss_g/ce")
    assert [m.step for m in history] == [1, 2, 3]
    assert [a.path for a in client.list_artifacts(run.run_id, "samples")] == ["samples/step_000003.png"]
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_other_ranks_get_a_null_run(tmp_path, mlflow_uri):
    run = start_stage_run(tiny_params(), "train_parser", ("train_parser",), tmp_path, is_main=False)
    assert type(run) is NullRun and run.run_id is None


def test_deleted_experiment_is_reported(tmp_path, mlflow_uri):
    client = MlflowClient(mlflow_uri)
    client.delete_experiment(client.create_experiment("gone", artifact_location=(tmp_path / "a").as_uri()))
    with pytest.raises(TrackingError, match="deleted"):
        start_stage_run(tiny_params({"mlflow": {"experiment": "gone"}}), "train_parser", ("train_parser",),
                        tmp_path)


def test_git_commit_tag_is_unknown_outside_git(tmp_path: Path):
    from fashion_edit.tracking.runs import git_commit

    assert git_commit(tmp_path) == "unknown"


def test_unsafe_pipeline_run_id_is_rejected(tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv(ENV_PIPELINE_RUN, "it's")
    with pytest.raises(TrackingError, match=ENV_PIPELINE_RUN):
        start_stage_run(tiny_params(), "train_parser", ("train_parser",), tmp_path)


# ------------------------------------------------------------------- runs left RUNNING
_STAGE_LIKE = """
import sys, time
from pathlib import Path
from fashion_edit.tracking.runs import start_stage_run
from tests.conftest import tiny_params
run = start_stage_run(tiny_params({"mlflow": {"experiment": "orphans"}}), "train_parser", ("train_parser",),
                      Path(sys.argv[1]))
try:  # what every stage does around its work
    print(run.run_id, flush=True)
    time.sleep(120)
except KeyboardInterrupt:
    run.end("KILLED")
    raise
"""


def _stage_process(tmp_path: Path, mlflow_uri: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-c", _STAGE_LIKE, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    run_id = process.stdout.readline().strip()
    assert run_id, process.communicate()[1][-3000:]  # the stage-like process failed to start its run
    return process, run_id


def test_sigterm_ends_the_stage_run_killed(tmp_path, mlflow_uri):
    import signal

    process, run_id = _stage_process(tmp_path, mlflow_uri)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=30)[1]
    assert process.returncode != 0
    assert MlflowClient(mlflow_uri).get_run(run_id).info.status == "KILLED", stderr[-3000:]


def test_a_run_whose_process_died_is_closed_when_its_stage_starts_again(tmp_path, mlflow_uri):
    process, orphan = _stage_process(tmp_path, mlflow_uri)
    process.kill()  # SIGKILL: no handler runs, the run stays RUNNING
    process.wait(30)
    client = MlflowClient(mlflow_uri)
    assert client.get_run(orphan).info.status == "RUNNING"
    params = tiny_params({"mlflow": {"experiment": "orphans"}})
    alive = start_stage_run(params, "train_parser", ("train_parser",), tmp_path)  # this process: alive
    again = start_stage_run(params, "train_parser", ("train_parser",), tmp_path)
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(alive.run_id).info.status == "RUNNING", "a live process's run was closed"
    alive.end(), again.end()


def test_a_moved_checkout_with_its_store_is_told_where_its_artifacts_would_go(tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_params({"mlflow": {"experiment": "moved", "tracking_uri": ""}})
    original, moved = tmp_path / "original", tmp_path / "moved"
    original.mkdir()
    start_stage_run(params, "train_parser", ("train_parser",), original).end()
    shutil.copytree(original, moved)  # `cp -r` of a checkout, mlflow.db included
    with pytest.raises(TrackingError, match=r"keeps its artifacts at .*original.*mlflow.experiment"):
        start_stage_run(params, "train_parser", ("train_parser",), moved)
    start_stage_run(params, "train_parser", ("train_parser",), original).end()  # the original goes on


@pytest.fixture
def read_only_store(tmp_path, monkeypatch) -> Iterator[Path]:
    """A checkout whose mlflow.db (with one finished run) can no longer be written: a read-only bind mount
    of it where this process may mount, else file and folder without write permission (non-root)."""
    import os
    import stat

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original = tmp_path / "original"
    original.mkdir()
    start_stage_run(tiny_params({"mlflow": {"experiment": "ro", "tracking_uri": ""}}), "train_parser",
                    ("train_parser",), original).end()
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(original), str(checkout)],
                             capture_output=True).returncode == 0
    if mounted:
        yield checkout
        unmount(checkout)
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits and cannot mount here: no read-only store to test")
    (original / "mlflow.db").chmod(stat.S_IRUSR)
    original.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield original
    original.chmod(stat.S_IRWXU)


def test_a_read_only_store_is_named_before_any_run_starts(read_only_store):
    params = tiny_params({"mlflow": {"experiment": "ro", "tracking_uri": ""}})
    with pytest.raises(TrackingError, match=r"the MLflow store is read-only: sqlite:///.*mlflow.db \(.* is not "
                                            r"writable\)\. Make the file and its folder writable"):
        start_stage_run(params, "train_parser", ("train_parser",), read_only_store)


def test_a_write_refused_by_sqlite_is_one_line_without_the_library_traceback(read_only_store, monkeypatch, capfd):
    """Where the permission check cannot see it (e.g. a network filesystem), SQLite's refusal says the same."""
    import fashion_edit.tracking.runs as tracking

    monkeypatch.setattr(tracking, "check_store_writable", lambda uri: None)
    params = tiny_params({"mlflow": {"experiment": "ro-new", "tracking_uri": ""}})  # its creation is a write
    with pytest.raises(TrackingError, match=r"the MLflow store is read-only: .*SQLite refused a write"):
        start_stage_run(params, "train_parser", ("train_parser",), read_only_store)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "sqlalche" not in out + err


def test_a_misspelt_tracking_uri_scheme_is_named_before_mlflow_sees_it(tmp_path):
    params = tiny_params({"mlflow": {"tracking_uri": f"sqllite:///{tmp_path / 'mlflow.db'}"}})
    with pytest.raises(TrackingError, match=r"unknown scheme 'sqllite'; use one of sqlite, http"):
        start_stage_run(params, "train_parser", ("train_parser",), tmp_path)
