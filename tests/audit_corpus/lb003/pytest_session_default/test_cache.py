"""Not LB003: the project runs every test in one session-wide loop (pytest.ini)."""

import redis.asyncio

client = redis.asyncio.Redis()  # ok: LB003


async def test_set() -> None:
    await client.set("k", "v")


async def test_get() -> None:
    await client.get("k")
