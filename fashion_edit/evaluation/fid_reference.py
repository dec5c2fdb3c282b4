"""The real side of FID, computed once: Inception features of the prepared test images.

Every FID of the pipeline compares edited test images with the same real test images, so their
Inception features (the most expensive half of an evaluation on CPU) are the output of one stage,
``fid_reference`` (``data/fid_reference/test.npz``), which ``evaluate`` and every ablation variant
read instead of recomputing them. This is the "precomputed statistics" practice of pytorch-fid and
clean-fid, but the features themselves are kept: ``fashion_edit.evaluation.metrics.fid.fid_from_features``
needs them for its exact small-sample computation.

The file records a fingerprint of the images it was computed from (their bytes and the FID
preprocessing name); a reader refuses features of other test images with an error saying how to
rebuild them, so a stale reference can never yield a silently wrong FID.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from fashion_edit.data.store import PreparedSplit
from fashion_edit.errors import FashionEditError
from fashion_edit.evaluation.metrics.fid import FEATURE_DIM, FID_METRIC_NAME, InceptionFeatures

REBUILD = "run `dvc repro fid_reference`"
_HASH_ROWS = 256  # images hashed per read


class FidReferenceError(FashionEditError, RuntimeError):
    """The stored real features are missing, unreadable or belong to other test images."""


def split_fingerprint(split: PreparedSplit) -> str:
    """SHA-256 of the split's image bytes and shape, and of the FID preprocessing they are scored with."""
    digest = hashlib.sha256(f"{FID_METRIC_NAME}:{split.images.shape}".encode())
    for start in range(0, len(split), _HASH_ROWS):  # in chunks: a large real test split stays on disk
        digest.update(np.ascontiguousarray(split.images[start:start + _HASH_ROWS]).data)
    return digest.hexdigest()


def compute_reference(split: PreparedSplit, inception: InceptionFeatures) -> np.ndarray:
    """Inception features (N, 2048) of every image of ``split`` (uint8 HWC rows), in split order."""
    if len(split) < 2:  # a covariance needs two samples
        raise FidReferenceError(f"{split.root}: {len(split)} test images; FID needs at least 2 "
                                "(raise preprocess.split.test or prepare more data)")
    step = inception.batch_size
    # np.array copies the read-only memmap rows (torch refuses to wrap non-writable memory silently)
    chunks = [inception(torch.from_numpy(np.array(split.images[start:start + step])).permute(0, 3, 1, 2))
              for start in range(0, len(split), step)]
    return np.concatenate(chunks)


def save_reference(path: Path, features: np.ndarray, split: PreparedSplit) -> None:
    """Write ``features`` of ``split`` with its fingerprint (write-then-rename: never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, features=features, fingerprint=np.array(split_fingerprint(split)),
                 metric=np.array(FID_METRIC_NAME))
    partial.replace(path)


def load_reference(path: Path, split: PreparedSplit) -> np.ndarray:
    """The stored features of ``split``; FidReferenceError if missing, unreadable or of other images."""
    if not path.is_file():
        raise FidReferenceError(f"{path}: FID reference features missing; {REBUILD}")
    try:
        with np.load(path, allow_pickle=False) as stored:
            features, fingerprint = stored["features"], str(stored["fingerprint"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: a half-copied file
        raise FidReferenceError(f"{path}: not a readable FID reference ({type(exc).__name__}: {exc}); "
                                f"{REBUILD}") from None
    if fingerprint != split_fingerprint(split) or features.shape != (len(split), FEATURE_DIM):
        raise FidReferenceError(f"{path}: computed for other test images than {split.root} "
                                f"({features.shape[0]} features for {len(split)} images, or the images "
                                f"changed since); {REBUILD}")
    return features
