import pytest

pytestmark = pytest.mark.anyio


async def test_a(client) -> None:
    assert await client.ping()


async def test_b(client) -> None:
    assert await client.ping()
