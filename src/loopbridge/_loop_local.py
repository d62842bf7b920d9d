"""``loop_local``: one instance of a resource per event loop, closed with its loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from . import _loops
from ._awaitables import describe

__all__ = ["LoopLocal", "loop_local"]

T = TypeVar("T")
log = logging.getLogger("loopbridge")


class _Entry:
    __slots__ = ("creating", "guard", "instance")

    def __init__(self) -> None:
        self.instance: Any = None
        self.creating: asyncio.Future[Any] | None = None  # aget() in progress
        self.guard: AsyncGenerator[None, None] | None = None


class LoopLocal(Generic[T]):
    """A resource with one instance per event loop; made by :func:`loop_local`.

    Call it inside a coroutine to get the running loop's instance, made on first
    use on that loop by ``factory()``. When that loop shuts down (``asyncio.run``
    ending, a :class:`WorkerLoop` closing, any loop whose owner calls
    ``loop.shutdown_asyncgens()``), the instance is closed on it, with ``close``
    (plain or async) or, by default, its ``aclose()`` / ``close()`` method.

    Example::

        session = loopbridge.loop_local(aiohttp.ClientSession)

        async def get_json(url):
            async with session().get(url) as r:   # this loop's own session
                return await r.json()
    """

    def __init__(
        self,
        factory: Callable[[], T | Awaitable[T]],
        *,
        close: Callable[[T], Any] | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(factory) or isinstance(factory, LoopLocal):
            raise TypeError(
                f"loop_local() expects a factory: a callable that makes the resource "
                f"(e.g. aiohttp.ClientSession), got {describe(factory)}."
            )
        if inspect.isawaitable(factory):
            raise TypeError(
                f"loop_local() got an awaitable ({describe(factory)}); pass the function "
                "that makes it, so that each loop gets its own."
            )
        if close is not None and not callable(close):
            raise TypeError(
                f"loop_local(close=...) expects a callable taking the instance (plain or "
                f"async), or None to use its aclose()/close(), got {describe(close)}."
            )
        self.factory = factory
        self.close = close
        self.name = name or getattr(factory, "__qualname__", None) or type(factory).__name__
        self._entries: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<loop_local {self.name} ({len(self._entries)} loop(s))>"

    def _entry(self) -> tuple[asyncio.AbstractEventLoop, _Entry]:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"loop_local {self.name!r} gives the instance of the running event loop, "
                "and no loop is running in this thread. Call it inside a coroutine (for "
                "example one run with loopbridge.run_sync)."
            ) from None
        entry = self._entries.get(loop)
        if entry is None:
            with self._lock:
                entry = self._entries.get(loop)
                if entry is None:
                    # Loops closed without shutting down their async generators
                    # never told us: forget them as we go.
                    for old in [lp for lp in self._entries if lp.is_closed()]:
                        del self._entries[old]
                    entry = self._entries[loop] = _Entry()
                _loops.remember(
                    loop,
                    f"a loop on which loop_local {self.name!r} made an instance",
                    replace=False,
                )
        return loop, entry

    def __call__(self) -> T:
        """This loop's instance, made now if it is the first use on this loop.

        Example::

            async def get(url):
                return await session().get(url)
        """
        loop, entry = self._entry()
        if entry.guard is not None:
            return entry.instance  # type: ignore[no-any-return]
        if entry.creating is not None:
            raise RuntimeError(
                f"loop_local {self.name!r} is being made by `await .aget()` on this loop; "
                "use `await .aget()` here too."
            )
        instance = self.factory()
        if inspect.iscoroutine(instance):
            instance.close()
            raise TypeError(
                f"the factory of loop_local {self.name!r} is async (it returned a "
                "coroutine): get the instance with `await x.aget()` instead of `x()`."
            )
        self._adopt(loop, entry, instance)
        return instance  # type: ignore[return-value]

    async def aget(self) -> T:
        """This loop's instance; awaits the factory's result if it is awaitable.

        Concurrent first calls on one loop share one creation.

        Example::

            pool = loopbridge.loop_local(lambda: asyncpg.create_pool(DSN))

            async def count():
                return await (await pool.aget()).fetchval("select count(*) from t")
        """
        loop, entry = self._entry()
        if entry.guard is not None:
            return entry.instance  # type: ignore[no-any-return]
        if entry.creating is not None:
            return await asyncio.shield(entry.creating)
        entry.creating = loop.create_future()
        try:
            instance = self.factory()
            if inspect.isawaitable(instance):
                instance = await instance
        except BaseException as exc:
            creating, entry.creating = entry.creating, None
            if not creating.done():
                creating.set_exception(exc)
                creating.exception()  # retrieved: waiters re-raise it
            raise
        self._adopt(loop, entry, instance)
        creating, entry.creating = entry.creating, None
        creating.set_result(instance)
        return instance

    def _adopt(self, loop: asyncio.AbstractEventLoop, entry: _Entry, instance: Any) -> None:
        """Keep *instance* for *loop*, and arrange for it to be closed when the loop shuts down.

        The hook is an async generator suspended at its first ``yield``:
        ``loop.shutdown_asyncgens()`` (run by ``asyncio.run``, ``asyncio.Runner``,
        loopbridge's workers and pytest-asyncio) calls its ``aclose()``, and its
        ``finally`` closes the instance while the loop can still run the cleanup.
        Nothing in asyncio is patched, and no task shows in ``asyncio.all_tasks()``.
        """
        entry.instance = instance
        guard = _closer(self, instance)
        firstiter, finalizer = sys.get_asyncgen_hooks()
        # Our own finalizer, so that a guard collected after its loop closed is
        # dropped quietly instead of reporting "Event loop is closed".
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=_finalizer_for(loop))
        try:
            step = guard.asend(None)
            try:
                step.send(None)
            except StopIteration:
                pass
        finally:
            sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
        entry.guard = guard
        if firstiter is None:
            log.warning(
                "loop_local %r: the running loop (%s) has no async generator hooks, so its "
                "instance will not be closed when the loop closes",
                self.name,
                type(loop).__name__,
            )

    def _forget(self, instance: object) -> None:
        with self._lock:
            for loop, entry in list(self._entries.items()):
                if entry.instance is instance:
                    del self._entries[loop]

    async def _close_instance(self, instance: Any) -> None:
        close = self.close
        if close is None:
            close = getattr(instance, "aclose", None) or getattr(instance, "close", None)
            if close is None:
                return
            result = close()
        else:
            result = close(instance)
        if inspect.isawaitable(result):
            await result


async def _closer(owner: LoopLocal[Any], instance: object) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        owner._forget(instance)
        try:
            await owner._close_instance(instance)
        except Exception:
            log.exception("loop_local %r: error closing %r", owner.name, instance)


def _finalizer_for(loop: asyncio.AbstractEventLoop) -> Callable[[AsyncGenerator[Any, Any]], None]:
    def finalize(agen: AsyncGenerator[Any, Any]) -> None:
        if loop.is_closed():
            return
        try:
            # as asyncio's own finaliser hook does; the loop's shutdown_asyncgens awaits it
            loop.call_soon_threadsafe(loop.create_task, agen.aclose())  # noqa: LB007
        except RuntimeError:  # closed in the meantime
            pass

    return finalize


def loop_local(
    factory: Callable[[], T | Awaitable[T]],
    *,
    close: Callable[[T], Any] | None = None,
    name: str | None = None,
) -> LoopLocal[T]:
    """One instance of a resource per event loop, made lazily and closed with its loop.

    A client such as ``aiohttp.ClientSession``, a redis or asyncpg pool is bound
    to the loop it was made on; used from another loop it fails with "attached to
    a different loop". ``loop_local(factory)`` hands each loop its own: inside a
    coroutine, ``x()`` returns the running loop's instance (``await x.aget()``
    when the factory is async). Threads racing for it are safe. The instance is
    closed on its loop when the loop shuts down, by ``close(instance)`` (plain or
    async) or, when ``close`` is None, by its ``aclose()``/``close()`` method.

    Example::

        session = loopbridge.loop_local(aiohttp.ClientSession)

        async def get_json(url):
            async with session().get(url) as r:
                return await r.json()

        loopbridge.run_sync(get_json(URL))   # on the worker loop
        asyncio.run(get_json(URL))           # on a fresh loop: its own session
    """
    return LoopLocal(factory, close=close, name=name)
