"""Not LB003: a module-scoped async fixture holds AnyIO's runner, so both tests run in
its one loop."""

import pytest
import redis.asyncio

pytestmark = pytest.mark.anyio

client = redis.asyncio.Redis()  # ok: LB003 (one AnyIO runner for the module)


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def connected():
    await client.ping()
    yield client


async def test_set(connected) -> None:
    await connected.set("k", "v")


async def test_get(connected) -> None:
    await connected.get("k")
