"""Incident 4: agent tools that wrap an aiohttp store with a thread pool + asyncio.run.

An agent (async) keeps a document store over an aiohttp session, made at start-up
on its loop and awaited by the agent itself. Its tools are sync functions that
the framework runs in a thread pool. INCIDENT_MODE:

- ``broken``: each tool call runs ``asyncio.run(store.get(...))``.
- ``bridge``: each tool call runs ``loopbridge.run_sync(store.get(...))``.
- ``fixed``: the session is ``loopbridge.loop_local(aiohttp.ClientSession)``:
  the agent's loop and the worker loop each use their own.
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

import loopbridge

STORE_URL = os.environ["STORE_URL"]
MODE = os.environ.get("INCIDENT_MODE", "broken")

sessions = loopbridge.loop_local(aiohttp.ClientSession)


class Store:
    def __init__(self, base: str) -> None:
        self.base = base
        self._session = None if MODE == "fixed" else aiohttp.ClientSession()

    @property
    def session(self) -> aiohttp.ClientSession:
        return sessions() if self._session is None else self._session

    async def get(self, key: str) -> Any:
        async with self.session.get(f"{self.base}/{key}") as response:
            return await response.json()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


store: Store


def lookup_tool(key: str) -> Any:
    """A sync tool, as agent frameworks call them (in a worker thread)."""
    if MODE == "broken":
        return asyncio.run(store.get(key))
    return loopbridge.run_sync(store.get(key), timeout=10)


async def agent() -> None:
    global store
    store = Store(STORE_URL)
    print("agent warm-up:", (await store.get("warm-up"))["path"])  # the agent's own await
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(4) as pool:
        try:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, lookup_tool, f"doc-{i}") for i in range(4))
            )
            print("tools:", sorted(r["path"] for r in results))
        except Exception as exc:
            print(f"tool failed: {type(exc).__name__}: {exc}")
            print(loopbridge.explain(exc))
    if MODE == "fixed":
        # The agent's own session still works. (In the broken shapes the tools may
        # have left a connection of it half-used: a later request can hang there.)
        print("agent again:", (await store.get("again"))["path"])
    await store.close()


if __name__ == "__main__":
    asyncio.run(agent())
