"""Shared fixtures: where the checked-in real datasets live, and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MNIST = SHARED / "data" / "mnist"

os.environ.setdefault("MPLBACKEND", "Agg")


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "trainwell", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def cli():
    return run_cli


def require_service(name: str, why: str) -> None:
    """Skip a test whose external service (``postgres``, ``chromium``, ``mlflow``) is missing, except in CI.

    Under ``.ci/run`` (``TRAINWELL_CI=1``) a missing service fails the test unless
    ``TRAINWELL_ALLOW_SKIP`` names it (``TRAINWELL_ALLOW_SKIP=postgres,chromium``): a green CI
    then means the real service was tested. Every call is logged to ``TRAINWELL_SERVICE_LOG``
    (when set) for .ci/run's summary. Call it only when the service is missing.
    """
    allowed = {s.strip() for s in os.environ.get("TRAINWELL_ALLOW_SKIP", "").split(",") if s.strip()}
    strict = os.environ.get("TRAINWELL_CI") == "1" and name not in allowed
    log = os.environ.get("TRAINWELL_SERVICE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{name}\t{'missing' if strict else 'skipped'}\t{os.environ.get('PYTEST_CURRENT_TEST', '')}\n")
    if strict:
        pytest.fail(f"{name} is needed and missing: {why}. In CI this fails the run; set "
                    f"TRAINWELL_ALLOW_SKIP={name} to run without it on purpose.", pytrace=False)
    pytest.skip(f"{name} not available: {why}")


def service_used(name: str) -> None:
    """Record that a test ran against the real ``name`` service (for .ci/run's summary)."""
    log = os.environ.get("TRAINWELL_SERVICE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{name}\ttested\t{os.environ.get('PYTEST_CURRENT_TEST', '')}\n")
