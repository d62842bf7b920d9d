"""Not LB004: the fixture runs in the session loop (asyncio_default_fixture_loop_scope),
but it makes a new client for each test and never uses it there; redis-py's client
binds to the loop of its first command, the test's own."""

import pytest
import redis.asyncio


@pytest.fixture
async def cache():  # ok: LB004 (one lazy client per test, first used in the test's loop)
    return redis.asyncio.from_url("redis://localhost")


async def test_get(cache) -> None:
    await cache.get("k")


async def test_set(cache) -> None:
    await cache.set("k", "v")
