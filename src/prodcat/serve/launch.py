"""Start the Streamlit web demonstrator (``prodcat app``) headless, on a loopback address by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prodcat.errors import DataError, ProdcatError
from prodcat.serve.uploads import DEFAULT_MAX_IMAGE_BYTES
from prodcat.serve.webdata import AppConfig, find_report

WEBAPP = Path(__file__).with_name("webapp.py")


def webapp_command(model_dir: str | Path, *, port: int = 8501, data: str | None = None, report: str | None = None,
                   host: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment that serve the demonstrator.

    Checks the inputs first: the model bundle (:class:`~prodcat.errors.ModelError`), the
    dataset CSV and the report (:class:`~prodcat.errors.DataError`).
    """
    from prodcat.predictor import ProductClassifier

    ProductClassifier.read_manifest(model_dir)
    if data is not None and not Path(data).is_file():
        raise DataError("dataset file not found", path=data)
    find_report(model_dir, report)
    if not 0 <= int(port) <= 65535:
        raise ProdcatError(f"port must be between 0 and 65535, got {port}")
    command = [
        sys.executable, "-m", "streamlit", "run", str(WEBAPP),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={int(port)}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        f"--server.maxUploadSize={max(1, DEFAULT_MAX_IMAGE_BYTES // 2**20)}",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]
    env = {**os.environ, **AppConfig(str(model_dir), data, report).environment()}
    return command, env


def run_webapp(model_dir: str | Path, *, port: int = 8501, data: str | None = None, report: str | None = None,
               host: str = "127.0.0.1") -> int:
    """Serve the demonstrator until interrupted; returns Streamlit's exit status (130 on Ctrl-C)."""
    command, env = webapp_command(model_dir, port=port, data=data, report=report, host=host)
    print(f"prodcat demonstrator on http://{host}:{port} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt as stop:  # Ctrl-C; SIGTERM (the CLI's subclass) goes on to the CLI: exit 143
        if type(stop) is not KeyboardInterrupt:
            raise
        return 130
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate a child that is still running (SIGTERM, then SIGKILL after ``grace_s``), so it
    never outlives us holding its port."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
