"""Not LB004: the hook pytest-asyncio's docs give puts every async test in the session
loop, the loop of the session fixture."""

import pytest
import pytest_asyncio
import redis.asyncio
from pytest_asyncio import is_async_test


def pytest_collection_modifyitems(items):
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if is_async_test(item):
            item.add_marker(session_loop, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client():  # ok: LB004 (the hook gives the tests the session loop)
    c = redis.asyncio.Redis()
    yield c
    await c.aclose()
