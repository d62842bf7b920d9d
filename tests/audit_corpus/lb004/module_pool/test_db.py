import asyncpg
import pytest
import pytest_asyncio


@pytest_asyncio.fixture(scope="module")
async def pool():  # expect: LB004
    return await asyncpg.create_pool("postgresql://localhost/test")


@pytest.mark.asyncio
async def test_query(pool) -> None:
    await pool.fetchval("select 1")
