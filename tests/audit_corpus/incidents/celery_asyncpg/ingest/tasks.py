"""Celery runs sync functions; each task bridges to the async code with asyncio.run."""

import asyncio

from celery import Celery

from . import db

app = Celery("ingest", broker="redis://localhost")


async def _store(event: dict) -> None:
    p = await db.pool()
    async with p.acquire() as conn:
        await conn.execute("insert into events(body) values ($1)", event)


@app.task(bind=True, max_retries=3)
def store_event(self, event: dict) -> None:
    asyncio.run(_store(event))  # expect: LB002
