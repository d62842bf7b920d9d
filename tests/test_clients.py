"""Loop-bound clients created through the bridge keep working between calls.

Each test first shows the failure users hit with a fresh loop per call, then
the bridge keeping one client alive across calls and threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.conftest import http_server_running
from tests.services import POSTGRES_DSN, REDIS_URL, require_port

import loopbridge

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


# -- Redis ---------------------------------------------------------------------


@pytest.fixture
def redis_client(worker: loopbridge.WorkerLoop) -> Iterator[Any]:
    require_port("127.0.0.1", 6379, "Redis")
    redis_asyncio = pytest.importorskip("redis.asyncio")

    async def make() -> Any:
        client = redis_asyncio.Redis.from_url(REDIS_URL)
        await client.ping()
        return client

    client = worker.run_sync(make(), timeout=10)
    yield client
    worker.run_sync(client.aclose(), timeout=10)


def test_redis_fresh_loop_per_call_breaks() -> None:
    require_port("127.0.0.1", 6379, "Redis")
    redis_asyncio = pytest.importorskip("redis.asyncio")
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    asyncio.run(client.set("loopbridge:test:a", "1"))
    with pytest.raises(RuntimeError) as info:  # the connection belongs to a closed loop
        asyncio.run(client.get("loopbridge:test:a"))
    assert "loop" in str(info.value).lower()


def test_redis_client_reused_across_calls_and_threads(
    worker: loopbridge.WorkerLoop, redis_client: Any
) -> None:
    worker.run_sync(redis_client.delete("loopbridge:test:n"), timeout=10)
    for _ in range(20):
        worker.run_sync(redis_client.incr("loopbridge:test:n"), timeout=10)

    def incr_many(_: int) -> None:
        for _ in range(25):
            worker.run_sync(redis_client.incr("loopbridge:test:n"), timeout=10)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(incr_many, range(8)))
    assert int(worker.run_sync(redis_client.get("loopbridge:test:n"), timeout=10)) == 220


def test_redis_client_from_a_fresh_loop_is_explained(worker: loopbridge.WorkerLoop) -> None:
    """The mixing case: a client used on asyncio.run's loop, then on the bridge."""
    require_port("127.0.0.1", 6379, "Redis")
    redis_asyncio = pytest.importorskip("redis.asyncio")
    client = redis_asyncio.Redis.from_url(REDIS_URL, single_connection_client=True)
    asyncio.run(client.ping())  # connection made on a loop that is now closed
    with pytest.raises(RuntimeError) as info:
        worker.run_sync(client.ping(), timeout=10)
    notes = "\n".join([*getattr(info.value, "__notes__", []), str(info.value)])
    assert "loopbridge:" in notes
    assert "worker loop 'test'" in notes


# -- PostgreSQL (asyncpg pool) ---------------------------------------------------


@pytest.fixture
def pg_pool(worker: loopbridge.WorkerLoop) -> Iterator[Any]:
    require_port("127.0.0.1", 5432, "PostgreSQL")
    asyncpg = pytest.importorskip("asyncpg")

    # create_pool() builds the Pool in the calling thread (it looks up the loop
    # there), so it has to be made inside a coroutine that runs on the worker.
    async def make() -> Any:
        return await asyncpg.create_pool(POSTGRES_DSN, min_size=1, max_size=4)

    pool = worker.run_sync(make(), timeout=15)
    yield pool
    worker.run_sync(pool.close(), timeout=15)


def test_asyncpg_pool_fresh_loop_per_call_breaks() -> None:
    require_port("127.0.0.1", 5432, "PostgreSQL")
    asyncpg = pytest.importorskip("asyncpg")

    async def make() -> Any:
        return await asyncpg.create_pool(POSTGRES_DSN, min_size=1, max_size=2)

    pool = asyncio.run(make())
    with pytest.raises((RuntimeError, asyncpg.InterfaceError)):
        asyncio.run(pool.fetchval("select 1"))


def test_asyncpg_pool_reused_across_calls_and_threads(
    worker: loopbridge.WorkerLoop, pg_pool: Any
) -> None:
    assert worker.run_sync(pg_pool.fetchval("select 40 + 2"), timeout=10) == 42

    async def in_transaction(i: int) -> int:
        async with pg_pool.acquire() as conn, conn.transaction():
            return int(await conn.fetchval("select $1::int * 2", i))

    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(lambda i: worker.run_sync(in_transaction(i), timeout=10), range(30))
        )
    assert results == [i * 2 for i in range(30)]


def test_asyncpg_query_cancelled_by_timeout_leaves_pool_usable(
    worker: loopbridge.WorkerLoop, pg_pool: Any
) -> None:
    with pytest.raises(TimeoutError):
        worker.run_sync(pg_pool.execute("select pg_sleep(30)"), timeout=0.3)
    assert worker.run_sync(pg_pool.fetchval("select 'still fine'"), timeout=10) == "still fine"


# -- aiohttp against a real local server -------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    with http_server_running() as url:
        yield url


def test_aiohttp_session_reused_across_calls(
    worker: loopbridge.WorkerLoop, http_server: str
) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def make() -> Any:
        return aiohttp.ClientSession()

    session = worker.run_sync(make(), timeout=10)

    async def get_json(path: str) -> Any:
        async with session.get(http_server + path) as resp:
            return await resp.json()

    try:
        first = worker.run_sync(get_json("/a"), timeout=10)
        with ThreadPoolExecutor(4) as pool:
            rest = list(
                pool.map(lambda i: worker.run_sync(get_json(f"/p{i}"), timeout=10), range(12))
            )
        assert first["path"] == "/a"
        assert sorted(r["path"] for r in rest) == sorted(f"/p{i}" for i in range(12))
        assert max(r["hit"] for r in rest) == 13
    finally:
        worker.run_sync(session.close(), timeout=10)


def test_aiohttp_session_from_asyncio_run_breaks_and_is_explained(
    worker: loopbridge.WorkerLoop, http_server: str
) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def make() -> Any:
        return aiohttp.ClientSession()

    session = asyncio.run(make())  # bound to a loop that closes right away

    async def get() -> Any:
        async with session.get(http_server + "/x") as resp:
            return await resp.text()

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(get(), timeout=10)
    text = "\n".join([str(info.value), *getattr(info.value, "__notes__", [])])
    assert "loopbridge:" in text, text
    session.detach()  # its loop is gone, so it cannot be closed; stop it warning at exit
