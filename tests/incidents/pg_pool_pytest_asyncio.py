"""Incident 2: a library's asyncio.run under pytest-asyncio, with a PostgreSQL pool
made by an async fixture.

A reporting library has a sync API over asyncpg. The application's test suite
makes the pool in an async fixture (on the test's loop), awaits it itself, and
calls the library. INCIDENT_MODE:

- ``broken``: the library runs each query with ``asyncio.run``.
- ``bridge``: the library switched to ``loopbridge.run_sync`` (the README's
  recipe for sync code), with the pool still made by the fixture.
- ``fixed``: the pool is ``loopbridge.loop_local``: the test's loop and the
  worker loop each get their own pool.
"""

import asyncio
import os

import asyncpg
import pytest
import pytest_asyncio

import loopbridge

DSN = os.environ["POSTGRES_DSN"]
MODE = os.environ.get("INCIDENT_MODE", "broken")
QUERY = "select count(*) from generate_series(1, 10)"


# --- the reporting library -------------------------------------------------------------


async def _count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(QUERY)  # type: ignore[no-any-return]


def row_count(pool: asyncpg.Pool) -> int:
    if MODE == "broken":
        return asyncio.run(_count(pool))
    return loopbridge.run_sync(_count(pool), timeout=10)


# --- the fix: one pool per loop ----------------------------------------------------------

pools = loopbridge.loop_local(lambda: asyncpg.create_pool(DSN, min_size=1, max_size=2))


async def _count_fixed() -> int:
    return await (await pools.aget()).fetchval(QUERY)  # type: ignore[no-any-return]


def row_count_fixed() -> int:
    return loopbridge.run_sync(_count_fixed(), timeout=10)


# --- the application's tests -------------------------------------------------------------


@pytest_asyncio.fixture
async def pool() -> asyncpg.Pool:
    p = await asyncpg.create_pool(DSN, min_size=1, max_size=2)
    yield p
    await p.close()


@pytest.mark.skipif(MODE == "fixed", reason="the broken shape")
@pytest.mark.asyncio
async def test_report(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("select 1") == 1  # the application's own await
    assert row_count(pool) == 10


@pytest.mark.skipif(MODE != "fixed", reason="the fixed shape")
@pytest.mark.asyncio
async def test_report_fixed() -> None:
    assert await (await pools.aget()).fetchval("select 1") == 1  # this loop's pool
    assert row_count_fixed() == 10  # the worker loop's pool
