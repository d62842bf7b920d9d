import pytest
import redis.asyncio


@pytest.fixture(scope="session")
def cache():  # expect: LB004
    return redis.asyncio.Redis()


@pytest.mark.asyncio
async def test_one(cache) -> None:
    await cache.get("a")


@pytest.mark.asyncio
async def test_two(cache) -> None:
    await cache.get("b")
