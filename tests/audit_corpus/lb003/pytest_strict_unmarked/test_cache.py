"""Not LB003: in strict mode (the default) pytest-asyncio runs only marked tests, and
no other plugin takes these: no event loop runs them (pytest reports them itself)."""

import redis.asyncio

client = redis.asyncio.Redis()  # ok: LB003 (strict mode: these tests get no loop)


async def test_set() -> None:
    await client.set("k", "v")


async def test_get() -> None:
    await client.get("k")
