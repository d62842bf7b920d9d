"""LB006: the running-loop RuntimeError caught, and the work skipped."""

import asyncio
import asyncio as aio
import logging

import anyio

log = logging.getLogger(__name__)


async def work() -> int:
    return 1


def quiet() -> None:
    try:
        asyncio.run(work())
    except RuntimeError:  # expect: LB006
        pass


def printed() -> None:
    try:
        asyncio.run(work())
    except RuntimeError:  # expect: LB006
        print("event loop already running, skipping")


def logged() -> int | None:
    try:
        return asyncio.run(work())
    except RuntimeError as e:  # expect: LB006
        log.warning("could not run: %s", e)
        return None


def with_others() -> None:
    try:
        asyncio.run(work())
    except (RuntimeError, ValueError):  # expect: LB006
        return


def only_the_running_one() -> None:
    try:
        asyncio.run(work())
    except RuntimeError as e:  # expect: LB006
        if "running" in str(e):
            pass
        else:
            raise


def broad_but_about_the_loop() -> None:
    try:
        asyncio.run(work())
    except Exception:  # expect: LB006
        log.debug("no event loop available here")


def per_item(items: list[int]) -> None:
    loop = asyncio.new_event_loop()
    for _ in items:
        try:
            loop.run_until_complete(work())
        except RuntimeError:  # expect: LB006
            continue


def aliased() -> int | None:
    result = None
    try:
        result = aio.run(work())
    except RuntimeError:  # expect: LB006
        result = None
    return result


def with_runner() -> None:
    try:
        with asyncio.Runner() as r:
            r.run(work())
    except RuntimeError:  # expect: LB006
        pass


def with_anyio() -> None:
    try:
        anyio.run(work)
    except RuntimeError:  # expect: LB006
        ...


# -- not findings ----------------------------------------------------------------------


def reraised() -> None:
    try:
        asyncio.run(work())
    except RuntimeError:  # ok: LB006
        raise


def falls_back_to_the_bridge() -> int:
    import loopbridge

    coro = work()
    try:
        return asyncio.run(coro)
    except RuntimeError:  # ok: LB006 (does the work another way)
        return loopbridge.run_sync(work())


def schedules_it() -> object:
    try:
        return asyncio.run(work())
    except RuntimeError:  # ok: LB006
        return asyncio.get_running_loop().create_task(work())


def hands_it_on() -> None:
    error = None
    try:
        asyncio.run(work())
    except RuntimeError as e:  # ok: LB006
        error = e
    if error:
        raise error


def other_error() -> None:
    try:
        asyncio.run(work())
    except ValueError:  # ok: LB006
        pass


def broad_generic() -> None:
    try:
        asyncio.run(work())
    except Exception:  # ok: LB006 (a broad except: ruff's S110/BLE001)
        pass


def no_loop_in_try() -> None:
    try:
        int("x")
    except RuntimeError:  # ok: LB006
        pass


def translated() -> None:
    try:
        asyncio.run(work())
    except RuntimeError as e:  # ok: LB006
        raise TypeError("call this from sync code") from e


def in_a_thread() -> None:
    import threading

    try:
        asyncio.run(work())
    except RuntimeError:  # ok: LB006
        t = threading.Thread(target=asyncio.run, args=(work(),))
        t.start()
        t.join()


class Collector:
    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            asyncio.run(work())
        except RuntimeError as exc:  # ok: LB006
            self.errors.append(exc)
