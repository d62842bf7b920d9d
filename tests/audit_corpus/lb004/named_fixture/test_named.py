from pytest import fixture, mark

import redis.asyncio


@fixture(scope="session", name="client")
async def _make_client():  # expect: LB004
    yield redis.asyncio.Redis()


@mark.asyncio
async def test_client(client) -> None:
    await client.ping()


@mark.asyncio
async def test_again(client) -> None:
    await client.ping()
