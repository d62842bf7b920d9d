"""LB003 in a test suite: a client made at import time, used by tests that each get
their own event loop (pytest-asyncio's default)."""

import pytest
import redis.asyncio

client = redis.asyncio.Redis()  # expect: LB003


@pytest.mark.asyncio
async def test_set() -> None:
    await client.set("k", "v")


@pytest.mark.asyncio
async def test_get() -> None:
    await client.get("k")
