"""4. Ctrl-C cancels the work on the worker loop, lets it clean up, re-raises."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import pytest
from tests.conftest import start_script, wait_for_line

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

SCRIPT = """
import asyncio, sys, time, loopbridge

async def work():
    print("started", flush=True)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("cancelled on the worker loop", flush=True)
        raise
    finally:
        await asyncio.sleep(0.1)           # async cleanup gets its grace time
        print("cleanup done", flush=True)

async def alive():
    return "worker still serves"

{caller}
try:
    call()
except KeyboardInterrupt:
    print("KeyboardInterrupt reached the caller", flush=True)
    # the loop keeps working, and the cancelled task is really gone
    print(loopbridge.run_sync(alive(), timeout=5), flush=True)
    async def count():
        return len(asyncio.all_tasks()) - 1
    print("tasks left:", loopbridge.run_sync(count(), timeout=5), flush=True)
"""

PLAIN = """
def call():
    loopbridge.run_sync(work())
"""

# The Jupyter shape: the caller's own thread is running an event loop.
INSIDE_LOOP = """
def call():
    async def cell():
        loopbridge.run_sync(work())
    asyncio.run(cell())
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("caller", [PLAIN, INSIDE_LOOP], ids=["plain", "inside-running-loop"])
def test_real_sigint_cancels_remote_task(caller: str) -> None:
    proc = start_script(textwrap.dedent(SCRIPT).replace("{caller}", textwrap.dedent(caller)))
    try:
        wait_for_line(proc, "started")
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    lines = out.splitlines()
    assert lines == [
        "cancelled on the worker loop",
        "cleanup done",
        "KeyboardInterrupt reached the caller",
        "worker still serves",
        "tasks left: 0",
    ], out + err
    assert proc.returncode == 0, err


@pytest.mark.timeout(30)
def test_second_sigint_abandons_the_grace_wait() -> None:
    """Cleanup that hangs: a second Ctrl-C stops waiting for it at once."""
    code = textwrap.dedent(
        """
        import asyncio, time, loopbridge
        wl = loopbridge.WorkerLoop(name="w", cancel_timeout=60, shutdown_timeout=0.5)

        async def work():
            print("started", flush=True)
            try:
                await asyncio.sleep(3600)
            finally:
                print("cleanup hangs", flush=True)
                await asyncio.sleep(3600)

        t0 = time.monotonic()
        try:
            wl.run_sync(work())
        except KeyboardInterrupt:
            print("interrupted after %.1fs" % (time.monotonic() - t0), flush=True)
        """
    )
    proc = start_script(code)
    try:
        wait_for_line(proc, "started")
        os.kill(proc.pid, signal.SIGINT)
        wait_for_line(proc, "cleanup hangs")
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "interrupted after" in out, out + err
    seconds = float(out.split("interrupted after ")[1].split("s")[0])
    assert seconds < 10  # not the 60 s grace
