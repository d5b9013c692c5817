"""Shipping files: the Dockerfile for `prodcat serve` (built where a container engine works), the
LICENSE matching pyproject.toml, and `make`'s install printing its progress."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def container_engine() -> str | None:
    """``docker`` when its daemon answers (``docker info`` succeeds), else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        ok = subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return docker if ok else None


def test_license_file_matches_pyproject() -> None:
    project = pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_dockerfile_is_multi_stage_non_root_with_cpu_torch_and_the_serve_extras() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=build" in runtime
    user = re.search(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert user and user.group(1) not in ("root", "0")
    torch_pin = next(d for d in pyproject()["project"]["optional-dependencies"]["image"] if d.startswith("torch"))
    assert re.search(r'--index-url "\$\{TORCH_INDEX\}" "' + re.escape(torch_pin) + '"', text)
    assert re.search(r"^ARG TORCH_INDEX=\S+/whl/cpu$", text, re.MULTILINE)
    assert 'pip install ".[serve,image]"' in text
    assert '"prodcat", "serve"' in text and "EXPOSE 8000" in text
    for copied in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.MULTILINE):
        for name in copied.split():
            assert (REPO / name).exists(), f"the Dockerfile copies {name}, which the repository lacks"


@pytest.mark.slow
@pytest.mark.skipif(container_engine() is None, reason="no working container engine (`docker info` fails)")
def test_dockerfile_builds() -> None:
    result = subprocess.run([container_engine(), "build", "-t", "prodcat-serve-test", str(REPO)],
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    whoami = subprocess.run([container_engine(), "run", "--rm", "--entrypoint", "id", "prodcat-serve-test", "-u"],
                            capture_output=True, text=True, timeout=120)
    assert whoami.stdout.strip() not in ("", "0")


def test_make_install_prints_progress() -> None:
    dry_run = subprocess.run(["make", "-n", "-B", "install"], cwd=REPO, capture_output=True, text=True, timeout=30)
    if dry_run.returncode != 0 and shutil.which("make") is None:
        pytest.skip("make is not installed")
    pip_installs = [line for line in dry_run.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(pip_installs) == 2 and not [line for line in pip_installs if " -q" in line], pip_installs
    assert dry_run.stdout.count("==> [") >= 3  # one step line per stage
