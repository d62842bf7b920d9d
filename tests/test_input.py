"""8. Bad input gets a TypeError that says what was passed and what is expected."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Iterator

import pytest

import loopbridge


async def fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x


async def agen() -> AsyncIterator[int]:
    yield 1


def gen() -> Iterator[int]:
    yield 1


class AsyncCallable:
    async def __call__(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (
            fetch,
            r"coroutine function .*fetch.*Did you forget to call it\? "
            r"Use run_sync\(fetch\(\.\.\.\)\)",
        ),
        (functools.partial(fetch, 1), r"coroutine function .*Did you forget to call it"),
        (AsyncCallable(), r"coroutine function .*Did you forget to call it"),
        (42, r"expects a coroutine or another awaitable, got int: 42"),
        ("text", r"got str: 'text'"),
        (None, r"got NoneType: None"),
        (gen(), r"got a generator .*not awaitable"),
        (agen(), r"got an async generator .*async for"),
        (agen, r"async generator function"),
        (print, r"got builtin_function_or_method.*Did you call a sync function"),
        (concurrent.futures.Future(), r"concurrent.futures.Future .*\.result\(timeout"),
    ],
)
def test_bad_input_type_errors(worker: loopbridge.WorkerLoop, bad: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        worker.run_sync(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=match.replace("run_sync", "submit")):
        worker.submit(bad)  # type: ignore[arg-type]
    assert worker.run_sync(fetch(1), timeout=5) == 1


def test_module_level_functions_check_too() -> None:
    with pytest.raises(TypeError, match="Did you forget to call it"):
        loopbridge.run_sync(fetch)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Did you forget to call it"):
        loopbridge.submit(fetch)  # type: ignore[arg-type]


def test_other_awaitables_are_accepted(worker: loopbridge.WorkerLoop) -> None:
    class Awaitable:
        def __await__(self) -> Iterator[None]:
            yield from asyncio.sleep(0).__await__()
            return "custom"  # type: ignore[return-value]

    assert worker.run_sync(Awaitable(), timeout=5) == "custom"  # type: ignore[arg-type]


def test_future_on_the_worker_loop_is_accepted(worker: loopbridge.WorkerLoop) -> None:
    async def make_future() -> asyncio.Future[str]:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, "later")
        return fut

    fut = worker.run_sync(make_future(), timeout=5)
    assert worker.run_sync(fut, timeout=5) == "later"

    async def make_task() -> asyncio.Task[int]:
        return asyncio.ensure_future(fetch(9))

    assert worker.run_sync(worker.run_sync(make_task(), timeout=5), timeout=5) == 9


@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_future_of_another_loop_gives_a_clear_error(worker: loopbridge.WorkerLoop) -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        with pytest.raises(ValueError, match=r"bound to event loop .*MainThread.*own loop"):
            worker.run_sync(fut)

    asyncio.run(main())


def test_workerloop_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        loopbridge.WorkerLoop(name="")
    with pytest.raises(TypeError, match="loop_factory must be a callable"):
        loopbridge.WorkerLoop(loop_factory=asyncio.new_event_loop())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cancel_timeout"):
        loopbridge.WorkerLoop(cancel_timeout=-1)
    with pytest.raises(TypeError, match="debug must be True, False or None"):
        loopbridge.WorkerLoop(debug="yes")  # type: ignore[arg-type]


def test_loop_factory_returning_garbage() -> None:
    wl = loopbridge.WorkerLoop(name="bad", loop_factory=lambda: "not a loop")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"returned str: 'not a loop'.*expected a new event loop"):
        wl.start()
    closed = asyncio.new_event_loop()
    closed.close()
    wl2 = loopbridge.WorkerLoop(name="bad2", loop_factory=lambda: closed)
    with pytest.raises(ValueError, match="already closed"):
        wl2.start()
