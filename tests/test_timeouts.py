"""3. Timeouts cancel the task, wait for it (bounded), raise TimeoutError."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

import loopbridge


@pytest.mark.timeout(10)
def test_timeout_cancels_the_task_and_runs_its_cleanup(worker: loopbridge.WorkerLoop) -> None:
    cleaned = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # async cleanup still gets to run
            cleaned.set()

    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timed out after 0.2s waiting for .*slow"):
        worker.run_sync(slow(), timeout=0.2)
    assert cleaned.is_set(), "the task's finally block must have run before run_sync returns"
    assert 0.2 <= time.monotonic() - t0 < 3


@pytest.mark.timeout(10)
def test_worker_keeps_serving_after_a_timeout(worker: loopbridge.WorkerLoop) -> None:
    for _ in range(3):
        with pytest.raises(TimeoutError):
            worker.run_sync(asyncio.sleep(10), timeout=0.05)
    assert worker.run_sync(asyncio.sleep(0, "ok"), timeout=5) == "ok"

    async def count() -> int:
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert worker.run_sync(count(), timeout=5) == 0  # nothing left behind


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.10 only: asyncio.TimeoutError differs")
def test_timeout_is_also_asyncio_timeout_on_310(worker: loopbridge.WorkerLoop) -> None:
    with pytest.raises(asyncio.TimeoutError):
        worker.run_sync(asyncio.sleep(10), timeout=0.05)


@pytest.mark.timeout(15)
def test_cleanup_that_ignores_cancellation_is_bounded() -> None:
    with loopbridge.WorkerLoop(name="stubborn", cancel_timeout=0.3, shutdown_timeout=1) as wl:
        release = threading.Event()

        async def stubborn() -> None:
            while not release.is_set():
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    pass  # swallows every cancellation

        t0 = time.monotonic()
        with (
            pytest.warns(loopbridge.LoopBridgeWarning, match="cancelled but had not finished"),
            pytest.raises(TimeoutError),
        ):
            wl.run_sync(stubborn(), timeout=0.1)
        assert time.monotonic() - t0 < 2  # timeout + grace, not forever
        release.set()


def test_timeout_zero_on_an_immediate_coroutine(worker: loopbridge.WorkerLoop) -> None:
    # Either the result (it finished before the cancel landed) or TimeoutError:
    # never a hang and never a lost task.
    async def instant() -> int:
        return 7

    try:
        assert worker.run_sync(instant(), timeout=0) == 7
    except TimeoutError:
        pass
    assert worker.run_sync(instant(), timeout=5) == 7


@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        (-1, ValueError, "non-negative"),
        (float("nan"), ValueError, "non-negative"),
        ("5", TypeError, "got str: '5'"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_timeout_is_refused(
    worker: loopbridge.WorkerLoop, bad: object, exc: type[Exception], match: str
) -> None:
    coro = asyncio.sleep(0)
    with pytest.raises(exc, match=match):
        worker.run_sync(coro, timeout=bad)  # type: ignore[arg-type]
    coro.close()
