import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture(scope="session")
async def cache():  # ok: LB004
    yield redis.asyncio.Redis()


async def test_get(cache) -> None:
    await cache.get("k")
