"""syncify: async functions, methods and classes become sync ones that keep their shape."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

import loopbridge

pytestmark = pytest.mark.timeout(30)


async def load_table(url: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """Load rows from *url*."""
    await asyncio.sleep(0)
    return [{"url": url, "i": i, "thread": threading.current_thread().name} for i in range(limit)]


def test_keeps_name_doc_wrapped_and_signature(worker: loopbridge.WorkerLoop) -> None:
    sync = loopbridge.syncify(load_table, worker=worker)
    assert sync.__name__ == "load_table"
    assert sync.__qualname__ == "load_table"
    assert sync.__doc__ == "Load rows from *url*."
    assert sync.__wrapped__ is load_table  # type: ignore[attr-defined]
    assert sync.aio is load_table  # type: ignore[attr-defined]
    assert inspect.signature(sync) == inspect.signature(load_table)
    assert not inspect.iscoroutinefunction(sync)
    rows = sync("u", limit=3)
    assert [r["i"] for r in rows] == [0, 1, 2]
    assert {r["thread"] for r in rows} == {"loopbridge-test"}  # ran on the worker loop


def test_decorator_with_options_and_default_worker() -> None:
    @loopbridge.syncify(timeout=0.2)
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError, match=r"slow\(\) timed out after 0.2s"):
        slow()

    @loopbridge.syncify
    async def where() -> str:
        return threading.current_thread().name

    assert where() == "loopbridge-default"
    assert loopbridge.syncify(where) is where  # already sync: unchanged


class Store:
    """An async class whose methods are syncified one by one."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    @loopbridge.syncify
    async def put(self, key: str, value: int) -> None:
        await asyncio.sleep(0)
        self.data[key] = value

    @loopbridge.syncify
    @classmethod
    async def make(cls) -> Store:
        return cls()

    @classmethod
    @loopbridge.syncify
    async def make2(cls) -> Store:
        return cls()

    @loopbridge.syncify
    @staticmethod
    async def double(x: int) -> int:
        return 2 * x

    @staticmethod
    @loopbridge.syncify
    async def triple(x: int) -> int:
        return 3 * x


def test_methods_classmethods_and_staticmethods_in_either_order() -> None:
    store = Store.make()
    assert isinstance(store, Store)
    assert isinstance(Store.make2(), Store)
    store.put("a", 1)
    assert store.data == {"a": 1}
    assert Store.double(4) == 8
    assert store.triple(4) == 12
    assert list(inspect.signature(Store.put).parameters) == ["self", "key", "value"]
    assert list(inspect.signature(store.put).parameters) == ["key", "value"]


