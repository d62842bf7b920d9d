"""One task on the worker loop that owns an async context manager or iterator for its life.

A face's ``with`` block and a sync iterator over an async generator take several
blocking steps (enter ... exit; next, send, throw ... close). Run as separate
bridge calls, each step would be a task of its own, and everything bound to a task
would break between steps: anyio's task groups and cancel scopes, ``asyncio.timeout``
and ``TaskGroup``, a ``contextvars`` token set in ``__aenter__`` and reset in
``__aexit__``, an async generator that checks ``current_task()``. So each such
resource gets a *host*: one task that runs every step, in order, in one context.

Each step is still one ordinary bridge call (``_call_blocking``, so timeouts, Ctrl-C,
``DeadlockError``, the close sweep and cross-loop notes are the core's), but one
that runs no task of its own: on the loop, the call is handed to the host (a
*starter*), and the host finishes it when the step is done, so a step costs one
round trip, as ``run_sync`` does. Cancelling the call (a timeout, Ctrl-C) cancels
the host where the step is. Context variables the steps set are shared with the
caller, and taken back when a step resets them. A host whose task is cancelled
while idle (the worker closing, ``%aio cancel``) releases its resource in that task
(``__aexit__`` with the ``CancelledError``, or ``aclose()``) before ending.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import WorkerClosedError
from ._worker import _CLOSED, _CLOSING, WorkerLoop, _Call

__all__ = ["END", "Host"]

END: Any = object()  # what a step of an iterator returns when it is exhausted
_MISSING: Any = object()

# Hosts whose task is alive: kept referenced, so a dropped face never leaves a
# pending task for the garbage collector ("Task was destroyed but it is pending").
_live: set[Host] = set()


class _Ended(RuntimeError):
    pass


class _Step:
    """One step handed to a host: the call's handle for ``done()`` and ``cancel()``."""

    __slots__ = ("__qualname__", "args", "call", "cancelled", "final", "fn", "host")

    def __init__(
        self, host: Host, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], final: bool
    ) -> None:
        self.host = host
        self.fn = fn
        self.args = args
        self.final = final
        self.call: _Call | None = None
        self.cancelled = False
        self.__qualname__ = host.name  # how the bridge's messages name the call

    def done(self) -> bool:
        return self.call is None or self.call.finished

    def cancel(self) -> bool:
        """From the bridge (timeout, Ctrl-C): stop this step, queued or running."""
        host, call = self.host, self.call
        if call is None or call.finished:
            return False
        self.cancelled = True
        if host.current is self:
            assert host.task is not None
            host.task.cancel()  # interrupts the step where it is; the host ends
            return True
        try:
            host.ops.remove(self)
        except ValueError:
            return False
        host.finish(self, None, asyncio.CancelledError())
        return True

    def close(self) -> None:
        """The bridge closes a call's coroutine when dropping it; a step has none."""


class Host:
    """The task that runs every step of one resource; see the module docstring."""

    __slots__ = (
        "current",
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
        self.ops: collections.deque[_Step] = collections.deque()
        self.wake: asyncio.Future[None] | None = None
        self.current: _Step | None = None
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
        step = _Step(self, fn, args, final)
        call = self.worker._call_blocking(
            step,
            self.timeout if limit is None else limit,
            api or self.name,
            starter=self._start,
        )
        if call.exc is not None:
            exc, call.exc = call.exc, None
            raise exc
        value, ctx = call.value
        self._share_context(ctx)
        return value

    def close_soon(self, fn: Callable[..., Awaitable[Any]]) -> None:
        """Queue a final step without waiting (from the GC, or on the worker thread)."""
        if self.task is None or self.finished or self.worker._state in (_CLOSING, _CLOSED):
            return  # never started, already over, or its loop is finalising it
        try:
            self.task.get_loop().call_soon_threadsafe(self._enqueue, _Step(self, fn, (), True))
        except RuntimeError:
            pass  # the loop closed meanwhile: its shutdown cancelled the host

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

    # -- on the worker loop -----------------------------------------------------

    def _start(self, call: _Call) -> _Step:
        """The bridge's starter: take *call*'s step into this host (the first one starts it)."""
        step = call.coro
        assert isinstance(step, _Step)
        step.call = call
        if self.finished:
            raise _Ended(
                f"{self.name}: its task on the worker loop has already ended (the "
                "resource was closed or exhausted, or the task was cancelled)"
            )
        self._enqueue(step)
        if self.task is None:
            # The first step's context (a copy of the caller's) becomes the host's:
            # every step runs in it from here on.
            # Made the way the bridge makes a call's task: the loop's task factory,
            # classic (loop, coro) factories included, and eager start where it applies.
            task = self.worker._create_task(call.loop, self._run(), call)
            task.set_name(f"loopbridge face: {self.name}")
            self.task = task
            _live.add(self)
        return step

    def _enqueue(self, step: _Step) -> None:
        self.ops.append(step)
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def finish(self, step: _Step, value: Any, exc: BaseException | None) -> None:
        call = step.call
        if call is None:  # a close_soon step: nobody waits for it
            return
        if not call.finished:
            self.worker._finish_handed(call, value, exc, step.cancelled)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self.ops:
                    self.wake = loop.create_future()
                    await self.wake
                step = self.ops.popleft()
                self.current = step
                try:
                    value = await step.fn(*step.args)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                    # A failed step ends the resource's life: an __aenter__ that raised
                    # is never exited, a generator that raised is finished.
                    self.finish(step, None, exc)
                    return
                finally:
                    self.current = None
                self.finish(step, (value, contextvars.copy_context()), None)
                if step.final or (self.ending and value is END):
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
            closing = self.worker._closing_loops.get(id(loop))
            while self.ops:
                step = self.ops.popleft()
                self.finish(
                    step,
                    None,
                    WorkerClosedError(f"{closing} while this call was waiting on it.")
                    if closing
                    else _Ended(f"{self.name}: its task on the worker loop ended first"),
                )
