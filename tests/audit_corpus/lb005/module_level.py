"""LB005 at module level, where no loop runs."""

import asyncio
import asyncio as aio
from asyncio import get_event_loop


async def main() -> None:
    return None


loop = asyncio.get_event_loop()  # expect: LB005
aio.get_event_loop().run_until_complete(main())  # expect: LB005
other = get_event_loop()  # expect: LB005

policy = asyncio.get_event_loop_policy()  # ok: LB005
asyncio.run(main())  # ok: LB005