def test_async_generator_function_gives_a_lazy_iterator_closed_on_break(
    worker: loopbridge.WorkerLoop,
) -> None:
    events: list[str] = []

    async def numbers(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                events.append(f"yield {i}")
                yield i
        finally:
            events.append(f"closed on {threading.current_thread().name}")

    sync_numbers = loopbridge.syncify(numbers, worker=worker)
    it = sync_numbers(100)
    assert events == []  # lazy: nothing ran yet
    for i in it:
        if i == 2:
            break
    del it
    assert events == ["yield 0", "yield 1", "yield 2", "closed on loopbridge-test"]
    assert list(sync_numbers(3)) == [0, 1, 2]


class Counter:
    """An async client with every shape sync code meets."""

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.loop = asyncio.get_running_loop()  # binds to the loop it is made on
        self.entered = 0

    async def incr(self, by: int = 1) -> int:
        assert asyncio.get_running_loop() is self.loop
        self.value += by
        return self.value

    async def __aenter__(self) -> Counter:
        self.entered += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.entered -= 1


def test_whole_class_builds_on_the_worker_loop(worker: loopbridge.WorkerLoop) -> None:
    SyncCounter = loopbridge.syncify(Counter, worker=worker)
    assert SyncCounter.__name__ == "Counter"
    assert SyncCounter.__doc__ == Counter.__doc__
    assert SyncCounter.__wrapped__ is Counter  # type: ignore[attr-defined]
    assert inspect.signature(SyncCounter) == inspect.signature(Counter)
    assert list(inspect.signature(SyncCounter).parameters) == ["start"]
    counter = SyncCounter(5)  # Counter.__init__ needs a running loop: it ran on the worker
    assert isinstance(counter, loopbridge.SyncFace)
    assert counter.aio.loop is worker.loop
    assert counter.incr() == 6
    assert counter.incr(by=4) == 10
    with counter as same:
        assert same is counter
        assert counter.entered == 1
    assert counter.entered == 0
    assert counter.value == 10  # plain attributes pass through


def test_called_on_the_worker_loop_raises_deadlock_error(worker: loopbridge.WorkerLoop) -> None:
    sync_load = loopbridge.syncify(load_table, worker=worker)

    async def inside() -> object:
        return sync_load("u")

    with pytest.raises(loopbridge.DeadlockError, match=r"load_table\(\) was called on the thread"):
        worker.run_sync(inside(), timeout=5)


def test_called_from_a_coroutine_on_another_loop_warns_and_names_the_original(
    worker: loopbridge.WorkerLoop,
) -> None:
    sync_load = loopbridge.syncify(load_table, worker=worker)

    async def main() -> list[dict[str, Any]]:
        return sync_load("u", limit=1)

    with pytest.warns(loopbridge.LoopBridgeWarning) as record:
        rows = asyncio.run(main())
    assert rows[0]["url"] == "u"  # it still works: the worker loop is another loop
    message = str(record[0].message)
    assert "load_table() blocks the event loop running in this thread" in message
    assert "in coroutine test_called_from_a_coroutine" in message or "main()" in message
    assert "await load_table.aio(...)" in message
    assert record[0].filename == __file__  # attributed to the caller's line


def test_no_warning_from_plain_threads_or_module_level_code(worker: loopbridge.WorkerLoop) -> None:
    sync_load = loopbridge.syncify(load_table, worker=worker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sync_load("u", limit=1)[0]["i"] == 0
        box: list[object] = []
        t = threading.Thread(target=lambda: box.append(sync_load("t", limit=1)), daemon=True)
        t.start()
        t.join(10)
        assert box and box[0][0]["url"] == "t"  # type: ignore[index]


def test_function_returning_an_awaitable_is_called_on_the_worker(
    worker: loopbridge.WorkerLoop,
) -> None:
    def make_counter(start: int) -> Any:
        async def build() -> Counter:
            return Counter(start)

        return build()

    counter = loopbridge.syncify(make_counter, worker=worker)(3)
    assert isinstance(counter, Counter)  # syncify returns the result itself
    assert counter.loop is worker.loop


def test_bad_input_is_explained(worker: loopbridge.WorkerLoop) -> None:
    with pytest.raises(TypeError, match=r"syncify\(\) expects an async function.*got int"):
        loopbridge.syncify(3)  # type: ignore[call-overload]
    coro = load_table("u")
    with pytest.raises(TypeError, match=r"got an awaitable .*run_sync"):
        loopbridge.syncify(coro)  # type: ignore[call-overload]
    coro.close()
    with pytest.raises(TypeError, match=r"worker=\.\.\.\) expects a loopbridge\.WorkerLoop"):
        loopbridge.syncify(load_table, worker="default")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"timeout=...\) expects a positive number"):
        loopbridge.syncify(load_table, timeout=-1)

    def not_async(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"not_async\(\) returned int: 1, which is not an await"):
        loopbridge.syncify(not_async, worker=worker)(1)  # type: ignore[call-overload]


def test_exceptions_keep_type_and_partial_objects_work(worker: loopbridge.WorkerLoop) -> None:
    async def fail(x: int) -> None:
        raise KeyError(x)

    with pytest.raises(KeyError, match="7"):
        loopbridge.syncify(fail, worker=worker)(7)
    sync_partial = loopbridge.syncify(functools.partial(load_table, "p"), worker=worker)
    assert sync_partial(limit=2)[1]["url"] == "p"
