import pytest
import redis
import redis.asyncio


@pytest.fixture(scope="session")
def cache():  # ok: LB004 (one test, one loop)
    return redis.asyncio.Redis()


@pytest.fixture(scope="session")
def sync_cache():  # ok: LB004 (not loop-bound)
    return redis.Redis()


@pytest.mark.asyncio
async def test_get(cache, sync_cache) -> None:
    await cache.get("k")


@pytest.mark.asyncio
async def test_sync(sync_cache) -> None:
    sync_cache.get("k")
