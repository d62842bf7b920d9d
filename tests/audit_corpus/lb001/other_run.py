"""A ``run`` that is not asyncio's."""

from subprocess import run


async def shell() -> None:
    run(["true"])  # ok: LB001
