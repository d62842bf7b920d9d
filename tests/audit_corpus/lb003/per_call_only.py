"""Not LB003 but LB002: every loop that uses it is a new loop per task; LB002 reports
those calls and names the client."""

import asyncio

import redis.asyncio
from celery import shared_task

client = redis.asyncio.Redis()  # ok: LB003


async def touch(key: str) -> None:
    await client.set(key, "1")


@shared_task
def touch_a(key: str) -> None:
    asyncio.run(touch(key))  # expect: LB002


@shared_task
def touch_b(key: str) -> None:
    asyncio.run(touch(key))  # expect: LB002
