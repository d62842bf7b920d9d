"""Not LB003."""

import asyncio

import loopbridge
import redis
import redis.asyncio

once = redis.asyncio.Redis()  # ok: LB003 (one loop only)
per_loop = loopbridge.loop_local(redis.asyncio.Redis)  # ok: LB003
sync_client = redis.Redis()  # ok: LB003 (not loop-bound)
first = redis.asyncio.Redis()  # ok: LB003 (each used under one loop)
second = redis.asyncio.Redis()  # ok: LB003
unused_in_loops = redis.asyncio.Redis()  # ok: LB003


async def use_once() -> None:
    await once.get("k")


async def use_per_loop() -> None:
    await per_loop().get("k")


async def use_sync() -> None:
    sync_client.get("k")


async def use_first() -> None:
    await first.get("k")


async def use_second() -> None:
    await second.get("k")


async def shadowed(once) -> None:  # a parameter, not the global
    await once.get("k")


async def own_client() -> None:
    c = redis.asyncio.Redis()
    try:
        await c.get("k")
    finally:
        await c.aclose()


def main() -> None:
    asyncio.run(use_once())
    asyncio.run(use_per_loop())
    asyncio.run(use_per_loop())
    asyncio.run(use_sync())
    asyncio.run(use_sync())
    asyncio.run(use_first())
    asyncio.run(use_second())
    asyncio.run(shadowed(None))
    asyncio.run(own_client())
    asyncio.run(own_client())
    print(unused_in_loops)
