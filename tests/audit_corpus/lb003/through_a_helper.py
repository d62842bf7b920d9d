"""LB003 through a helper that runs its argument in a new loop."""

import asyncio

import aiohttp

session = aiohttp.ClientSession()  # expect: LB003


def run(coro):
    return asyncio.run(coro)


async def fetch(url: str) -> bytes:
    async with session.get(url) as r:
        return await r.read()


def page(url: str) -> bytes:
    return run(fetch(url))


def other_page(url: str) -> bytes:
    return run(fetch(url))
