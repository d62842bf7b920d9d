import pytest_asyncio
import redis.asyncio as redis


@pytest_asyncio.fixture(scope="session")
async def cache():  # expect: LB004
    client = redis.from_url("redis://localhost:6379/0")
    await client.flushdb()
    yield client
    await client.aclose()
