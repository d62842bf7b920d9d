"""LB003: one object, made once, used by several commands that each start a loop."""

import asyncio
import functools

import anyio
import asyncpg
import httpx
import redis.asyncio as aioredis

r = aioredis.Redis()  # expect: LB003
lock = asyncio.Lock()  # expect: LB003
http = httpx.AsyncClient()  # expect: LB003
queue: asyncio.Queue = asyncio.Queue()  # expect: LB003
_pool = None  # (assigned below through `global`)


async def get_pool():
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool("postgresql://localhost/test")  # expect: LB003
    return _pool


@functools.lru_cache(maxsize=None)
def session():  # expect: LB003
    import aiohttp

    return aiohttp.ClientSession()


class Api:
    client = httpx.AsyncClient()  # expect: LB003

    async def get(self, url: str):
        return await self.client.get(url)


async def set_key() -> None:
    async with lock:
        await r.set("k", "v")


async def get_key() -> None:
    async with lock:
        await r.get("k")


async def ping() -> None:
    await http.get("http://x")


async def put() -> None:
    await queue.put(1)


async def take() -> None:
    await queue.get()


async def count() -> int:
    pool = await get_pool()
    return await pool.fetchval("select 1")


async def download() -> None:
    await session().get("http://x")


def cmd_set() -> None:
    asyncio.run(set_key())


def cmd_get() -> None:
    asyncio.run(get_key())


def cmd_ping() -> None:
    anyio.run(ping)


def cmd_ping_again() -> None:
    anyio.run(ping)


def cmd_queue() -> None:
    with asyncio.Runner() as runner:
        runner.run(put())
    with asyncio.Runner() as runner:
        runner.run(take())


def cmd_count() -> None:
    print(asyncio.run(count()))


def cmd_count_twice() -> None:
    print(asyncio.run(count()))


def cmd_download() -> None:
    asyncio.run(download())
    asyncio.run(download())


def cmd_api() -> None:
    asyncio.run(Api().get("a"))
    asyncio.run(Api().get("b"))
