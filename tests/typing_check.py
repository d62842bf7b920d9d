"""Checked by mypy (make typecheck), not run: the public API keeps result types."""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import contextlib
from typing import Any

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


# -- sync faces (issue 4) ----------------------------------------------------------


@loopbridge.syncify
async def load_table(url: str, *, limit: int = 10) -> list[dict[str, int]]:
    await asyncio.sleep(0)
    return [{"n": limit}]


@loopbridge.syncify(timeout=5)
async def load_one(url: str) -> dict[str, int]:
    return {"n": len(url)}


async def numbers(n: int) -> collections.abc.AsyncIterator[int]:
    for i in range(n):
        yield i


@contextlib.asynccontextmanager
async def opened(path: str) -> collections.abc.AsyncIterator[str]:
    yield path


class Client:
    async def get(self, key: str) -> bytes:
        return key.encode()

    @loopbridge.syncify
    async def get_sync(self, key: str) -> bytes:
        return key.encode()


def check_faces() -> None:
    assert_type(load_table("u"), list[dict[str, int]])
    assert_type(load_table("u", limit=3), list[dict[str, int]])
    assert_type(load_one("u"), dict[str, int])
    assert_type(loopbridge.syncify(numbers)(3), collections.abc.Iterator[int])
    assert_type(Client().get_sync("k"), bytes)
    face = loopbridge.sync_face(Client())
    assert_type(face, loopbridge.SyncFace[Client])
    assert_type(face.aio, Client)
    sync_client = loopbridge.syncify(Client)
    assert_type(sync_client, type[loopbridge.SyncFace[Client]])
    assert_type(loopbridge.map_sync(fetch, [1, 2, 3]), list[list[str]])
    assert_type(loopbridge.gather_sync(fetch(1), fetch(2)), list[Any])
    local = loopbridge.loop_local(Client)
    assert_type(local, loopbridge.LoopLocal[Client])
    assert_type(local(), Client)
    # @asynccontextmanager functions give sync context managers (issue 12)
    with loopbridge.syncify(opened)("db") as name:
        assert_type(name, str)
    # ParamSpec keeps the parameters: these are errors (an unused ignore would fail mypy).
    load_table(1)  # type: ignore[arg-type]
    load_table("u", limit="3")  # type: ignore[arg-type]


async def check_run_async() -> None:
    assert_type(await loopbridge.run_async(fetch(1)), list[str])
    assert_type(await loopbridge.WorkerLoop().run_async(fetch(1), timeout=1), list[str])
