"""1. run_sync works from any calling context."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import loopbridge


async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    return x * 2


async def whereami() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_no_loop_in_caller_thread() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert loopbridge.run_sync(double(21), timeout=5) == 42


def test_runs_on_the_named_worker_thread(worker: loopbridge.WorkerLoop) -> None:
    assert worker.run_sync(whereami(), timeout=5) == "loopbridge-test"
    assert loopbridge.run_sync(whereami(), timeout=5) == "loopbridge-default"


def test_one_persistent_loop_serves_every_call(worker: loopbridge.WorkerLoop) -> None:
    async def loop_id() -> int:
        return id(asyncio.get_running_loop())

    ids = {worker.run_sync(loop_id(), timeout=5) for _ in range(20)}
    assert len(ids) == 1
    assert ids == {id(worker.loop)}


def test_from_many_threads_at_once(worker: loopbridge.WorkerLoop) -> None:
    barrier = threading.Barrier(16)

    def call(i: int) -> int:
        barrier.wait(timeout=10)
        return sum(worker.run_sync(double(i * 100 + k), timeout=10) for k in range(50))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(16)))
    assert results == [sum((i * 100 + k) * 2 for k in range(50)) for i in range(16)]


def test_while_a_loop_runs_in_the_caller_thread() -> None:
    """The Jupyter case: sync code called from inside a running loop."""

    async def cell() -> int:
        # asyncio.run fails here, exactly as in a notebook cell ...
        probe = double(1)
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            asyncio.run(probe)  # noqa: LB001 - the failure this test shows
        probe.close()
        # ... while the bridge works (and says that it blocks this loop meanwhile).
        with pytest.warns(loopbridge.LoopBridgeWarning, match="blocks the event loop") as w:
            value = loopbridge.run_sync(double(5), timeout=5)
        assert w[0].filename == __file__  # attributed to the caller's line
        assert "loopbridge.run_async(double(...))" in str(w[0].message)
        return value

    assert asyncio.run(cell()) == 10


@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_sync_function_called_from_a_coroutine() -> None:
    def sync_api(x: int) -> int:  # a library's sync face
        return loopbridge.run_sync(double(x), timeout=5)

    async def app() -> list[int]:
        return [sync_api(i) for i in range(5)]

    assert asyncio.run(app()) == [0, 2, 4, 6, 8]


@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_explicit_worker_called_from_the_default_worker() -> None:
    """Different loops: a coroutine on the default worker may block on another worker."""
    with loopbridge.WorkerLoop(name="db") as db:

        async def outer() -> str:
            return db.run_sync(whereami(), timeout=5)

        assert loopbridge.run_sync(outer(), timeout=5) == "loopbridge-db"


def test_submit_returns_a_concurrent_future(worker: loopbridge.WorkerLoop) -> None:
    futs = [worker.submit(double(i)) for i in range(100)]
    assert [f.result(timeout=10) for f in futs] == [i * 2 for i in range(100)]
    assert loopbridge.submit(double(4)).result(timeout=5) == 8


def test_submit_future_cancel_cancels_the_task(worker: loopbridge.WorkerLoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fut = worker.submit(forever())
    assert started.wait(5)
    assert fut.cancel()
    assert cancelled.wait(5), "cancelling the future must cancel the task on the worker loop"
    assert fut.cancelled()


def test_submit_future_usable_from_asyncio(worker: loopbridge.WorkerLoop) -> None:
    async def main() -> int:
        return await asyncio.wrap_future(worker.submit(double(8)))

    assert asyncio.run(main()) == 16


def test_submit_exception_reaches_the_future(worker: loopbridge.WorkerLoop) -> None:
    async def boom() -> None:
        raise LookupError("nope")

    fut = worker.submit(boom())
    with pytest.raises(LookupError, match="nope"):
        fut.result(timeout=5)


def test_task_cancelled_by_itself_gives_cancelled_future(worker: loopbridge.WorkerLoop) -> None:
    async def cancel_me() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)

    fut = worker.submit(cancel_me())
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(timeout=5)
    assert fut.cancelled()
