"""LB001 through sync helpers: reported where the coroutine calls the helper."""

import asyncio
import threading


async def fetch() -> dict:
    return {}


def load_config() -> dict:
    return asyncio.run(fetch())


def settings() -> dict:
    return load_config()


async def startup() -> dict:
    return load_config()  # expect: LB001


async def two_levels_down() -> dict:
    return settings()  # expect: LB001


class Repo:
    def get_sync(self) -> dict:
        return asyncio.run(fetch())

    @classmethod
    def build(cls) -> dict:
        return asyncio.run(fetch())

    async def get(self) -> dict:
        return self.get_sync()  # expect: LB001


class BaseRepo:
    def load_sync(self) -> dict:
        return asyncio.run(fetch())


class UserRepo(BaseRepo):
    async def get(self) -> dict:
        return self.load_sync()  # expect: LB001 (an inherited method)


async def via_class() -> dict:
    return Repo.build()  # expect: LB001


async def with_nested_helper() -> dict:
    def helper() -> dict:
        return asyncio.run(fetch())

    return helper()  # expect: LB001


# -- not findings ----------------------------------------------------------------------


def safe_run(coro):
    """The usual guard: start a loop only where none runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # ok: LB001
    raise RuntimeError("call this from sync code")


def checked_run(coro):
    loop = asyncio._get_running_loop()
    if loop is None:
        return asyncio.run(coro)  # ok: LB001
    return loop.create_task(coro)


async def uses_guarded_helpers() -> None:
    safe_run(fetch())  # ok: LB001
    checked_run(fetch())  # ok: LB001


async def hands_helper_to_a_thread() -> None:
    t = threading.Thread(target=load_config)  # ok: LB001
    t.start()
    t.join()
