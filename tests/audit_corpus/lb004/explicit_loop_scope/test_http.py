import aiohttp
import pytest
import pytest_asyncio


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def http():  # expect: LB004
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.asyncio
async def test_get(http) -> None:
    await http.get("http://localhost")
