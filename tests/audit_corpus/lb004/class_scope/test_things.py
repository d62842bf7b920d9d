import aiosqlite
import pytest
import pytest_asyncio


@pytest_asyncio.fixture(scope="class")
async def db():  # expect: LB004
    conn = await aiosqlite.connect(":memory:")
    yield conn
    await conn.close()


class TestThings:
    @pytest.mark.asyncio
    async def test_a(self, db) -> None:
        await db.execute("select 1")

    @pytest.mark.asyncio
    async def test_b(self, db) -> None:
        await db.execute("select 2")
