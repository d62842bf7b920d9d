"""LB003: a bare @pytest.mark.asyncio on a test is its closest asyncio mark, and it has
no loop_scope, so the module's loop_scope="module" does not apply: a loop per test."""

import pytest
import redis.asyncio

pytestmark = pytest.mark.asyncio(loop_scope="module")

client = redis.asyncio.Redis()  # expect: LB003


@pytest.mark.asyncio
async def test_set() -> None:
    await client.set("k", "v")


@pytest.mark.asyncio
async def test_get() -> None:
    await client.get("k")
