"""LB003 as docs/audit.md shows it: the kept client is named in the coroutine passed to
asyncio.run (client.set(...)), not reached through a coroutine function."""

import asyncio

import redis.asyncio

client = redis.asyncio.Redis()  # expect: LB003
alone = redis.asyncio.Redis()  # ok: LB003 (one loop only)


def cmd_set():
    asyncio.run(client.set("k", "v"))


def cmd_get():
    asyncio.run(client.get("k"))


def cmd_alone():
    asyncio.run(alone.get("k"))
