"""Checked by mypy (make typecheck), not run: the public API keeps result types."""

from __future__ import annotations

import asyncio
import concurrent.futures

from typing_extensions import assert_type

import loopbridge


async def fetch(x: int) -> list[str]:
    await asyncio.sleep(0)
    return [str(x)]


def check() -> None:
    assert_type(loopbridge.run_sync(fetch(1)), list[str])
    assert_type(loopbridge.run_sync(fetch(1), timeout=2.5), list[str])
    assert_type(loopbridge.submit(fetch(1)), concurrent.futures.Future[list[str]])
    with loopbridge.WorkerLoop(name="db") as wl:
        assert_type(wl, loopbridge.WorkerLoop)
        assert_type(wl.run_sync(fetch(3)), list[str])
        assert_type(wl.submit(asyncio.sleep(0, 5)), concurrent.futures.Future[int])
        assert_type(wl.loop, asyncio.AbstractEventLoop)
    assert_type(loopbridge.default_worker(), loopbridge.WorkerLoop)
