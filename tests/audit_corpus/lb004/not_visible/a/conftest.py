import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture(scope="session")
async def cache():  # ok: LB004 (no test here uses it)
    yield redis.asyncio.Redis()
