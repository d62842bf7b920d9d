import pytest
import pytest_asyncio


async def login() -> str:
    return "token"


@pytest_asyncio.fixture(scope="session")
async def token():  # ok: LB004 (plain data)
    return await login()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):  # ok: LB004 (a path)
    return tmp_path_factory.mktemp("data")


@pytest.mark.asyncio
async def test_uses(token, data_dir) -> None:
    assert token
