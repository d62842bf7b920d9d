import httpx
import pytest_asyncio


@pytest_asyncio.fixture(scope="package")
async def api():  # expect: LB004
    client = httpx.AsyncClient()
    yield client
    await client.aclose()
