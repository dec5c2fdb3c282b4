"""End to end: real `dvc repro preprocess` (synthesize -> preprocess) in a copy of the repo."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fashion_edit.data.store import SPLITS, open_split, read_manifest

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("fashion_edit/", "stages/", "models/", "dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore",
          ".dvcignore", ".gitignore")
COUNT = 40

pytestmark = pytest.mark.slow


def _copy_repo(dest: Path) -> None:
    """The files git knows about (tracked or new, not ignored) that the data stages need."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if name.startswith(NEEDED) and source.is_file() and "__pycache__" not in name:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _set_param(repo: Path, section: str, key: str, value: object) -> None:
    """Edit params.yaml through YAML, so the test does not depend on the defaults' values."""
    params = repo / "params.yaml"
    data = yaml.safe_load(params.read_text())
    data[section][key] = value
    params.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _copy_repo(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _set_param(root, "synthesize", "count", COUNT)
    return root


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` in dvc.yaml = this venv
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(repo.parent / "dvc_site_cache"),  # keep DVC's state out of /var/tmp
        "PYTHONPATH": str(repo),
    }
    result = subprocess.run([str(venv_bin / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_dvc_repro_preprocess_end_to_end(repo: Path) -> None:
    first = _dvc(repo, "repro", "preprocess")
    assert "Running stage 'synthesize'" in first.stdout and "Running stage 'preprocess'" in first.stdout

    assert len(list((repo / "data" / "raw" / "images").glob("*.png"))) == COUNT
    assert (repo / "reports" / "figures" / "synthesize_contact_sheet.png").stat().st_size > 0
    report = json.loads((repo / "reports" / "preprocess.json").read_text())
    assert (report["read"], report["kept"], report["skipped"]) == (COUNT, COUNT, 0)
    manifest = read_manifest(repo / "data" / "prepared")
    assert sum(manifest["counts"].values()) == COUNT and min(manifest["counts"].values()) > 0
    assert manifest["resolution"] == {"height": 128, "width": 128}
    for split in SPLITS:
        data = open_split(repo / "data" / "prepared" / split)
        assert len(data) == manifest["counts"][split] and data.images.shape[1:] == (128, 128, 3)
        assert sum(manifest["label_histogram"][split]) == len(data) * 128 * 128
        assert (data.eval_masks is None) == (split == "train")
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == {"check_params", "synthesize", "preprocess"}

    second = _dvc(repo, "repro", "preprocess")
    assert "Running stage" not in second.stdout and "up to date" in second.stdout

    _set_param(repo, "preprocess", "canny_low", 90)
    third = _dvc(repo, "repro", "preprocess")
    assert "Running stage 'preprocess'" in third.stdout and "Running stage 'synthesize'" not in third.stdout
