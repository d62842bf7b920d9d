"""10. Loop choice: loop_factory (uvloop), debug mode."""

from __future__ import annotations

import asyncio
import sys

import pytest

import loopbridge


async def loop_info() -> tuple[str, bool]:
    loop = asyncio.get_running_loop()
    return type(loop).__module__ + "." + type(loop).__name__, loop.get_debug()


def test_default_is_asyncio_without_debug(worker: loopbridge.WorkerLoop) -> None:
    kind, debug = worker.run_sync(loop_info(), timeout=5)
    assert kind.startswith("asyncio.") and debug is False


def test_debug_flag(caplog: pytest.LogCaptureFixture) -> None:
    with loopbridge.WorkerLoop(name="dbg", debug=True) as wl:
        assert wl.run_sync(loop_info(), timeout=5)[1] is True


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is POSIX only")
def test_uvloop_factory() -> None:
    uvloop = pytest.importorskip("uvloop")
    with loopbridge.WorkerLoop(name="uv", loop_factory=uvloop.new_event_loop) as wl:
        assert wl.run_sync(loop_info(), timeout=5)[0] == "uvloop.Loop"
        # the same guarantees hold on uvloop
        with pytest.raises(TimeoutError):
            wl.run_sync(asyncio.sleep(10), timeout=0.05)
        with pytest.raises(SystemExit):
            wl.run_sync(_raise_system_exit(), timeout=5)
        assert wl.run_sync(asyncio.sleep(0.01, "alive"), timeout=5) == "alive"
        futs = [wl.submit(asyncio.sleep(0.01, i)) for i in range(100)]
        assert [f.result(timeout=5) for f in futs] == list(range(100))


async def _raise_system_exit() -> None:
    await asyncio.sleep(0)
    raise SystemExit(1)


def test_custom_task_factory_is_respected(worker: loopbridge.WorkerLoop) -> None:
    made: list[str] = []

    def factory(loop, coro, **kw):  # type: ignore[no-untyped-def]
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kw)

    async def install() -> None:
        asyncio.get_running_loop().set_task_factory(factory)

    worker.run_sync(install(), timeout=5)
    for _ in range(3):
        worker.run_sync(loop_info(), timeout=5)
    assert len(made) == 3  # every call's task came from the loop's own factory
