"""2. No deadlock, ever: calls that would wait on their own loop fail at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

import loopbridge


async def nothing() -> int:
    await asyncio.sleep(0)
    return 1


@pytest.mark.timeout(10)
def test_run_sync_on_the_worker_thread_raises_at_once(worker: loopbridge.WorkerLoop) -> None:
    def sync_wrapper() -> int:  # a sync face, called from a coroutine the bridge runs
        return worker.run_sync(nothing())

    async def inner() -> int:
        return sync_wrapper()

    with pytest.raises(loopbridge.DeadlockError) as info:
        worker.run_sync(inner(), timeout=5)
    msg = str(info.value)
    assert "'test'" in msg and "loopbridge-test" in msg  # names the loop and its thread
    assert "`await`" in msg  # and the way out
    assert isinstance(info.value, RuntimeError)
    assert worker.run_sync(nothing(), timeout=5) == 1  # the worker still serves


@pytest.mark.timeout(10)
def test_default_worker_reentry_raises() -> None:
    async def inner() -> int:
        return loopbridge.run_sync(nothing())

    with pytest.raises(loopbridge.DeadlockError, match="'default'"):
        loopbridge.run_sync(inner(), timeout=5)


@pytest.mark.timeout(10)
def test_deadlock_closes_the_refused_coroutine(worker: loopbridge.WorkerLoop) -> None:
    # pytest turns RuntimeWarning ("coroutine ... was never awaited") into errors;
    # the refused coroutine must be closed, not leaked.
    async def inner() -> None:
        coro = nothing()
        with pytest.raises(loopbridge.DeadlockError):
            worker.run_sync(coro)
        assert coro.cr_frame is None  # closed

    worker.run_sync(inner(), timeout=5)


@pytest.mark.timeout(10)
@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_two_worker_loops_waiting_on_each_other() -> None:
    """A on B, B back on A: the second wait is refused instead of hanging both."""
    with loopbridge.WorkerLoop(name="a") as a, loopbridge.WorkerLoop(name="b") as b:

        async def on_b() -> int:
            return a.run_sync(nothing())  # B's thread -> A, while A waits on B

        async def on_a() -> int:
            return b.run_sync(on_b())  # A's thread -> B

        with pytest.raises(
            loopbridge.DeadlockError, match=r"'a'.*blocked waiting for worker loop 'b'"
        ):
            a.run_sync(on_a(), timeout=5)
        assert a.run_sync(nothing(), timeout=5) == 1
        assert b.run_sync(nothing(), timeout=5) == 1


@pytest.mark.timeout(10)
@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_chain_of_worker_loops_without_cycle_works() -> None:
    with loopbridge.WorkerLoop(name="a") as a, loopbridge.WorkerLoop(name="b") as b:

        async def on_b() -> str:
            await asyncio.sleep(0.01)
            return threading.current_thread().name

        async def on_a() -> str:
            return b.run_sync(on_b())

        assert a.run_sync(on_a(), timeout=5) == "loopbridge-b"


@pytest.mark.timeout(10)
def test_blocking_on_own_submit_future_raises(worker: loopbridge.WorkerLoop) -> None:
    async def inner() -> int:
        fut = worker.submit(nothing())
        with pytest.raises(loopbridge.DeadlockError, match=r"wrap_future"):
            fut.result()
        return await asyncio.wrap_future(fut)

    assert worker.run_sync(inner(), timeout=5) == 1
