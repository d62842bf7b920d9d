"""LB002: a new loop per call through an executor, a thread, or a loop body."""

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import httpx
import redis
import redis.asyncio

session = aiohttp.ClientSession()  # expect: LB003 (also run once by main(), not per call)
client = httpx.AsyncClient()
plain = {"retries": 3}
sync_redis = redis.Redis()


@functools.cache
def get_redis():
    return redis.asyncio.Redis()


async def fetch(url: str) -> bytes:
    async with session.get(url) as r:
        return await r.read()


async def get_json(url: str) -> dict:
    return (await client.get(url)).json()


async def get_key(key: str):
    return await get_redis().get(key)


def head(url: str) -> bytes:
    return ThreadPoolExecutor(1).submit(asyncio.run, fetch(url)).result(timeout=10)  # expect: LB002


def describe(url: str) -> bytes:
    with ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(asyncio.run, fetch(url)).result()  # expect: LB002


def fetch_all(urls: list[str]) -> list[dict]:
    out = []
    for u in urls:
        out.append(asyncio.run(get_json(u)))  # expect: LB002
    return out


def fetch_keys(keys: list[str]) -> list:
    return [asyncio.run(get_key(k)) for k in keys]  # expect: LB002


def job(url: str) -> None:
    asyncio.run(get_json(url))  # expect: LB002


def worker() -> None:
    asyncio.run(get_key("x"))  # expect: LB002


def start() -> None:
    with ThreadPoolExecutor() as ex:
        ex.submit(job, "http://x")
    threading.Thread(target=worker).start()


class Table:
    def __init__(self) -> None:
        self.http = aiohttp.ClientSession()

    async def _column(self, name: str) -> bytes:
        async with self.http.get(name) as r:
            return await r.read()

    def describe_all(self, names: list[str]) -> list[bytes]:
        return [asyncio.run(self._column(n)) for n in names]  # expect: LB002


# -- not findings ----------------------------------------------------------------------


async def self_contained(url: str) -> bytes:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.read()


async def uses_plain_data() -> int:
    return plain["retries"]


async def uses_sync_redis() -> None:
    sync_redis.set("k", "v")


def fetch_each(urls: list[str]) -> list[bytes]:
    return [asyncio.run(self_contained(u)) for u in urls]  # ok: LB002


def count_each(n: int) -> list[int]:
    return [asyncio.run(uses_plain_data()) for _ in range(n)]  # ok: LB002


def poke_each(n: int) -> None:
    for _ in range(n):
        asyncio.run(uses_sync_redis())  # ok: LB002


def once() -> bytes:
    return ThreadPoolExecutor(1).submit(asyncio.run, self_contained("u")).result()  # ok: LB002


def main() -> None:
    asyncio.run(fetch("http://x"))  # ok: LB002
