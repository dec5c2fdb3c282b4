"""The one file format of a trained network's weights, written by the training stages and the editor bundle.

A file is ``{"format", "network", "architecture", "state_dict"}``: ``network`` is parser | inpainter |
segmenter and ``architecture`` its params section (``ParserNet`` / ``InpainterNet`` / ``SegmenterNet``
as a dict), so the file alone rebuilds the network. Weights only (``torch.load(weights_only=True)``);
the training state lives in the stages' ``checkpoint.pt``.

Read too, so that files written before this format keep working: a bare state dict (the training
stages' ``generator.pt`` and the editor bundle ``fashion-edit-editor/1``), given the architecture
from elsewhere, and the segmenter's own ``fashion-edit-segmenter/1`` file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from pydantic import ValidationError

from fashion_edit.config import InpainterNet, Params, ParserNet, SegmenterNet, Section
from fashion_edit.data.labels import NUM_CLASSES
from fashion_edit.errors import FashionEditError
from fashion_edit.networks import build_inpainter, build_parser, build_segmenter
from fashion_edit.training.checkpoints import atomic_torch_save

FORMAT = "fashion-edit-weights/1"
_LEGACY_SEGMENTER_FORMAT = "fashion-edit-segmenter/1"
# network -> (its architecture section, the builder)
NETWORKS: dict[str, tuple[type[Section], Callable[[Any], torch.nn.Module]]] = {
    "parser": (ParserNet, build_parser),
    "inpainter": (InpainterNet, build_inpainter),
    "segmenter": (SegmenterNet, build_segmenter),
}


class NetworkFileError(FashionEditError, RuntimeError):
    """A weights file is missing, unreadable or does not fit its network; says how to produce it."""


def architecture_of(params: Params, network: str) -> dict[str, Any]:
    """The params section that builds ``network``, as stored in its weights file."""
    return getattr(params, network).model_dump(mode="json")


def save_network(path: Path, network: str, architecture: Mapping[str, Any], module: torch.nn.Module) -> Path:
    """Write ``module``'s weights with what rebuilds it (atomically: a reader never sees half a file)."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_torch_save({"format": FORMAT, "network": network, "architecture": dict(architecture),
                       "state_dict": state}, path)
    return path


def load_network(path: Path, network: str, how: str,
                 legacy_architecture: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The ``network`` saved at ``path`` (eval mode) and its architecture.

    ``how``: the command that produces the file, named in every error. ``legacy_architecture``
    builds a bare state dict written before this format (without it such a file is refused)."""
    if not path.is_file():
        raise NetworkFileError(f"weights not found: {path} (produce them with `{how}`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle
        raise NetworkFileError(f"{path} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
                               f"rerun `{how}`") from None
    architecture, state = _unpack(saved, path, network, how, legacy_architecture)
    section, build = NETWORKS[network]
    try:
        module = build(section(**architecture))
        module.load_state_dict(state)
    except (ValidationError, RuntimeError, TypeError) as exc:  # weights of another architecture
        raise NetworkFileError(f"{path} does not load into the {network} it describes ({type(exc).__name__}: "
                               f"{str(exc)[:300]}); rerun `{how}`") from None
    return module.eval(), dict(architecture)


def _unpack(saved: Any, path: Path, network: str, how: str,
            legacy_architecture: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(architecture, state dict) of a loaded file in any format this project wrote."""
    if isinstance(saved, dict) and saved.get("format") == FORMAT:
        if saved.get("network") != network:
            raise NetworkFileError(f"{path} holds a {saved.get('network')} network, not a {network}; "
                                   f"point to the {network}'s file (written by `{how}`)")
        return saved["architecture"], saved["state_dict"]
    if isinstance(saved, dict) and saved.get("format") == _LEGACY_SEGMENTER_FORMAT and network == "segmenter":
        architecture = dict(saved["architecture"])
        if architecture.pop("num_classes", NUM_CLASSES) != NUM_CLASSES:
            raise NetworkFileError(f"{path}: segmenter for another label set (expected {NUM_CLASSES} LIP classes)")
        return architecture, saved["state_dict"]
    if legacy_architecture is not None and isinstance(saved, dict) and "format" not in saved:
        architecture = {k: v for k, v in legacy_architecture.items() if k != "num_classes"}
        return architecture, saved
    raise NetworkFileError(f"{path} is not a {network} file of this project (expected format {FORMAT!r}); "
                           f"produce it with `{how}`")
