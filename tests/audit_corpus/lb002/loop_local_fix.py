"""Not LB002: the client is made per loop by loopbridge.loop_local."""

import asyncio

import loopbridge
import redis.asyncio

cache = loopbridge.loop_local(redis.asyncio.Redis)


async def get(key: str):
    return await cache().get(key)


def get_many(keys: list[str]) -> list:
    return [asyncio.run(get(k)) for k in keys]  # ok: LB002
