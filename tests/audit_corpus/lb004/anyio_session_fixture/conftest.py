"""Not LB004: AnyIO's plugin keeps one runner (one loop) while a wider async fixture
holds it, so the session client and every test share a loop."""

import pytest
import redis.asyncio


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
async def client():  # ok: LB004 (AnyIO: one runner for the fixture and the tests)
    c = redis.asyncio.Redis()
    yield c
    await c.aclose()
