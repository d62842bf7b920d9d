"""Sync faces for every object shape (issue 12): task affinity, context-manager
factories, the full generator protocol, classes, and one loopbridge frame."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import traceback
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import pytest

import loopbridge

T = TypeVar("T")
trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="-")


# --- 1. task affinity ------------------------------------------------------------------------


class TaskBound:
    """An async context manager that must be exited in the task that entered it, as
    anyio's task groups and cancel scopes and asyncio.timeout() require."""

    def __init__(self) -> None:
        self.token: contextvars.Token[str] | None = None

    async def __aenter__(self) -> TaskBound:
        self.entered_in = asyncio.current_task()
        self.token = trace.set("inside")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if asyncio.current_task() is not self.entered_in:
            raise RuntimeError("exited in a different task than it was entered in")
        assert self.token is not None
        trace.reset(self.token)  # a Token works only in the Context that made it


def test_with_enters_and_exits_in_one_task(worker: loopbridge.WorkerLoop) -> None:
    face = loopbridge.sync_face(TaskBound(), worker=worker)
    with face:
        assert trace.get() == "inside"  # a var set in __aenter__ is visible in the block
    assert trace.get() == "-"  # and reset by __aexit__


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout and TaskGroup: 3.11+")
def test_task_group_and_timeout_held_open_across_a_with_block(
    worker: loopbridge.WorkerLoop,
) -> None:
    results: list[int] = []

    @asynccontextmanager
    async def workers() -> AsyncIterator[asyncio.TaskGroup]:
        async with asyncio.timeout(10), asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            yield tg

    async def job(i: int) -> None:
        await asyncio.sleep(0.01)
        results.append(i)

    open_workers = loopbridge.syncify(workers, worker=worker)
    with open_workers() as tg:
        for i in range(3):
            tg.create_task(job(i))
    assert sorted(results) == [0, 1, 2]  # the group waited for its tasks at exit


def test_anyio_task_group_across_a_with_block(worker: loopbridge.WorkerLoop) -> None:
    anyio = pytest.importorskip("anyio")

    @asynccontextmanager
    async def scope() -> AsyncIterator[Any]:
        async with anyio.create_task_group() as tg:
            yield tg

    seen: list[str] = []

    async def child() -> None:
        await anyio.sleep(0.01)
        seen.append("child")

    with loopbridge.syncify(scope, worker=worker)() as tg:
        tg.start_soon(child)
    assert seen == ["child"]


def test_an_async_generator_is_driven_from_one_task(worker: loopbridge.WorkerLoop) -> None:
    async def gen() -> AsyncIterator[int]:
        first = asyncio.current_task()
        for i in range(3):
            assert asyncio.current_task() is first
            yield i

    assert list(loopbridge.syncify(gen, worker=worker)()) == [0, 1, 2]


# --- 2. context-manager and iterator factories ----------------------------------------------


