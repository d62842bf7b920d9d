import pytest


@pytest.fixture
def cache():
    return {}


@pytest.mark.asyncio
async def test_b(cache) -> None:
    assert cache == {}
