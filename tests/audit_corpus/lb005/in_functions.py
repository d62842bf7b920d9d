"""LB005 in sync functions: get_event_loop() to run or to test for a running loop."""

import asyncio


async def work() -> int:
    return 1


def old_idiom() -> int:
    loop = asyncio.get_event_loop()  # expect: LB005
    return loop.run_until_complete(work())


def is_there_a_loop() -> bool:
    return asyncio.get_event_loop().is_running()  # expect: LB005


def decide() -> object:
    loop = asyncio.get_event_loop()  # expect: LB005
    if loop.is_running():
        return loop.create_task(work())
    return loop.run_until_complete(work())  # expect: LB005


def decide_negated(loop: asyncio.AbstractEventLoop) -> object:
    if not loop.is_running():
        return loop.run_until_complete(work())  # expect: LB005
    return None


def decide_inline(loop: asyncio.AbstractEventLoop) -> object:
    return None if loop.is_running() else loop.run_until_complete(work())  # expect: LB005


def run_forever_idiom() -> None:
    asyncio.get_event_loop().run_forever()  # expect: LB005


# -- not findings ----------------------------------------------------------------------


async def inside_a_coroutine() -> int:
    loop = asyncio.get_event_loop()  # ok: LB005 (a loop runs here)
    return await loop.run_in_executor(None, int)


def the_right_question() -> bool:
    try:
        asyncio.get_running_loop()  # ok: LB005
    except RuntimeError:
        return False
    return True


def own_loop() -> int:
    loop = asyncio.new_event_loop()  # ok: LB005
    try:
        return loop.run_until_complete(work())  # ok: LB005
    finally:
        loop.close()


def just_fetched() -> object:
    return asyncio.get_event_loop()  # ok: LB005 (not run here, nor tested)


class Holder:
    def get_event_loop(self) -> None:
        return None

    def use(self) -> None:
        self.get_event_loop()  # ok: LB005 (not asyncio's)


async def running_check() -> bool:
    loop = asyncio.get_running_loop()
    return loop.is_running()  # ok: LB005
