"""LB002: a sync helper that starts its own loop and is called from several places, or
in a loop body: every call makes a new loop, and a kept client dies on the second
('Event loop is closed'). The kept object may be named in the coroutine itself, used
by the coroutine function, or handed in by the callers."""

import asyncio

import loopbridge
import redis
import redis.asyncio

client = redis.asyncio.Redis()
per_loop = loopbridge.loop_local(redis.asyncio.Redis)
sync_client = redis.Redis()
once = redis.asyncio.Redis()


async def read(key):
    return await client.get(key)


def get_price(sku):
    return asyncio.run(client.get(f"price:{sku}"))  # expect: LB002


def view_price(request):
    return get_price(request)


def view_cart(request):
    return get_price(request)


def get_with(conn, key):
    return asyncio.run(conn.get(key))  # expect: LB002


def handler_a():
    return get_with(client, "a")


def handler_b():
    return get_with(client, "b")


def read_one(key):
    return asyncio.run(read(key))  # expect: LB002


def read_all(keys):
    return [read_one(k) for k in keys]


class Repo:
    cache = redis.asyncio.Redis()

    def get_sync(self, key):
        return asyncio.run(self.cache.get(key))  # expect: LB002

    def first(self):
        return self.get_sync("first")

    def last(self):
        return self.get_sync("last")


# --- not LB002 -------------------------------------------------------------------------


def main_only():
    return asyncio.run(once.get("k"))  # ok: LB002 (called once: one loop)


def main():
    main_only()


async def with_own_client(key):
    c = redis.asyncio.Redis()
    try:
        return await c.get(key)
    finally:
        await c.aclose()


def fresh(key):
    return asyncio.run(with_own_client(key))  # ok: LB002 (its own client per loop)


def page_a():
    return fresh("a")


def page_b():
    return fresh("b")


def get_from(conn, key):
    return asyncio.run(conn.get(key))  # ok: LB002 (every caller passes a new client)


def fresh_a():
    return get_from(redis.asyncio.Redis(), "a")


def fresh_b():
    return get_from(redis.asyncio.Redis(), "b")


async def read_per_loop(key):
    return await per_loop().get(key)


def via_loop_local(key):
    return asyncio.run(read_per_loop(key))  # ok: LB002 (loop_local: one per loop)


def loop_local_a():
    return via_loop_local("a")


def loop_local_b():
    return via_loop_local("b")


async def read_sync_client(key):
    return sync_client.get(key)


def not_bound(key):
    return asyncio.run(read_sync_client(key))  # ok: LB002 (a sync client is not loop-bound)


def not_bound_a():
    return not_bound("a")


def not_bound_b():
    return not_bound("b")
