"""Training checkpoints: atomic writes, exact resume, loadable with ``torch.load(weights_only=True)``.

A checkpoint holds everything needed to continue as if never interrupted: both networks,
both optimisers, the step, the loss history and the RNG states of torch, numpy and python.
RNG states are stored as tensors and plain types (no pickled objects), so loading never runs
code. A checkpoint also records an *identity* (hash of the params and data it was trained
with); a checkpoint with another identity is ignored, so changed params never resume stale
weights.

Writes go to a temporary file in the same folder, are flushed and fsync'ed, then renamed over
the old file with ``os.replace`` (atomic on POSIX), so a SIGKILL at any moment leaves either the
previous complete checkpoint or the new complete one.
"""
from __future__ import annotations

import io
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_edit.errors import FashionEditError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointError(FashionEditError, RuntimeError):
    """A checkpoint file exists but cannot be used, or cannot be written."""


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` that never leaves a partial file at ``path`` (tmp + fsync + os.replace).

    The state is serialised in memory first, so its size is known before the disk is touched and a
    failing write surfaces as an ``OSError`` (torch's zip writer reports it as an opaque "unexpected pos").
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    _check_free_space(path, payload.nbytes)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(_write_failure(path, payload.nbytes, exc.strerror or str(exc))) from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)  # make the rename itself durable


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _write_failure(path: Path, needed: int, reason: str) -> str:
    """One line: where, what it needs, and that the previous file is untouched (the write never replaced it)."""
    previous = (f"the previous {path.name} is intact" if path.exists() else "no earlier file was there")
    return (f"cannot write {path} ({_megabytes(needed)}): {reason}; {previous}. "
            f"Free space on {path.parent} and rerun (a training stage resumes from its last checkpoint)")


def _check_free_space(path: Path, needed: int) -> None:
    """Refuse a write the disk cannot hold before starting it (the old file is replaced only at the end,
    so the disk must hold both for a moment)."""
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise CheckpointError(_write_failure(path, needed, f"only {_megabytes(free)} free on that disk"))


def remove_stale_temporaries(path: Path) -> int:
    """Delete temporary files a killed writer left beside ``path``; returns how many."""
    stale = list(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.is_dir() else []
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return len(stale)


# ----------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy's global generator and python's ``random``."""
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(int(v) for v in py_state["internal"].tolist()),
                     py_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- save / load
def save_checkpoint(path: Path, *, step: int, identity: str, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], history: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> None:
    """Write a complete training state atomically (rank 0 only)."""
    state = {
        "format": FORMAT_VERSION,
        "step": step,
        "identity": identity,
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "history": history,
        "rng": capture_rng_state(),
        "extra": extra or {},
    }
    atomic_torch_save(state, path)


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (weights only, on CPU), or None if there is none."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, truncated copy, foreign pickle
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {exc}); "
            f"delete it to train from scratch") from None
    required = {"format", "step", "identity", "modules", "optimizers", "history", "rng"}
    missing = required - set(state) if isinstance(state, dict) else required
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint of this project "
                              f"(missing {sorted(missing)}); delete it to train from scratch")
    if state["format"] != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, this code reads "
                              f"{FORMAT_VERSION}; delete it to train from scratch")
    return state


def load_matching_checkpoint(path: Path, identity: str) -> tuple[dict[str, Any] | None, str]:
    """The checkpoint if it was written for ``identity``, and a one-line explanation of the choice."""
    state = read_checkpoint(path)
    if state is None:
        return None, f"no checkpoint at {path}: training from scratch"
    if state["identity"] != identity:
        return None, (f"checkpoint {path} was written for other params/data (identity {state['identity']}, "
                      f"now {identity}): training from scratch, it will be overwritten")
    return state, f"resuming from {path} at step {state['step']}"


def checkpoint_misfit(state: dict[str, Any], modules: dict[str, torch.nn.Module]) -> str | None:
    """Why ``state`` cannot load into ``modules`` (other layers or shapes, e.g. after a code change), or None.

    Checked before anything is loaded: ``load_state_dict`` would copy the matching tensors first and
    fail afterwards, leaving a half-restored network."""
    for name, module in modules.items():
        saved = state["modules"].get(name)
        if saved is None:
            return f"it has no '{name}' state"
        expected = module.state_dict()
        missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        if missing or unexpected:
            return f"'{name}' differs in layers (missing {missing[:3]}, unexpected {unexpected[:3]})"
        for key, tensor in expected.items():
            if tuple(saved[key].shape) != tuple(tensor.shape):
                return f"'{name}.{key}' is {tuple(saved[key].shape)}, the network has {tuple(tensor.shape)}"
    return None


def apply_checkpoint(state: dict[str, Any], modules: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """Load modules, optimisers and RNG states from ``state``; return its step."""
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    restore_rng_state(state["rng"])
    return int(state["step"])
