"""The GPU image's Dockerfile, checked statically (no Docker engine here)."""
from __future__ import annotations

import fnmatch
import glob
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    out = []
    for text in joined:
        word, _, rest = text.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def shell_commands() -> list[list[str]]:
    """Every simple command of every RUN, tokenised."""
    commands = []
    for word, args in instructions():
        if word == "RUN":
            commands += [shlex.split(part) for part in re.split(r"&&|;|\|\|", args) if part.strip()]
    return commands


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_installs_exactly_the_pinned_project_requirements():
    installs = [c[c.index("install") + 1:] for c in shell_commands() if c[:2] == ["pip", "install"]
                or c[1:4] == ["-m", "pip", "install"]]
    assert installs, "the Dockerfile installs nothing with pip"
    for args in installs:
        targets = [a for a in args if not a.startswith("-")]
        assert targets and all(re.fullmatch(r"\.(\[[\w,-]+\])?", t) for t in targets), \
            f"pip install {args}: only the project itself (`.`) may be installed, its pins come from pyproject.toml"
        assert not {"-r", "--requirement", "-c", "--constraint", "--index-url", "--extra-index-url"} & set(args)
    assert any("--no-deps" not in args for args in installs), "dependencies are never installed from pyproject"
    torch_pin = next(d for d in pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert re.fullmatch(r"torch==\d+\.\d+\.\d+", torch_pin), "pyproject.toml must pin torch exactly"
    assert re.findall(r"torch==[\w.+]+", DOCKERFILE.read_text()) in ([], [torch_pin])


def _ignored(path: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
        for candidate in candidates:
            pool = suffixes + prefixes if pattern.startswith("**/") else prefixes
            if any(fnmatch.fnmatchcase(p, candidate) for p in pool):
                return True
    return False


def test_copied_files_exist_and_are_not_docker_ignored():
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copies = [shlex.split(args) for word, args in instructions() if word in ("COPY", "ADD")]
    assert copies
    for args in copies:
        if any(a.startswith("--from") for a in args):
            continue
        sources = [a for a in args[:-1] if not a.startswith("--")]
        matched = [m for s in sources for m in glob.glob(s, root_dir=REPO_ROOT)]
        missing = [s for s in sources if not glob.has_magic(s) and not (REPO_ROOT / s).exists()]
        assert not missing and matched, f"COPY {args}: missing in the build context: {missing or sources}"
        excluded = [m for m in matched if _ignored(m, patterns)]
        assert not excluded, f"COPY {args}: excluded by .dockerignore: {excluded}"


def test_cuda_runtime_base_python_opencv_libs_and_non_root_user():
    steps = instructions()
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    base = next(a for w, a in steps if w == "FROM")
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    apt = [c for c in shell_commands() if c[:2] == ["apt-get", "install"]]
    packages = {p for c in apt for p in c if not p.startswith("-")}
    assert {"python3.11", "libgl1", "libglib2.0-0", "git"} <= packages
    assert "3.11" in pyproject()["project"]["requires-python"] or ">=3.11" in pyproject()["project"]["requires-python"]
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = next(a for w, a in steps if w == "ENTRYPOINT")
    assert "fashion-edit-entrypoint" in entrypoint


def test_entrypoint_passes_worker_commands_through(tmp_path):
    script = REPO_ROOT / "docker" / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    # what a Prefect worker starts in the container: any other command runs unchanged
    done = subprocess.run(["sh", str(script), "echo", "flow-run", "execute"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "flow-run execute"
    helped = subprocess.run(["sh", str(script), "help"], capture_output=True, text=True)
    assert "worker" in helped.stdout and "pipeline" in helped.stdout
