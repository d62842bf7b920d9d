import pytest
import redis.asyncio


@pytest.fixture
async def cache():  # expect: LB004
    return redis.asyncio.from_url("redis://localhost")


async def test_get(cache) -> None:
    await cache.get("k")
