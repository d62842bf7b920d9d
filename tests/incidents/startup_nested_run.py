"""Incident 1: start-up code that nests asyncio.run.

An async service (``asyncio.run(main())``) calls, while starting, a settings
library whose sync API fetches remote settings with ``asyncio.run``. Run with
INCIDENT_MODE:

- ``broken``: the library as it was: "asyncio.run() cannot be called from a
  running event loop". The service logs ``loopbridge.explain(exc)``.
- ``bridge``: the library switched to ``loopbridge.run_sync``: it works anywhere,
  and warns that it blocks the service's loop while it runs.
- ``fixed``: the service awaits the library's async form, ``run_async``.
"""

import asyncio
import os

import aiohttp

import loopbridge

SETTINGS_URL = os.environ["SETTINGS_URL"]
MODE = os.environ.get("INCIDENT_MODE", "broken")


async def fetch_settings(url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()  # type: ignore[no-any-return]


def load_settings() -> dict[str, object]:
    """The settings library's sync API."""
    if MODE == "broken":
        return asyncio.run(fetch_settings(SETTINGS_URL))
    return loopbridge.run_sync(fetch_settings(SETTINGS_URL), timeout=10)


async def load_settings_async() -> dict[str, object]:
    """The same, for async callers: the service's loop keeps running meanwhile."""
    return await loopbridge.run_async(fetch_settings(SETTINGS_URL), timeout=10)


async def main() -> None:
    settings = await load_settings_async() if MODE == "fixed" else load_settings()
    print("started with settings from", settings["path"])


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError as exc:
        print("start-up failed:", exc)
        print(loopbridge.explain(exc))
