import pytest
import pytest_asyncio
import redis.asyncio

pytestmark = [pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module")
async def cache():  # ok: LB004
    yield redis.asyncio.Redis()


async def test_get(cache) -> None:
    await cache.get("k")
