import pytest


@pytest.mark.asyncio
async def test_a(client) -> None:
    assert await client.ping()


@pytest.mark.asyncio
async def test_b(client) -> None:
    assert await client.ping()
