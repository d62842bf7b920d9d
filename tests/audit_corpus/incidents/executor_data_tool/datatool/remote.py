"""A sync, pandas-like face over an HTTP data service. Works in a notebook because
asyncio.run is pushed into a fresh thread for every call."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import aiohttp


def _run(coro):
    with ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(asyncio.run, coro).result()  # expect: LB002


class RemoteTable:
    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _get(self, path: str) -> dict:
        session = await self._http()
        async with session.get(f"{self.url}/{path}") as r:
            return await r.json()

    def head(self, n: int = 5) -> dict:
        return _run(self._get(f"head?n={n}"))

    def describe(self) -> dict:
        return _run(self._get("describe"))
