"""LB001: a loop started inside a coroutine, spelt every way."""

import asyncio
import asyncio as aio
import functools
from asyncio import run
from asyncio import run as start

import anyio


async def fetch() -> int:
    return 1


async def direct() -> int:
    return asyncio.run(fetch())  # expect: LB001


async def aliased() -> int:
    return aio.run(fetch())  # expect: LB001


async def imported_name() -> int:
    return run(fetch())  # expect: LB001


async def imported_alias() -> int:
    return start(fetch())  # expect: LB001


async def old_style() -> int:
    loop = asyncio.get_event_loop()
    return loop.run_until_complete(fetch())  # expect: LB001


async def with_runner() -> int:
    with asyncio.Runner() as runner:
        return runner.run(fetch())  # expect: LB001


async def with_anyio() -> int:
    return anyio.run(fetch)  # expect: LB001


def logged(fn):
    @functools.wraps(fn)
    async def wrapper(*a, **k):
        return await fn(*a, **k)

    return wrapper


@logged
async def decorated() -> int:
    return asyncio.run(fetch())  # expect: LB001


class Service:
    async def refresh(self) -> int:
        return asyncio.run(fetch())  # expect: LB001


async def called_on_the_spot() -> int:
    return (lambda: asyncio.run(fetch()))()  # expect: LB001


# -- not findings ----------------------------------------------------------------------


def sync_main() -> int:
    return asyncio.run(fetch())  # ok: LB001


async def in_a_thread() -> int:
    return await asyncio.to_thread(asyncio.run, fetch())  # ok: LB001


async def via_executor() -> int:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: asyncio.run(fetch()))  # ok: LB001


async def returns_a_helper():
    def later() -> int:
        return asyncio.run(fetch())  # ok: LB001

    return later


if __name__ == "__main__":
    asyncio.run(direct())  # ok: LB001
