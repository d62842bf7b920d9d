"""LB001 with a star import, conditional imports and a same-named function that is not
asyncio's."""

from asyncio import *  # noqa: F403

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

if uvloop is not None:
    import asyncio as lib
else:
    import asyncio as lib


async def fetch() -> int:
    return 1


async def via_star() -> int:
    return run(fetch())  # noqa: F405  # expect: LB001


async def via_conditional_import() -> int:
    return lib.run(fetch())  # expect: LB001


async def local_import() -> int:
    import asyncio as inner

    return inner.run(fetch())  # expect: LB001


# -- not findings ----------------------------------------------------------------------


class Runner:
    def run(self, job) -> None:
        return None


async def not_asyncio_runner() -> None:
    r = Runner()
    r.run(fetch)  # ok: LB001
