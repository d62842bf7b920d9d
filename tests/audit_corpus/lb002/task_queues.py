"""LB002: a job queue's task runs its coroutine in a fresh loop per task while a pool
or client made once lives on."""

import asyncio

import asyncpg
import dramatiq
import redis.asyncio as aioredis
from celery import Celery, shared_task
from rq.decorators import job

app = Celery("jobs")
cache = aioredis.from_url("redis://localhost")  # expect: LB003 (the route runs it too)
_pool = None


async def get_pool():
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool("postgresql://localhost/test")
    return _pool


async def save(row: dict) -> None:
    pool = await get_pool()
    await pool.execute("insert into t values ($1)", row["id"])


async def remember(key: str) -> None:
    await cache.set(key, "1")


@app.task
def store(row: dict) -> None:
    asyncio.run(save(row))  # expect: LB002


@shared_task
def mark(key: str) -> None:
    asyncio.run(remember(key))  # expect: LB002


@dramatiq.actor
def mark_later(key: str) -> None:
    asyncio.run(remember(key))  # expect: LB002


@job("default")
def mark_rq(key: str) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(remember(key))  # expect: LB002


@app.task
def store_with(pool: asyncpg.Pool, row: dict) -> None:
    asyncio.run(use_pool(pool, row))  # expect: LB002


async def use_pool(pool, row) -> None:
    await pool.execute("select 1")


# -- not findings ----------------------------------------------------------------------


async def save_own_pool(row: dict) -> None:
    pool = await asyncpg.create_pool("postgresql://localhost/test")
    try:
        await pool.execute("select 1")
    finally:
        await pool.close()


@app.task
def store_slow_but_correct(row: dict) -> None:
    asyncio.run(save_own_pool(row))  # ok: LB002


@app.route("/x")
def not_a_task() -> None:
    asyncio.run(remember("x"))  # ok: LB002


@app.task
def with_the_bridge(row: dict) -> None:
    import loopbridge

    loopbridge.run_sync(save(row))  # ok: LB002


@app.task
def sync_client_only(key: str) -> None:
    import redis

    r = redis.Redis()
    asyncio.run(touch(r, key))  # ok: LB002


async def touch(r, key: str) -> None:
    r.set(key, "1")
