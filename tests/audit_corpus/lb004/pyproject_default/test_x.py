import aiohttp
import pytest


@pytest.fixture
async def session():  # expect: LB004
    async with aiohttp.ClientSession() as s:
        yield s


async def test_x(session) -> None:
    await session.get("http://localhost")
