"""`python -m loopbridge demo` runs and shows each scene's outcome."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.conftest import ROOT, default_sigint


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="the Ctrl-C scene needs POSIX signals")
def test_scripted_demo_runs_and_shows_every_scene() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loopbridge", "demo", "--script"],
        preexec_fn=default_sigint,
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "cannot be called from a running event loop" in out
    assert "-> 42" in out
    assert "-> 'BRIDGE'" in out
    assert "TimeoutError after 0.2" in out and "finally ran" in out
    assert "submitted: cancelled on the worker loop" in out
    assert "run_sync: cancelled on the worker loop" in out
    assert "tasks left on the worker loop" in out and out.count(" 0\n") >= 1
    assert "DeadlockError" in out
    assert proc.stderr == "", proc.stderr


def test_cli_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loopbridge", "--help"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    assert "demo" in proc.stdout


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_demo_runs_the_quickstart_notebook() -> None:
    pytest.importorskip("nbclient")
    proc = subprocess.run(
        [sys.executable, "-m", "loopbridge", "demo"],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "quickstart.ipynb on a fresh kernel" in out
    assert "-> RuntimeError: asyncio.run() cannot be called from a running event loop" in out
    assert "attached to a different loop" in out  # the new-loop-per-call workaround breaking
    assert "-> 'AND AGAIN, IN ANOTHER CELL'" in out  # the fix: one client across cells
    assert "%aio tasks" in out and "gather (2 children, 0 done)" in out
    assert "cancelled" in out and "-> 'same loop'" in out
    assert out.count("In [") >= 15
    # the first thing a newcomer reads is the demo, not a kernel transport warning
    assert "without encryption" not in out + proc.stderr, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
