"""The behaviours users of the peers rely on (synchronicity, anyio's blocking portal,
asgiref's async_to_sync, Prefect's run_coro_as_sync), written for this API: blocking
calls, async generators, context managers, classes, exceptions, interrupts and
shutdown. The table in docs/faces.md says which peer has which."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tests.conftest import start_script, wait_for_line

import loopbridge

# --- blocking calls ----------------------------------------------------------------------------


def test_blocking_call_returns_the_value_and_runs_on_the_worker(
    worker: loopbridge.WorkerLoop,
) -> None:
    @loopbridge.syncify(worker=worker)
    async def where(x: int) -> tuple[int, str]:
        await asyncio.sleep(0)
        return x, threading.current_thread().name

    assert where(3) == (3, "loopbridge-test")  # the worker thread, not the caller's


def test_many_threads_call_one_function_at_once(worker: loopbridge.WorkerLoop) -> None:
    @loopbridge.syncify(worker=worker)
    async def square(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * x

    out: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: out.update({i: square(i)})) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {i: i * i for i in range(20)}


# --- async generators ----------------------------------------------------------------------------


def test_early_exit_closes_the_generator_and_the_next_one_starts_clean(
    worker: loopbridge.WorkerLoop,
) -> None:
    log: list[str] = []

    @loopbridge.syncify(worker=worker)
    async def rows(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
        finally:
            log.append(f"closed after {n}")

    for i in rows(10):
        if i == 2:
            break
    assert log == ["closed after 10"]
    assert list(rows(2)) == [0, 1] and log[-1] == "closed after 2"


def test_error_inside_the_loop_body_reaches_the_generator_finally(
    worker: loopbridge.WorkerLoop,
) -> None:
    log: list[str] = []

    @loopbridge.syncify(worker=worker)
    async def rows() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            log.append("finally")

    def consume() -> None:
        for _ in rows():
            1 / 0  # noqa: B018 - the error in the loop body is the point

    with pytest.raises(ZeroDivisionError):
        consume()
    assert log == ["finally"]


# --- context managers ---------------------------------------------------------------------------


def test_exception_in_the_block_reaches_aexit_with_its_traceback(
    worker: loopbridge.WorkerLoop,
) -> None:
    seen: list[object] = []

    @asynccontextmanager
    async def cm() -> AsyncIterator[None]:
        try:
            yield
        except KeyError as exc:
            seen.append(exc.__traceback__ is not None)
            raise

    with pytest.raises(KeyError), loopbridge.syncify(cm, worker=worker)():
        raise KeyError("x")
    assert seen == [True]


def test_error_in_aenter_skips_aexit(worker: loopbridge.WorkerLoop) -> None:
    class Broken:
        exited = False

        async def __aenter__(self) -> None:
            raise ConnectionError("refused")

        async def __aexit__(self, *exc: object) -> None:
            Broken.exited = True

    with (
        pytest.raises(ConnectionError, match="refused"),
        loopbridge.sync_face(Broken(), worker=worker),
    ):
        pass  # never reached
    assert Broken.exited is False


def test_nested_and_repeated_with_on_one_face(worker: loopbridge.WorkerLoop) -> None:
    lock = loopbridge.sync_face(worker.run_sync(_make_lock()), worker=worker)
    for _ in range(3):
        with lock:
            assert lock.locked()
        assert not lock.locked()


async def _make_lock() -> asyncio.Lock:
    return asyncio.Lock()


def test_one_face_entered_from_many_threads(worker: loopbridge.WorkerLoop) -> None:
    """Each thread's `with` has its own host: a shared lock face serialises threads."""
    lock = loopbridge.sync_face(worker.run_sync(_make_lock()), worker=worker)
    inside = 0
    most = 0

    def use() -> None:
        nonlocal inside, most
        for _ in range(5):
            with lock:
                inside += 1
                most = max(most, inside)
                time.sleep(0.002)
                inside -= 1

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert most == 1


# --- classes ------------------------------------------------------------------------------------


