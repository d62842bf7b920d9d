import pytest
import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cache():  # ok: LB004
    yield redis.asyncio.Redis()


@pytest.mark.asyncio(loop_scope="session")
async def test_get(cache) -> None:
    await cache.get("k")
