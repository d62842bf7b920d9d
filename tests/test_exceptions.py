"""5. Exceptions keep their type and frames; BaseExceptions do not kill the worker."""

from __future__ import annotations

import asyncio
import os
import traceback

import pytest

import loopbridge


class AppError(Exception):
    pass


async def level_two() -> None:
    await asyncio.sleep(0)
    raise AppError("deep")


async def level_one() -> None:
    await level_two()


def test_exception_type_message_and_coroutine_frames(worker: loopbridge.WorkerLoop) -> None:
    with pytest.raises(AppError, match="deep") as info:
        worker.run_sync(level_one(), timeout=5)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-2:] == ["level_one", "level_two"]
    # no asyncio internals, one bridge frame at most (the run_sync call itself)
    files = [f.filename for f in traceback.extract_tb(info.value.__traceback__)]
    asyncio_dir = os.path.dirname(asyncio.__file__)
    package_dir = os.path.dirname(loopbridge.__file__)  # not "loopbridge" in the path:
    assert not any(f.startswith(asyncio_dir) for f in files)  # a clone may be named so
    assert sum(f.startswith(package_dir) for f in files) <= 1


def test_module_run_sync_traceback_is_as_short(worker: loopbridge.WorkerLoop) -> None:
    with pytest.raises(AppError) as info:
        loopbridge.run_sync(level_one(), timeout=5)
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert names[-3:] == ["run_sync", "level_one", "level_two"]


def test_chained_exceptions_survive(worker: loopbridge.WorkerLoop) -> None:
    async def chained() -> None:
        try:
            raise KeyError("inner")
        except KeyError as e:
            raise AppError("outer") from e

    with pytest.raises(AppError) as info:
        worker.run_sync(chained(), timeout=5)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exception_reaches_caller_and_worker_survives(
    worker: loopbridge.WorkerLoop, exc_type: type[BaseException]
) -> None:
    async def raises() -> None:
        await asyncio.sleep(0)
        raise exc_type("from user code")

    async def raises_at_once() -> None:
        raise exc_type("before the first await")

    loop_before = worker.loop
    for coro in (raises(), raises_at_once()):
        with pytest.raises(exc_type):
            worker.run_sync(coro, timeout=5)
        assert worker.is_running
        assert worker.loop is loop_before  # the same loop, not a restarted one
        assert worker.run_sync(asyncio.sleep(0, "alive"), timeout=5) == "alive"


def test_base_exception_through_submit(worker: loopbridge.WorkerLoop) -> None:
    async def raises() -> None:
        await asyncio.sleep(0)
        raise SystemExit(3)

    fut = worker.submit(raises())
    with pytest.raises(SystemExit):
        fut.result(timeout=5)
    assert worker.run_sync(asyncio.sleep(0, "alive"), timeout=5) == "alive"


def test_exceptions_are_not_reported_as_never_retrieved(
    worker: loopbridge.WorkerLoop, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    for _ in range(5):
        with pytest.raises(AppError):
            worker.run_sync(level_one(), timeout=5)
    gc.collect()
    assert "never retrieved" not in caplog.text


def _bridge_frames(exc: BaseException) -> list[str]:
    package_dir = os.path.dirname(loopbridge.__file__)
    return [
        f"{f.name} ({os.path.basename(f.filename)})"
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(package_dir)
    ]


def test_map_sync_error_shows_the_users_frames_and_one_bridge_line(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def fetch(i: int) -> int:
        if i == 2:
            await level_one()
        return i

    with pytest.raises(AppError) as info:
        loopbridge.map_sync(fetch, range(4), worker=worker, timeout=5)
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert names[-3:] == ["fetch", "level_one", "level_two"], names
    assert _bridge_frames(info.value) == ["map_sync (_many.py)"]
    with pytest.raises(AppError) as info:
        loopbridge.gather_sync(fetch(2), worker=worker, timeout=5)
    assert _bridge_frames(info.value) == ["gather_sync (_many.py)"]


def test_refusals_show_at_the_call_site(worker: loopbridge.WorkerLoop) -> None:
    async def inner() -> None:
        worker.run_sync(asyncio.sleep(0))  # on the worker's own thread

    with pytest.raises(loopbridge.DeadlockError) as info:
        worker.run_sync(inner(), timeout=5)
    # the outer run_sync line, then the coroutine's line that made the bad call
    assert _bridge_frames(info.value) == ["run_sync (_worker.py)"]
    assert [f.name for f in traceback.extract_tb(info.value.__traceback__)][-2:] == [
        "run_sync",
        "inner",
    ]
    with pytest.raises(TypeError) as refused:
        loopbridge.run_sync(print)  # type: ignore[arg-type]
    assert _bridge_frames(refused.value) == ["run_sync (_bridge.py)"]