def test_syncify_an_asynccontextmanager_gives_a_sync_context_manager(
    worker: loopbridge.WorkerLoop,
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def opened(name: str) -> AsyncIterator[str]:
        events.append(f"open {name}")
        try:
            yield name.upper()
        finally:
            events.append(f"close {name}")

    sync_opened = loopbridge.syncify(opened, worker=worker)
    with sync_opened("db") as value:
        assert value == "DB"
    with pytest.raises(KeyError), sync_opened("x"):
        raise KeyError("in the block")
    assert events == ["open db", "close db", "open x", "close x"]


def test_suppression_by_aexit_is_kept(worker: loopbridge.WorkerLoop) -> None:
    @asynccontextmanager
    async def ignoring() -> AsyncIterator[None]:
        try:
            yield
        except ValueError:
            pass  # suppressed, as contextlib.suppress would

    with loopbridge.syncify(ignoring, worker=worker)():
        raise ValueError("swallowed")


def test_a_callable_returning_an_async_iterator_gives_a_sync_iterator(
    worker: loopbridge.WorkerLoop,
) -> None:
    class Ticker:
        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Ticker:
            return self

        async def __anext__(self) -> int:
            if self.n == 0:
                raise StopAsyncIteration
            self.n -= 1
            return self.n

    assert list(loopbridge.syncify(Ticker, worker=worker)(3)) == [2, 1, 0]

    def make_ticker(n: int) -> Ticker:
        return Ticker(n)

    assert list(loopbridge.syncify(make_ticker, worker=worker)(2)) == [1, 0]


def test_a_truly_sync_function_gets_advice_that_fits(worker: loopbridge.WorkerLoop) -> None:
    def plain(x: int) -> int:
        return x + 1

    with pytest.raises(TypeError, match=r"returned int: 2.*call it directly") as info:
        loopbridge.syncify(plain, worker=worker)(1)
    assert "async context manager" in str(info.value)  # says what would have worked


# --- 3. the full generator protocol ----------------------------------------------------------


def test_send_throw_and_close_reach_the_async_generator(worker: loopbridge.WorkerLoop) -> None:
    log: list[object] = []

    async def echo() -> AsyncIterator[object]:
        value: object = "start"
        try:
            while True:
                try:
                    value = yield value
                    log.append(("got", value))
                except ValueError as exc:
                    log.append(("caught", str(exc)))
                    value = "recovered"
        finally:
            log.append("finally")

    g = loopbridge.syncify(echo, worker=worker)()
    assert next(g) == "start"
    assert g.send(1) == 1
    assert g.throw(ValueError("bad")) == "recovered"
    g.close()
    assert log == [("got", 1), ("caught", "bad"), "finally"]


@pytest.mark.parametrize("exc_type", [GeneratorExit, KeyboardInterrupt])
def test_throw_of_base_exceptions_reaches_except_and_finally(
    worker: loopbridge.WorkerLoop, exc_type: type[BaseException]
) -> None:
    log: list[str] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
        except BaseException as exc:
            log.append(f"except {type(exc).__name__}")
            raise
        finally:
            log.append("finally")

    g = loopbridge.syncify(agen, worker=worker)()
    assert next(g) == 1
    with pytest.raises(exc_type):
        g.throw(exc_type())
    assert log == [f"except {exc_type.__name__}", "finally"]
    assert loopbridge.run_sync(asyncio.sleep(0, "served"), timeout=5) == "served"


def test_yield_from_delegates_send_and_throw(worker: loopbridge.WorkerLoop) -> None:
    async def doubler() -> AsyncIterator[int]:
        n = 0
        while True:
            try:
                n = yield n * 2
            except KeyError:
                n = -1

    def outer() -> Any:
        yield from loopbridge.syncify(doubler, worker=worker)()

    g = outer()
    assert next(g) == 0
    assert g.send(5) == 10
    assert g.throw(KeyError()) == -2
    g.close()


def test_send_to_a_plain_async_iterator_is_refused_clearly(worker: loopbridge.WorkerLoop) -> None:
    class Count:
        def __init__(self) -> None:
            self.i = 0

        def __aiter__(self) -> Count:
            return self

        async def __anext__(self) -> int:
            self.i += 1
            return self.i

    it = iter(loopbridge.sync_face(Count(), worker=worker))
    assert next(it) == 1
    with pytest.raises(TypeError, match=r"not an async generator.*asend"):
        it.send(5)


def test_dropped_generator_is_closed_in_its_task(worker: loopbridge.WorkerLoop) -> None:
    closed: list[str] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("closed")

    g = loopbridge.syncify(agen, worker=worker)()
    assert next(g) == 1
    del g
    gc.collect()
    for _ in range(50):
        if closed:
            break
        loopbridge.run_sync(asyncio.sleep(0.01), timeout=5)
    assert closed == ["closed"]


# --- 4. classes --------------------------------------------------------------------------------


class Base:
    """An async client base class."""

    KIND = "base"

    def __init__(self, name: str = "b") -> None:
        self.name = name

    @classmethod
    async def connect(cls, name: str) -> Base:
        """Make a connected client."""
        await asyncio.sleep(0)
        return cls(name)

    @staticmethod
    async def version() -> str:
        return "1.0"

    @staticmethod
    def kind_of(x: object) -> str:
        return type(x).__name__

    async def me(self) -> Base:
        return self

    async def greet(self, who: str) -> str:
        """Say hello."""
        return f"{self.name} greets {who}"


class Sub(Base):
    KIND = "sub"


def test_isinstance_and_issubclass_follow_the_async_classes(worker: loopbridge.WorkerLoop) -> None:
    SBase = loopbridge.syncify(Base, worker=worker)
    SSub = loopbridge.syncify(Sub, worker=worker)
    s = SSub("s")
    assert isinstance(s, SSub) and isinstance(s, SBase)
    assert issubclass(SSub, SBase) and not issubclass(SBase, SSub)
    assert not isinstance(SBase("b"), SSub)
    assert isinstance(loopbridge.sync_face(Sub(), worker=worker), SBase)  # any face of one


def test_class_level_methods_and_attributes(worker: loopbridge.WorkerLoop) -> None:
    SBase = loopbridge.syncify(Base, worker=worker)
    client = SBase.connect("c")
    assert isinstance(client, SBase) and client.greet("you") == "c greets you"
    assert SBase.version() == "1.0"
    assert SBase.kind_of(3) == "int"
    assert SBase.KIND == "base"
    assert SBase.connect.__doc__ == "Make a connected client."
    assert SBase.greet.__doc__ == "Say hello."  # methods read on the class keep their docs
    assert SBase.greet(client, "me") == "c greets me"
    assert SBase.__doc__ == "An async client base class."


def test_faces_of_one_object_are_equal_weakrefable_and_self_returns_self(
    worker: loopbridge.WorkerLoop,
) -> None:
    SBase = loopbridge.syncify(Base, worker=worker)
    b = SBase("x")
    assert b.me() is b  # a method returning self gives the very same face
    other = loopbridge.sync_face(b.aio, worker=worker)
    assert other == b and hash(other) == hash(b)
    assert b != SBase("y")
    ref = weakref.ref(b)
    assert ref() is b


def test_generic_subscription_and_subclassing(worker: loopbridge.WorkerLoop) -> None:
    class Box(Generic[T]):
        def __init__(self, item: T) -> None:
            self.item = item

        async def get(self) -> T:
            return self.item

    SBox = loopbridge.syncify(Box, worker=worker)
    assert SBox[int](3).get() == 3  # type: ignore[index]

    seen: list[str] = []

    class Tagged(loopbridge.syncify(Base, worker=worker)):  # type: ignore[misc]
        def __init_subclass__(cls, **kw: Any) -> None:
            seen.append(cls.__name__)

        def shout(self, who: str) -> str:
            return self.greet(who).upper()

    class Deeper(Tagged):
        pass

    assert Deeper("d").shout("you") == "D GREETS YOU"
    assert seen == ["Deeper"]


def test_async_getattr_is_awaited_not_faced(worker: loopbridge.WorkerLoop) -> None:
    class Remote:
        async def __getattr__(self, name: str) -> str:
            await asyncio.sleep(0)
            return f"remote {name}"

    face = loopbridge.sync_face(Remote(), worker=worker)
    assert face.anything == "remote anything"


def test_syncify_of_a_bound_method_keeps_self_and_func(worker: loopbridge.WorkerLoop) -> None:
    b = Base("m")
    greet = loopbridge.syncify(b.greet, worker=worker)
    assert greet.__self__ is b and greet.__func__ is Base.greet  # type: ignore[attr-defined]
    assert greet("you") == "m greets you"


# --- 5. one frame ------------------------------------------------------------------------------


def _loopbridge_frames(exc: BaseException) -> list[str]:
    pkg = loopbridge.__file__.rsplit("/", 1)[0]
    return [f.name for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(pkg)]


def test_tracebacks_through_every_face_show_one_loopbridge_frame(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def fail() -> None:
        raise ValueError("deep")

    async def failing_gen() -> AsyncIterator[int]:
        yield 1
        raise ValueError("in gen")

    class Client:
        async def call(self) -> None:
            raise ValueError("method")

        async def __aenter__(self) -> Client:
            raise ValueError("enter")

        async def __aexit__(self, *a: object) -> None:
            return None

    class Handle:
        """Awaitable and an async context manager (like asyncpg's pool.acquire())."""

        def __await__(self) -> Any:
            return fail().__await__()

        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *a: object) -> None:
            return None

    class Pool:
        async def ping(self) -> None:
            return None

        def acquire(self) -> Handle:
            return Handle()

    class Api:
        @classmethod
        async def make(cls) -> None:
            raise ValueError("deep")

        async def call(self) -> None:
            raise ValueError("method")

    SApi = loopbridge.syncify(Api, worker=worker)
    cases = [
        lambda: SApi.make(),
        lambda: SApi.call(SApi()),
        lambda: loopbridge.sync_face(fail(), worker=worker),
        lambda: loopbridge.sync_face(Pool(), worker=worker).acquire().anything,
        lambda: loopbridge.syncify(fail, worker=worker)(),
        lambda: list(loopbridge.syncify(failing_gen, worker=worker)()),
        lambda: loopbridge.sync_face(Client(), worker=worker).call(),
        lambda: loopbridge.sync_face(Client(), worker=worker).__enter__(),
    ]
    for case in cases:
        with pytest.raises(ValueError, match=r"deep|in gen|method|enter") as info:
            case()
        frames = _loopbridge_frames(info.value)
        assert len(frames) == 1, frames


def test_a_with_block_on_a_loop_with_a_classic_task_factory(
    worker: loopbridge.WorkerLoop,
) -> None:
    made: list[str] = []

    def classic(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__qualname__", "?"))
        return asyncio.Task(coro, loop=loop)

    async def install() -> None:
        asyncio.get_running_loop().set_task_factory(classic)  # type: ignore[arg-type]

    worker.run_sync(install(), timeout=5)
    face = loopbridge.sync_face(TaskBound(), worker=worker)
    with face:
        assert trace.get() == "inside"
    assert trace.get() == "-"
    assert any("Host._run" in m or "_run_capturing_context" in m for m in made)
