"""Shared fixtures: paths to the real data in ../shared (skipped when absent), one local Ray runtime."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; skips the test when it is not there."""
    if not (SHARED_DATA / "rakuten_sample" / "X_train_sample.csv").exists():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """Two pytest workers share two cores: one BLAS thread each avoids OpenBLAS spin contention."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def ray_runtime():
    """The Ray engine on one local runtime (2 CPUs) for the whole session (one per pytest worker).

    Opt-in (``PRODCAT_RAY_TESTS=1``) and skipped when Ray is not installed: under load on the shared
    2-core machine these tests take minutes (see docs/scaling.md, "Tests")."""
    if os.environ.get("PRODCAT_RAY_TESTS") != "1":
        pytest.skip("Ray engine tests are opt-in: PRODCAT_RAY_TESTS=1")
    pytest.importorskip("ray")
    from prodcat.engines.ray_engine import RayEngine

    engine = RayEngine(workers=2)
    yield engine
    engine.close()
    import ray

    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def no_ocr():
    """OCR that finds no text, instantly: for tests of serving and fall-backs that train the image
    preset, whose subject is not OCR (``tests/test_ocr.py`` runs the real one, 0.3 s a photo)."""
    from prodcat.image.ocr import PhotoTextReader

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PhotoTextReader, "read_one", lambda self, image: "")
        yield
