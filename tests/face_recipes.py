"""One recipe per real async client: sync code written against its sync face.

Each recipe is source text defining ``make()`` (returns the face), ``use(db, i)``
(returns a value the test can check) and ``close(db)``. The same text runs in a
script, in threads and across the cells of a real kernel, which is the point:
one sync face, the same behaviour everywhere.
"""

from __future__ import annotations

AIOHTTP = """
import aiohttp, loopbridge

Session = loopbridge.syncify(aiohttp.ClientSession)   # built on the worker loop

def make():
    return Session()

def use(db, i):
    with db.get(f"{URL}/p{i}") as resp:                # the response is a face too
        assert resp.status == 200
        return resp.json()["path"]

def close(db):
    db.close()
"""

REDIS = """
import redis.asyncio as aioredis, loopbridge

def make():
    db = loopbridge.sync_face(aioredis.Redis.from_url(URL))
    db.delete(f"{PREFIX}:n")
    return db

def use(db, i):
    db.set(f"{PREFIX}:k{i}", i)
    with db.pipeline(transaction=True) as pipe:
        pipe.incr(f"{PREFIX}:n")
        pipe.get(f"{PREFIX}:k{i}")
        _, value = pipe.execute()
    keys = list(db.scan_iter(match=f"{PREFIX}:k{i}"))  # an async generator, iterated
    return f"{int(value)}:{len(keys)}"

def close(db):
    db.aclose()
"""

ASYNCPG = """
import asyncpg, loopbridge

def make():
    # create_pool binds to the loop it is called on: syncify calls it on the worker.
    pool = loopbridge.syncify(asyncpg.create_pool)(URL, min_size=1, max_size=4)
    return loopbridge.sync_face(pool)

def use(db, i):
    with db.acquire() as conn, conn.transaction():     # a handle, then a context manager
        total = sum(r[0] for r in conn.cursor("select generate_series(1, $1::int)", i + 1))
        same = conn.fetchval("select $1::int", total)
    return f"{same}"

def close(db):
    db.close()
"""

AIOSQLITE = """
import aiosqlite, loopbridge

def make():
    db = loopbridge.sync_face(aiosqlite.connect(URL))  # awaited on the worker
    db.execute("create table if not exists t (i integer)")
    return db

def use(db, i):
    db.execute("insert into t values (?)", (i,))
    db.commit()
    with db.execute("select i * 10 from t where i = ?", (i,)) as cur:
        (value,) = cur.fetchone()
    return f"{value}"

def close(db):
    db.close()
"""


def expected(name: str, i: int) -> str:
    return {
        "aiohttp": f"/p{i}",
        "redis": f"{i}:1",
        "asyncpg": f"{(i + 1) * (i + 2) // 2}",
        "aiosqlite": f"{i * 10}",
    }[name]


RECIPES = {"aiohttp": AIOHTTP, "redis": REDIS, "asyncpg": ASYNCPG, "aiosqlite": AIOSQLITE}
