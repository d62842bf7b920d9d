"""loop_local: one instance per event loop, made lazily, closed with its loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import loopbridge

pytestmark = pytest.mark.timeout(30)


class Resource:
    made: list[Resource] = []

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closed_on: str | None = None
        Resource.made.append(self)

    async def aclose(self) -> None:
        await asyncio.sleep(0)  # async cleanup: needs its loop still running
        assert asyncio.get_running_loop() is self.loop
        self.closed_on = threading.current_thread().name


@pytest.fixture(autouse=True)
def _reset() -> None:
    Resource.made.clear()


def test_one_instance_per_loop_made_lazily(worker: loopbridge.WorkerLoop) -> None:
    res = loopbridge.loop_local(Resource)
    assert Resource.made == []

    async def get() -> Resource:
        return res()

    a = worker.run_sync(get())
    assert worker.run_sync(get()) is a
    assert a.loop is worker.loop
    b = asyncio.run(get())
    assert b is not a and b.loop is not worker.loop
    assert "loop_local Resource" in repr(res)


def test_closed_when_asyncio_run_ends_and_when_the_worker_closes() -> None:
    res = loopbridge.loop_local(Resource)

    async def get() -> Resource:
        return res()

    inst = asyncio.run(get())
    assert inst.closed_on == "MainThread"  # by its default aclose(), on its own loop
    wl = loopbridge.WorkerLoop(name="ll")
    inst2 = wl.run_sync(get())
    assert inst2.closed_on is None
    wl.close()
    assert inst2.closed_on == "loopbridge-ll"
    assert "0 loop(s)" in repr(res)  # forgotten once closed


def test_custom_close_plain_or_async() -> None:
    closed: list[str] = []

    async def aclose(r: Resource) -> None:
        await asyncio.sleep(0)
        closed.append("async")

    plain = loopbridge.loop_local(Resource, close=lambda r: closed.append("plain"))
    asynchronous = loopbridge.loop_local(Resource, close=aclose)

    async def use() -> None:
        plain()
        asynchronous()

    asyncio.run(use())
    assert sorted(closed) == ["async", "plain"]
    assert [r.closed_on for r in Resource.made] == [None, None]  # default close not used


def test_no_task_is_left_behind_and_all_tasks_is_untouched() -> None:
    res = loopbridge.loop_local(Resource)

    async def use() -> int:
        res()
        return len(asyncio.all_tasks())

    assert asyncio.run(use()) == 1  # only the main task


def test_threads_racing_get_their_own_loop_instance(worker: loopbridge.WorkerLoop) -> None:
    res = loopbridge.loop_local(Resource)
    barrier = threading.Barrier(8)
    seen: list[tuple[int, int]] = []

    async def own() -> None:
        r = res()
        await asyncio.sleep(0.01)
        assert res() is r
        seen.append((id(asyncio.get_running_loop()), id(r)))

    async def shared() -> Resource:
        return res()

    shared_seen: list[Resource] = []

    def thread_main(i: int) -> None:
        barrier.wait(5)
        if i % 2:
            asyncio.run(own())  # a loop of its own
        else:
            shared_seen.append(worker.run_sync(shared(), timeout=5))

    threads = [threading.Thread(target=thread_main, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 4
    assert len({inst for _, inst in seen}) == 4
    assert len(shared_seen) == 4 and len({id(r) for r in shared_seen}) == 1
    assert len(Resource.made) == 5


def test_async_factory_with_aget_shares_one_creation() -> None:
    made = 0

    async def connect() -> dict[str, Any]:
        nonlocal made
        made += 1
        await asyncio.sleep(0.05)
        return {"n": made}

    pool = loopbridge.loop_local(connect, close=lambda p: None)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(pool.aget() for _ in range(10))))

    results = asyncio.run(main())
    assert made == 1
    assert all(r is results[0] for r in results)

    async def sync_call() -> object:
        return pool()

    with pytest.raises(TypeError, match=r"is async .*await x.aget\(\)"):
        asyncio.run(sync_call())


def test_failing_async_factory_is_reported_to_every_waiter() -> None:
    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("no server")

    pool = loopbridge.loop_local(broken)

    async def main() -> list[object]:
        return list(await asyncio.gather(*(pool.aget() for _ in range(3)), return_exceptions=True))

    errors = asyncio.run(main())
    assert [type(e).__name__ for e in errors] == ["ConnectionError"] * 3


def test_bad_use_is_explained() -> None:
    res = loopbridge.loop_local(Resource)
    with pytest.raises(
        RuntimeError, match=r"no loop is running in this thread\. Call it inside a coroutine"
    ):
        res()
    with pytest.raises(TypeError, match="expects a factory"):
        loopbridge.loop_local(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"close=...\) expects a callable"):
        loopbridge.loop_local(Resource, close="aclose")  # type: ignore[arg-type]
