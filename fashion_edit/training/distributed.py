"""Process-group setup for data-parallel training under ``torchrun`` (DDP).

One training stage runs unchanged on a laptop (one process) and on a GPU node
(``torchrun --nproc_per_node N``): NCCL when CUDA is available, gloo on CPU. torchrun tells
each process who it is through the environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR...).
Only rank 0 logs, writes checkpoints and writes outputs.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fashion_edit.errors import FashionEditError


class DistributedSetupError(FashionEditError, RuntimeError):
    """The process was launched in a way the ``distributed`` param does not allow."""


@dataclass(frozen=True)
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group is initialised (even with one process)."""
        return dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise DistributedSetupError(f"environment variable {name} must be an integer set by torchrun") from None


def setup_distributed(distributed: bool, section: str) -> DistContext:
    """Initialise the process group if ``distributed`` and launched by torchrun; else a single process.

    ``section`` names the params section (for the error message).
    """
    cuda = torch.cuda.is_available()
    if not launched_by_torchrun():
        return DistContext(0, 0, 1, torch.device("cuda" if cuda else "cpu"))
    world_size, rank, local_rank = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    if not distributed:
        if world_size > 1:
            # every process would train the same model alone and race on the same outputs
            raise DistributedSetupError(
                f"launched by torchrun with WORLD_SIZE={world_size} but params {section}.distributed is false; "
                f"set {section}.distributed: true (or run without torchrun)")
        return DistContext(0, 0, 1, torch.device("cuda" if cuda else "cpu"))
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistContext(rank, local_rank, world_size, device)


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def default_nproc() -> int:
    """Processes per node when the stage launches torchrun itself: one per GPU, else one."""
    return max(torch.cuda.device_count(), 1)


def torchrun_command(module: str, args: list[str], nproc_per_node: int) -> list[str]:
    """The command that re-runs ``python -m module args`` under torchrun on this node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc_per_node}", "-m", module, *args]


def all_reduce_min(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise minimum over ranks (identity without a process group)."""
    if ctx.enabled and ctx.world_size > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.MIN)
    return values


def parameter_checksums(module: torch.nn.Module) -> torch.Tensor:
    """One float64 sum per parameter: cheap fingerprint to compare replicas across ranks."""
    return torch.stack([p.detach().double().sum().cpu() for p in module.parameters()])


def ranks_in_sync(module: torch.nn.Module, ctx: DistContext) -> bool:
    """True when every rank holds the same parameters (by checksum) as rank 0."""
    if not (ctx.enabled and ctx.world_size > 1):
        return True
    local = parameter_checksums(module).to(ctx.device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
