import pytest
import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture(scope="session")
async def redis_client():  # expect: LB004
    client = redis.asyncio.Redis()
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_set(redis_client) -> None:
    await redis_client.set("k", "v")
