"""Not LB003: one async test, one loop."""

import pytest
import redis.asyncio

client = redis.asyncio.Redis()  # ok: LB003


@pytest.mark.asyncio
async def test_only() -> None:
    await client.get("k")


def test_sync() -> None:
    assert client is not None
