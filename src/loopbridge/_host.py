"""One task on the worker loop that owns an async context manager or iterator for its life.

A face's ``with`` block and a sync iterator over an async generator take several
blocking steps (enter ... exit; next, send, throw ... close). Run as separate
bridge calls, each step would be a task of its own, and everything bound to a task
would break between steps: anyio's task groups and cancel scopes, ``asyncio.timeout``
and ``TaskGroup``, a ``contextvars`` token set in ``__aenter__`` and reset in
``__aexit__``, an async generator that checks ``current_task()``. So each such
resource gets a *host*: one task that runs every step, in order, in one context.

Each step is still one ordinary bridge call (``_call_blocking``): timeouts, Ctrl-C,
``DeadlockError`` and cross-loop notes are the core's. The call hands the step to
the host and waits for its reply; if the call is cancelled (a timeout, Ctrl-C), the
host task is cancelled where the step is, and the call waits for the host to finish
handling it. Context variables the steps set are written back to the caller, as
``run_sync`` does. A host whose task is cancelled while idle (the worker closing,
``%aio cancel``) releases its resource in that task (``__aexit__`` with the
``CancelledError``, or ``aclose()``) before ending.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ._worker import _CLOSED, _CLOSING, WorkerLoop

__all__ = ["END", "Host"]

END: Any = object()  # what a step of an iterator returns when it is exhausted
_MISSING: Any = object()

# Hosts whose task is alive: kept referenced, so a dropped face never leaves a
# pending task for the garbage collector ("Task was destroyed but it is pending").
_live: set[Host] = set()


class _Ended(RuntimeError):
    pass


class Host:
    """The task that runs every step of one resource; see the module docstring."""

    __slots__ = (
        "ending",
        "finished",
        "name",
        "on_cancel",
        "ops",
        "task",
        "timeout",
        "tokens",
        "wake",
        "worker",
    )

    def __init__(
        self,
        worker: WorkerLoop,
        timeout: float | None,
        name: str,
        on_cancel: Callable[[BaseException], Awaitable[Any]] | None,
        *,
        ending: bool,
    ) -> None:
        self.worker = worker
        self.timeout = timeout
        self.name = name
        self.on_cancel = on_cancel  # release the resource if the task is cancelled while idle
        self.ending = ending  # an iterator's host: END (exhausted) ends it
        self.task: asyncio.Task[None] | None = None
        self.ops: collections.deque[tuple[Any, tuple[Any, ...], Any, bool]] = collections.deque()
        self.wake: asyncio.Future[None] | None = None
        self.finished = False
        # caller-side tokens of the vars the steps set, to undo a reset in the host
        self.tokens: dict[contextvars.ContextVar[Any], contextvars.Token[Any]] = {}

    @property
    def started(self) -> bool:
        return self.task is not None

    def step(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        final: bool = False,
        api: str = "",
        limit: float | None = None,
    ) -> Any:
        """Run ``await fn(*args)`` in the host task and return its result (blocking).

        One bridge call, bounded by *limit* (default: the face's timeout). The
        exception a step raises reaches the caller as it is.
        """
        __tracebackhide__ = True
        call = self.worker._call_blocking(
            self._send(fn, args, final),
            self.timeout if limit is None else limit,
            api or self.name,
        )
        if call.exc is not None:
            exc, call.exc = call.exc, None
            raise exc
        value, ctx = call.value
        self._share_context(ctx)
        return value

    def _share_context(self, ctx: contextvars.Context) -> None:
        """Give the caller what the steps set (a var set in ``__aenter__`` is seen in the
        block), and take it back when the host resets it (``__aexit__``'s reset)."""
        for var, value in ctx.items():
            if var.get(_MISSING) is not value:
                token = var.set(value)
                self.tokens.setdefault(var, token)
        for var in [v for v in self.tokens if v not in ctx]:
            token = self.tokens.pop(var)
            try:
                var.reset(token)  # back to the caller's own value from before
            except ValueError:
                pass  # set in another context of this thread: leave it

    def close_soon(self, fn: Callable[..., Awaitable[Any]]) -> None:
        """Queue a final step without waiting (from the GC, or on the worker thread)."""
        if self.task is None or self.finished or self.worker._state in (_CLOSING, _CLOSED):
            return  # never started, already over, or its loop is finalising it
        loop = self.task.get_loop()
        try:
            loop.call_soon_threadsafe(self._enqueue, fn, (), None, True)
        except RuntimeError:
            pass  # the loop closed meanwhile: its shutdown cancelled the host

    # -- on the worker loop -----------------------------------------------------

    async def _send(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], final: bool
    ) -> tuple[Any, contextvars.Context]:
        if self.finished:
            raise _Ended(
                f"{self.name}: its task on the worker loop has already ended (the "
                "resource was closed or exhausted, or the task was cancelled)"
            )
        loop = asyncio.get_running_loop()
        if self.task is None:
            # Created in this call's context, which is a copy of the caller's: the
            # host runs every step in one context of its own from here on.
            self.task = loop.create_task(self._run(), name=f"loopbridge face: {self.name}")
            _live.add(self)
        reply: asyncio.Future[Any] = loop.create_future()
        self._enqueue(fn, args, reply, final)
        try:
            return await asyncio.shield(reply)
        except asyncio.CancelledError:
            if not reply.done():
                # The caller gave up (timeout, Ctrl-C): interrupt the step where it
                # is, and let the host finish handling that before returning.
                self.task.cancel()
                try:
                    await reply
                except BaseException:  # noqa: BLE001 - the caller gets its CancelledError
                    pass
            raise

    def _enqueue(self, fn: Any, args: tuple[Any, ...], reply: Any, final: bool) -> None:
        self.ops.append((fn, args, reply, final))
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.ops:
                    self.wake = loop.create_future()
                    await self.wake
                fn, args, reply, final = self.ops.popleft()
                try:
                    value = await fn(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                    # A failed step ends the resource's life: an __aenter__ that raised
                    # is never exited, a generator that raised is finished.
                    if reply is not None and not reply.done():
                        reply.set_exception(exc)
                    return
                if reply is not None and not reply.done():
                    reply.set_result((value, contextvars.copy_context()))
                if final or (self.ending and value is END):
                    return
        except asyncio.CancelledError as cancelled:
            # Cancelled while idle: the worker is closing, or someone cancelled
            # this task. Release the resource here, in its own task, first.
            if self.on_cancel is not None:
                try:
                    await self.on_cancel(cancelled)
                except BaseException:  # noqa: BLE001 - the cancellation is what matters now
                    pass
            raise
        finally:
            self.finished = True
            _live.discard(self)
            while self.ops:
                _fn, _args, reply, _final = self.ops.popleft()
                if reply is not None and not reply.done():
                    reply.set_exception(
                        _Ended(f"{self.name}: its task on the worker loop ended first")
                    )


def on_worker_thread(worker: WorkerLoop) -> bool:
    return threading.get_ident() == worker._thread_id
