"""DDP: two CPU processes (gloo) under torchrun stay in sync; launch-mode rules."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from fashion_edit.training.distributed import DistributedSetupError, setup_distributed, torchrun_command
from tests.conftest import REPO_ROOT, repo_env, run_in, tiny_params, write_params

WORKER = textwrap.dedent('''
    """One rank: train a tiny network with DDP, then dump this rank's parameters and losses."""
    import json, sys
    from pathlib import Path
    import torch
    sys.path.insert(0, sys.argv[1])
    from fashion_edit.config import load_params
    from fashion_edit.training.distributed import setup_distributed, teardown_distributed
    from fashion_edit.training.inpainter_trainer import INPAINTER_SPEC
    from fashion_edit.training.parser_trainer import PARSER_SPEC
    from fashion_edit.layout import TrainPaths
    from fashion_edit.training.runner import train

    params_path, prepared, out = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    spec = {"parser": PARSER_SPEC, "inpainter": INPAINTER_SPEC}[sys.argv[5]]
    params = load_params(params_path)
    ctx = setup_distributed(spec.train(params).distributed, spec.stage)
    paths = TrainPaths(prepared=prepared, checkpoints=out / "checkpoints", artifacts=out / "artifacts",
                       reports=out / "reports", repo_root=out)
    outcome = train(params, spec, paths, ctx)
    # parameters only: BatchNorm running statistics are per rank by design (DDP broadcasts rank 0's)
    parameters = {name: p.detach() for name, p in outcome.generator.named_parameters()}
    parameters.update({f"D.{name}": p.detach() for name, p in outcome.discriminator.named_parameters()})
    torch.save(parameters, out / f"rank{ctx.rank}.pt")
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(outcome.history.rows))
    teardown_distributed()
''')


@pytest.mark.slow
@pytest.mark.parametrize("name", ["parser", "inpainter"])
def test_two_gloo_processes_keep_identical_parameters(name, tmp_path, prepared_data, mlflow_uri):
    section = {"steps": 3, "batch_size": 2, "distributed": True, "checkpoint_every": 3}
    params = tiny_params({"mlflow": {"experiment": "ddp"}, f"train_{name}": section})
    params_path = write_params(tmp_path / "params.yaml", params)
    (tmp_path / "worker.py").write_text(WORKER)
    env = repo_env({"MLFLOW_TRACKING_URI": mlflow_uri, "OMP_NUM_THREADS": "1"})
    run_in(tmp_path, sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(tmp_path / "worker.py"), str(REPO_ROOT), str(params_path), str(prepared_data), str(tmp_path), name,
           env=env, timeout=300)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    losses0, losses1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(losses0) == len(losses1) == 3
    assert losses0 != losses1  # each rank saw its own shard of the data
    info = json.loads((tmp_path / "artifacts" / "info.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == 3


def test_torchrun_launch_command_reruns_the_stage_module():
    command = torchrun_command("stages.train_parser", ["--params", "p.yaml"], 4)
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                           "-m", "stages.train_parser", "--params", "p.yaml"]


def test_single_process_without_torchrun(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup_distributed(True, "train_parser")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled) == (0, 1, True, False)


def test_torchrun_with_several_processes_needs_distributed_param(monkeypatch):
    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("LOCAL_RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedSetupError, match="train_parser.distributed: true"):
        setup_distributed(False, "train_parser")


def test_stage_reports_bad_params_without_traceback(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train_parser:\n  stepz: 3\n")
    result = run_in(REPO_ROOT, sys.executable, "-m", "stages.train_parser", "--params", str(bad), check=False)
    assert result.returncode == 1
    assert "train_parser.stepz" in result.stderr and "Traceback" not in result.stderr
