"""Not LB004: in strict mode (the default) pytest-asyncio does not run an async fixture
made with plain @pytest.fixture; pytest refuses the test for its own reason ('requested
an async fixture ... with no plugin or hook that handled it'), not a loop mismatch."""

import pytest
import redis.asyncio


@pytest.fixture(scope="session")
async def client():  # ok: LB004 (strict mode: not pytest-asyncio's fixture)
    yield redis.asyncio.Redis()


@pytest.mark.asyncio
async def test_a(client) -> None:
    await client.ping()
