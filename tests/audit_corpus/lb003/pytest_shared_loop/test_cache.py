"""Not LB003: every test of this module runs in one module-wide loop."""

import pytest
import redis.asyncio

pytestmark = pytest.mark.asyncio(loop_scope="module")

client = redis.asyncio.Redis()  # ok: LB003


async def test_set() -> None:
    await client.set("k", "v")


async def test_get() -> None:
    await client.get("k")
