"""LB003: AnyIO's plugin gives each test a new runner (a new loop) when no wider async
fixture keeps one alive."""

import pytest
import redis.asyncio

pytestmark = pytest.mark.anyio

client = redis.asyncio.Redis()  # expect: LB003


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_set() -> None:
    await client.set("k", "v")


async def test_get() -> None:
    await client.get("k")
