"""The module-level API: one default worker loop per process, started lazily."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable
from typing import TypeVar

from ._worker import (
    _CLOSED,
    _CLOSING,
    WorkerLoop,
    _get_running_loop,
    _strip_wrappers,
    _warn_run_sync_in_coroutine,
)

__all__ = ["default_worker", "run_async", "run_sync", "submit"]

T = TypeVar("T")

_default: WorkerLoop | None = None
_default_lock = threading.Lock()


def default_worker() -> WorkerLoop:
    """Return the process's default worker loop, creating it if needed.

    It is the loop :func:`run_sync` and :func:`submit` use. If it was closed,
    a new one takes its place; in a forked child it restarts on first use.

    Example::

        wl = loopbridge.default_worker()
        print(wl.thread_name, wl.state)     # loopbridge-default created
    """
    global _default
    worker = _default
    if worker is not None and worker._state not in (_CLOSING, _CLOSED):
        return worker
    with _default_lock:
        if _default is None or _default._state in (_CLOSING, _CLOSED):
            _default = WorkerLoop(name="default")
        return _default


def run_sync(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Run *awaitable* on the default worker loop and return its result.

    Works from any sync context: a script, any thread, or a thread whose own
    loop is running (a Jupyter cell, a sync function called by a coroutine).
    Objects created through it stay valid between calls, because every call
    runs on the same persistent loop.

    * ``timeout`` (seconds): cancel the task and raise ``TimeoutError``.
    * Ctrl-C / "Interrupt kernel": cancel the task, let it clean up (bounded),
      then re-raise ``KeyboardInterrupt``.
    * Exceptions come back with their type and the coroutine's traceback.
    * Context variables behave as if the caller had awaited the coroutine.
    * Raises :class:`DeadlockError` if called on the worker loop's own thread.

    Example::

        async def fetch(x):
            await asyncio.sleep(0.1)
            return x * 2

        assert loopbridge.run_sync(fetch(21), timeout=10) == 42
    """
    __tracebackhide__ = True
    worker = _default
    if worker is None or worker._state in (_CLOSING, _CLOSED):
        worker = default_worker()
    if _get_running_loop() is not None:
        _warn_run_sync_in_coroutine(worker, awaitable)
    try:
        call = worker._call_blocking(awaitable, timeout, "run_sync")
    except BaseException as err:  # noqa: BLE001 - re-raised, with the user's frames only
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    if call.exc is not None:
        exc, call.exc = call.exc, None
        raise exc
    return call.value  # type: ignore[no-any-return]


async def run_async(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Await *awaitable* on the default worker loop, from a coroutine on any loop.

    The awaitable twin of :func:`run_sync`, for async code that must use an object
    living on the worker loop (a client made with ``run_sync``) without blocking
    its own loop. Cancelling the awaiting task cancels the worker task and waits
    (at most ``cancel_timeout``) for its cleanup; ``timeout`` raises
    ``TimeoutError`` the same way; errors and context variables behave as for
    ``run_sync``.

    Example::

        async def make_pool():
            return await asyncpg.create_pool(DSN)

        pool = loopbridge.run_sync(make_pool())       # sync start-up: on the worker loop

        async def handler():                          # the app's own loop
            return await loopbridge.run_async(pool.fetchval("select 1"), timeout=5)
    """
    __tracebackhide__ = True
    worker = _default
    if worker is None or worker._state in (_CLOSING, _CLOSED):
        worker = default_worker()
    return await worker.run_async(awaitable, timeout=timeout)


def submit(awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
    """Schedule *awaitable* on the default worker loop; return a future at once.

    The returned ``concurrent.futures.Future`` works with ``.result(timeout)``,
    ``concurrent.futures.wait`` and ``asyncio.wrap_future``; cancelling it
    cancels the task.

    Example::

        futs = [loopbridge.submit(fetch(i)) for i in range(10)]
        values = [f.result(timeout=10) for f in futs]
    """
    return default_worker().submit(awaitable)
