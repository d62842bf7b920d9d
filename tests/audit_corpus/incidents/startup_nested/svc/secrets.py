"""Secrets come from an async vault client; a sync wrapper was added for scripts."""

import asyncio


async def _read(name: str) -> str:
    await asyncio.sleep(0)
    return f"secret-{name}"


def read_secret(name: str) -> str:
    return asyncio.run(_read(name))
