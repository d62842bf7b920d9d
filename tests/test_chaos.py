"""The randomized interrupt run of scripts/chaos.py, bounded, in CI.

Thousands of real SIGINTs at random moments (every 0.5-4 ms) against a child
looping over short and long calls (run_sync with and without timeouts, submit),
under ``-W error::LoopBridgeWarning`` so that a false "keeps running" warning
fails the call. `make chaos` runs it longer, with the other scenarios.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


@pytest.mark.timeout(90)
def test_random_interrupts_never_wedge_stall_or_lose_a_call() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaos.py"),
            "interrupts",
            "--seconds",
            "15",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=ROOT,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    stderr = report.pop("stderr", "")
    print("interrupt run:", report)  # the figures, in the test log
    assert report["interrupts"] >= 1000, report  # thousands of interrupts really landed
    assert report["wedged"] == 0, stderr
    assert report["stalls"] == 0, report  # no call took over 1 s more than its work
    assert report["lost"] == 0, report  # every coroutine that started also ended
    assert report["tasks_left"] == 0, report  # nothing stranded on the worker
    assert report["other"] == 0, stderr  # only values, TimeoutError, KeyboardInterrupt
    assert report["exit code"] == 0, stderr
    assert proc.returncode == 0, stderr
