import pytest
import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture
async def cache():  # ok: LB004
    client = redis.asyncio.Redis()
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_get(cache) -> None:
    await cache.get("k")
