import asyncpg
import pytest
import pytest_asyncio


@pytest_asyncio.fixture(scope="session")
async def pool():  # expect: LB004
    p = await asyncpg.create_pool("postgresql://localhost/test")
    yield p
    await p.close()


@pytest.fixture
def repo(pool):
    return {"pool": pool}


@pytest.mark.asyncio
async def test_repo(repo) -> None:
    await repo["pool"].fetchval("select 1")
