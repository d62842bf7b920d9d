"""Not LB003: the conftest hook puts every test in the session loop."""

import pytest
import redis.asyncio

client = redis.asyncio.Redis()  # ok: LB003 (one session loop, from the conftest hook)


@pytest.mark.asyncio
async def test_set() -> None:
    await client.set("k", "v")


@pytest.mark.asyncio
async def test_get() -> None:
    await client.get("k")
