import pytest
import pytest_asyncio
import redis.asyncio


@pytest_asyncio.fixture(scope="session")
async def cache():  # ok: LB004 (only sync tests use it)
    yield redis.asyncio.Redis()


def test_sync(cache) -> None:
    assert cache is not None
