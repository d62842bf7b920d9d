"""The team's fix for 'asyncio.run() cannot be called from a running event loop':
move it into one helper. It still starts a loop inside whatever loop calls it."""

import asyncio


def run_sync(coro):
    return asyncio.run(coro)