class Resource:
    def __init__(self) -> None:
        self._value = 1

    @property
    async def value(self) -> int:  # an awaitable property
        await asyncio.sleep(0)
        return self._value

    @property
    def plain(self) -> str:
        return "plain"


class Special(Resource):
    async def double(self) -> int:
        return 2 * await self.value


def test_inherited_methods_and_properties(worker: loopbridge.WorkerLoop) -> None:
    s = loopbridge.syncify(Special, worker=worker)()
    assert s.double() == 2
    assert s.value == 1  # awaited on the worker
    assert s.plain == "plain"
    assert isinstance(s, loopbridge.syncify(Resource, worker=worker))


# --- exceptions ---------------------------------------------------------------------------------


class Fatal(BaseException):
    """A BaseException that is neither KeyboardInterrupt nor SystemExit."""


def test_exception_chains_and_base_exceptions_come_back_as_they_are(
    worker: loopbridge.WorkerLoop,
) -> None:
    @loopbridge.syncify(worker=worker)
    async def chained() -> None:
        try:
            raise OSError("low level")
        except OSError as exc:
            raise RuntimeError("high level") from exc

    with pytest.raises(RuntimeError, match="high level") as info:
        chained()
    assert isinstance(info.value.__cause__, OSError)

    @loopbridge.syncify(worker=worker)
    async def fatal() -> None:
        raise Fatal("stop")

    with pytest.raises(Fatal):
        fatal()

    @loopbridge.syncify(worker=worker)
    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert worker.run_sync(asyncio.sleep(0, "still serving"), timeout=5) == "still serving"


# --- interrupts (a real Ctrl-C) ------------------------------------------------------------------

_CTRL_C_SCRIPT = """
import asyncio, loopbridge
from contextlib import asynccontextmanager

@loopbridge.syncify
async def ticks():
    try:
        while True:
            await asyncio.sleep(3600)
            yield 1
    finally:
        await asyncio.sleep(0.05)
        print("generator cleaned up", flush=True)

@asynccontextmanager
async def held():
    try:
        yield
    finally:
        print("context released", flush=True)

try:
    with loopbridge.syncify(held)():
        print("waiting", flush=True)
        for _ in ticks():
            pass
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
print("bridge still works:", loopbridge.run_sync(asyncio.sleep(0, 42), timeout=5), flush=True)
"""


def test_ctrl_c_while_a_face_iterator_waits() -> None:
    proc = start_script(_CTRL_C_SCRIPT)
    try:
        wait_for_line(proc, "waiting")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert out.splitlines() == [
        "generator cleaned up",  # the step was cancelled, the generator's finally ran
        "context released",  # then the with block was left, in its own task
        "KeyboardInterrupt",
        "bridge still works: 42",
    ], err


# --- shutdown during a call ----------------------------------------------------------------------


def test_worker_closed_while_a_with_block_is_open_releases_the_resource() -> None:
    wl = loopbridge.WorkerLoop(name="closing-faces", shutdown_timeout=2)
    released: list[str] = []

    @asynccontextmanager
    async def held() -> AsyncIterator[str]:
        try:
            yield "open"
        finally:
            released.append(f"released in {asyncio.current_task().get_name()}")  # type: ignore[union-attr]

    cm = loopbridge.syncify(held, worker=wl)()
    with pytest.raises(loopbridge.WorkerClosedError), cm as value:  # noqa: PT012
        assert value == "open"
        wl.close()  # e.g. another thread shuts the worker down
    assert released == ["released in loopbridge face: `with` _AsyncGeneratorContextManager"]


def test_worker_closed_during_a_blocking_face_call() -> None:
    wl = loopbridge.WorkerLoop(name="closing-call", shutdown_timeout=1)

    @loopbridge.syncify(worker=wl)
    async def forever() -> None:
        await asyncio.sleep(3600)

    threading.Timer(0.2, wl.close).start()
    with pytest.raises(loopbridge.WorkerClosedError, match="'closing-call'"):
        forever()
