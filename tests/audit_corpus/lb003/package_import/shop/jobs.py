import asyncio

from .db import engine


async def nightly() -> None:
    async with engine.connect() as c:
        await c.exec_driver_sql("select 1")


def run_nightly() -> None:
    asyncio.run(nightly())


def run_report() -> None:
    asyncio.run(nightly())
