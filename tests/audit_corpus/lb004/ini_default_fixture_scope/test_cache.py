import pytest
import redis.asyncio


@pytest.fixture
async def cache():  # expect: LB004
    client = redis.asyncio.from_url("redis://localhost")
    await client.ping()  # fail early if Redis is down: this binds it to the fixture's loop
    return client


async def test_get(cache) -> None:
    await cache.get("k")
