import pytest


@pytest.mark.asyncio
async def test_ping(api) -> None:
    await api.get("http://localhost")
