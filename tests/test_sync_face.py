"""sync_face: every async shape of an object becomes the matching sync shape."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest

import loopbridge

pytestmark = pytest.mark.timeout(30)


class Conn:
    """A connection bound to the loop it was made on, like asyncpg's."""

    def __init__(self, pool: Pool, n: int) -> None:
        self.pool, self.n = pool, n
        self.loop = asyncio.get_running_loop()
        self.in_tx = False

    async def fetch(self, q: str) -> list[tuple[int, str]]:
        assert asyncio.get_running_loop() is self.loop, "used from another loop"
        await asyncio.sleep(0)
        return [(i, q) for i in range(3)]

    def transaction(self) -> Transaction:  # a plain method returning an async CM
        return Transaction(self)

    async def rows(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                await asyncio.sleep(0)
                yield i
        finally:
            self.pool.events.append(f"rows closed on {threading.current_thread().name}")


class Transaction:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def __aenter__(self) -> Transaction:
        self.conn.in_tx = True
        return self

    async def __aexit__(self, et: object, ev: object, tb: object) -> bool:
        self.conn.in_tx = False
        self.conn.pool.events.append("rollback" if et else "commit")
        return False


class Acquire:
    """What pool.acquire() gives: awaitable *and* an async context manager."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.conn: Conn | None = None

    def __await__(self) -> Generator[Any, None, Conn]:
        return self.pool._get().__await__()

    async def __aenter__(self) -> Conn:
        self.conn = await self.pool._get()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.pool.release(self.conn)


class Pool:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.events: list[str] = []
        self.out = 0
        self.label = "pool"  # plain data
        self.made = 0

    async def _get(self) -> Conn:
        self.out += 1
        self.made += 1
        return Conn(self, self.made)

    def acquire(self) -> Acquire:
        return Acquire(self)

    async def release(self, conn: Conn) -> None:
        assert isinstance(conn, Conn), f"release() got {type(conn).__name__}"
        self.out -= 1

    async def fetch(self, q: str) -> list[tuple[int, str]]:
        async with self.acquire() as conn:
            return await conn.fetch(q)

    @property
    async def size(self) -> int:
        return self.out

    @property
    def closed(self) -> bool:
        return False

    def where(self) -> str:
        return threading.current_thread().name

    def stream(self) -> Stream:
        return Stream(self)


class Stream:
    """A class-based async iterator with aclose(), like a server-side cursor."""

    def __init__(self, pool: Pool) -> None:
        self.pool, self.i = pool, 0

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> int:
        self.i += 1
        if self.i > 1000:
            raise StopAsyncIteration
        return self.i

    async def aclose(self) -> None:
        self.pool.events.append(f"stream aclose at {self.i}")


async def make_pool() -> Pool:
    return Pool()


@pytest.fixture
def db(worker: loopbridge.WorkerLoop) -> loopbridge.SyncFace[Pool]:
    return loopbridge.sync_face(make_pool(), worker=worker)


def test_a_coroutine_is_awaited_on_the_worker_and_its_result_faced(
    db: loopbridge.SyncFace[Pool], worker: loopbridge.WorkerLoop
) -> None:
    assert isinstance(db.aio, Pool)
    assert db.aio.loop is worker.loop
    assert repr(db).startswith("<sync face of <")
    assert "fetch" in dir(db) and "aio" in dir(db)


def test_methods_run_on_the_worker_and_data_passes_through(
    db: loopbridge.SyncFace[Pool],
) -> None:
    assert db.fetch("q") == [(0, "q"), (1, "q"), (2, "q")]
    assert db.label == "pool"  # plain attribute: untouched
    assert db.closed is False  # plain property: untouched
    assert db.where() == "loopbridge-test"  # sync methods run on the loop's thread too
    assert db.size == 0  # a property giving an awaitable is awaited
    db.label = "renamed"  # setting goes to the async object
    assert db.aio.label == "renamed"
    assert db.fetch is db.fetch  # bound once, then found without __getattr__


def test_dual_objects_work_with_with_and_as_values(db: loopbridge.SyncFace[Pool]) -> None:
    with db.acquire() as conn:
        assert isinstance(conn, loopbridge.SyncFace)  # the connection is faced too
        assert conn.fetch("x")[0] == (0, "x")
        assert db.size == 1
        with conn.transaction():
            assert conn.in_tx is True
        assert conn.in_tx is False
    assert db.size == 0
    assert db.aio.events == ["commit"]

    conn = db.acquire()  # no `with`: used as a value, it is awaited once
    assert conn.fetch("y")[1] == (1, "y")
    assert db.size == 1
    db.release(conn)  # faces are unwrapped when passed back in
    assert db.size == 0


def test_an_error_in_with_reaches_aexit_and_propagates(db: loopbridge.SyncFace[Pool]) -> None:
    with db.acquire() as conn, pytest.raises(ZeroDivisionError), conn.transaction():
        1 / 0  # noqa: B018
    assert db.aio.events == ["rollback"]
    assert db.size == 0


def test_async_generators_are_lazy_and_closed_on_break_error_and_gc(
    db: loopbridge.SyncFace[Pool],
) -> None:
    events = db.aio.events
    with db.acquire() as conn:
        assert list(conn.rows(3)) == [0, 1, 2]
        assert events == ["rows closed on loopbridge-test"]
        events.clear()

        for i in conn.rows(100):
            if i == 5:
                break
        assert events == ["rows closed on loopbridge-test"]  # at once, not at exit
        events.clear()

        def fail_at_1() -> None:
            for i in conn.rows(100):
                if i == 1:
                    raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            fail_at_1()
        assert events == ["rows closed on loopbridge-test"]
        events.clear()

        it = iter(conn.rows(100))
        assert next(it) == 0
        del it
        gc.collect()
        assert events == ["rows closed on loopbridge-test"]


def test_class_based_async_iterators_get_aclose_on_early_exit(
    db: loopbridge.SyncFace[Pool],
) -> None:
    stream = db.stream()
    total = 0
    for n in stream:
        total += n
        if n == 10:
            break
    assert total == 55
    assert db.aio.events == ["stream aclose at 10"]


def test_bad_input_is_explained(worker: loopbridge.WorkerLoop) -> None:
    with pytest.raises(
        TypeError, match=r"got the class Pool; it needs an instance.*syncify\(Pool\)"
    ):
        loopbridge.sync_face(Pool)
    with pytest.raises(TypeError, match=r"got the async function .*Use syncify\(\)"):
        loopbridge.sync_face(make_pool)
    with pytest.raises(ValueError, match=r"sync_face\(timeout=...\) expects a positive number"):
        loopbridge.sync_face(object(), timeout=0)
    with pytest.raises(TypeError, match=r"sync_face\(\) got int: 3, a plain value"):
        loopbridge.sync_face(3, worker=worker)
    plain = loopbridge.sync_face(object(), worker=worker)
    # not an async context manager: no __enter__ (TypeError on 3.11+, AttributeError on 3.10)
    with pytest.raises((TypeError, AttributeError), match=r"context manager|__enter__"):  # noqa: SIM117
        with plain:  # type: ignore[attr-defined]
            pass
    with pytest.raises(AttributeError, match="nope"):
        _ = loopbridge.sync_face(make_pool(), worker=worker).nope


def test_timeout_applies_to_each_call(worker: loopbridge.WorkerLoop) -> None:
    class Slow:
        async def wait(self, s: float) -> float:
            await asyncio.sleep(s)
            return s

    face = loopbridge.sync_face(Slow(), worker=worker, timeout=0.3)
    assert face.wait(0.01) == 0.01
    with pytest.raises(TimeoutError, match=r"wait\(\) timed out after 0.3s"):
        face.wait(5)


def test_calls_from_the_worker_loop_raise_deadlock_error(
    db: loopbridge.SyncFace[Pool], worker: loopbridge.WorkerLoop
) -> None:
    async def inside() -> object:
        return db.fetch("q")

    with pytest.raises(loopbridge.DeadlockError):
        worker.run_sync(inside(), timeout=5)


def test_calls_from_a_coroutine_on_another_loop_warn(db: loopbridge.SyncFace[Pool]) -> None:
    async def main() -> object:
        return db.fetch("q")

    with pytest.warns(loopbridge.LoopBridgeWarning, match=r"await face.aio.fetch\(...\)") as rec:
        assert asyncio.run(main())[0] == (0, "q")
    assert rec[0].filename == __file__  # the caller's line, not loopbridge's


def test_many_threads_share_one_face(db: loopbridge.SyncFace[Pool]) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                with db.acquire() as conn:
                    conn.fetch("t")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert db.size == 0
    assert db.aio.made == 160
