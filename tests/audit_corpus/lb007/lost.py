"""LB007: tasks whose only reference is dropped, in shapes ruff's RUF006 does not see."""

import asyncio
import asyncio as aio


async def job() -> None:
    await asyncio.sleep(0)


async def with_a_loop_parameter(loop: asyncio.AbstractEventLoop) -> None:
    loop.create_task(job())  # expect: LB007


class Worker:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._loop = loop
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.loop.create_task(job())  # expect: LB007

    def start_private(self) -> None:
        self._loop.create_task(job())  # expect: LB007

    def kept(self) -> None:
        self.tasks.add(self.loop.create_task(job()))  # ok: LB007

    def schedule(self) -> None:
        self.loop.call_soon(self.start)  # ok: LB007


async def chained() -> None:
    asyncio.get_running_loop().create_task(job())  # expect: LB007
    asyncio.get_event_loop().create_task(job())  # expect: LB007


def from_a_thread(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon_threadsafe(asyncio.ensure_future, job())  # expect: LB007
    loop.call_soon_threadsafe(loop.create_task, job())  # expect: LB007


async def as_callbacks(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    loop.call_soon(asyncio.create_task, job())  # expect: LB007
    loop.call_later(1.0, aio.ensure_future, job())  # expect: LB007
    fut.add_done_callback(lambda f: asyncio.create_task(job()))  # expect: LB007
    loop.call_at(loop.time() + 1, asyncio.create_task, job())  # expect: LB007


# -- not findings ----------------------------------------------------------------------


async def kept_and_awaited(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(job())  # ok: LB007
    await task
    await loop.create_task(job())  # ok: LB007


async def ruff_reports_these() -> None:
    asyncio.create_task(job())  # noqa: RUF006  # ok: LB007 (RUF006's)
    running = asyncio.get_running_loop()
    running.create_task(job())  # noqa: RUF006  # ok: LB007 (RUF006's)


async def in_a_group() -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(job())  # ok: LB007


def returned(loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
    return loop.create_task(job())  # ok: LB007


async def plain_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon(print, "hello")  # ok: LB007
    loop.run_in_executor(None, print, "x")  # ok: LB007 (a future, not a task)


async def with_a_nursery(nursery) -> None:
    nursery.start_soon(job)  # ok: LB007
