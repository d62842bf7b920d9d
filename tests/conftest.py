from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopbridge

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker() -> Iterator[loopbridge.WorkerLoop]:
    """A fresh, explicitly owned worker loop, closed after the test."""
    wl = loopbridge.WorkerLoop(name="test", cancel_timeout=2.0, shutdown_timeout=2.0)
    yield wl
    wl.close()


def run_script(
    code: str, *, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter (the one running the tests)."""
    full_env = {**os.environ, "PYTHONDEVMODE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )
