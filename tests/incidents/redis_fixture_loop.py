"""Incident 5: a redis client bound to the pytest fixture loop.

The application's sync helper reads prices through ``loopbridge.run_sync``;
its async code and its tests use the same ``redis.asyncio`` client. INCIDENT_MODE:

- ``bridge``: the client made by an async fixture, on the test's loop.
- ``fixed``: the client is ``loopbridge.loop_local``: the test's loop and the
  worker loop each get their own, each closed with its loop.
"""

import os

import pytest
import pytest_asyncio
import redis.asyncio as redis

import loopbridge

REDIS_URL = os.environ["REDIS_URL"]
MODE = os.environ.get("INCIDENT_MODE", "bridge")

clients = loopbridge.loop_local(lambda: redis.from_url(REDIS_URL))


# --- the application -----------------------------------------------------------------------


def cached_price(client: redis.Redis, sku: int) -> bytes | None:
    """The sync helper (the README's recipe: through the bridge)."""
    return loopbridge.run_sync(client.get(f"incident5:price:{sku}"), timeout=10)


async def _price(sku: int) -> bytes | None:
    return await clients().get(f"incident5:price:{sku}")  # type: ignore[no-any-return]


def cached_price_fixed(sku: int) -> bytes | None:
    return loopbridge.run_sync(_price(sku), timeout=10)


# --- its tests ------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def client() -> redis.Redis:
    c = redis.from_url(REDIS_URL)
    yield c
    await c.aclose()


@pytest.mark.skipif(MODE == "fixed", reason="the broken shape")
@pytest.mark.asyncio
async def test_price(client: redis.Redis) -> None:
    await client.set("incident5:price:1", "9.99")  # the test's own await, on its loop
    assert cached_price(client, 1) == b"9.99"


@pytest.mark.skipif(MODE != "fixed", reason="the fixed shape")
@pytest.mark.asyncio
async def test_price_fixed() -> None:
    await clients().set("incident5:price:1", "9.99")  # this loop's client
    assert cached_price_fixed(1) == b"9.99"  # the worker loop's client
