"""WorkerLoop: one daemon thread running one event loop, and the hand-off of calls to it.

The hand-off is deliberately small (see docs/architecture.md): the caller makes
one ``call_soon_threadsafe`` carrying its context, then waits on a bare
``threading.Lock`` that the loop thread releases when the task is done. A lock
is the cheapest wait CPython has, and on POSIX its ``acquire`` is interrupted
by Ctrl-C, which is how a blocked caller learns it must cancel the work.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextvars
import functools
import logging
import math
import os
import sys
import threading
import time
import types
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from ._awaitables import _await_it, as_coroutine
from ._errors import (
    BridgeTimeoutError,
    DeadlockError,
    LoopBridgeWarning,
    WorkerClosedError,
    explain_cross_loop,
)

__all__ = ["WorkerLoop"]

T = TypeVar("T")
log = logging.getLogger("loopbridge")

# 3.12+: a task can run its first step inside create: a coroutine that finishes
# without suspending then costs no extra loop iteration.
_EAGER = sys.version_info >= (3, 12)
# 3.11+: create_task(context=...) lets the task run in the caller's context copy,
# which we can read back afterwards. 3.10 needs a small wrapper for that.
_TASK_CONTEXT = sys.version_info >= (3, 11)

_CREATED = "created"
_RUNNING = "running"
_CLOSING = "closing"
_CLOSED = "closed"
_DEAD = "dead"  # the loop stopped or its thread ended without close(): revived on next use
_FORKED = "forked"  # inherited through os.fork(): the thread does not exist here

_MISSING = object()
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))

# Every WorkerLoop, for fork handling and the clean close at interpreter exit.
_all_workers: weakref.WeakSet[WorkerLoop] = weakref.WeakSet()
# Called with each new worker loop, in its thread, before it runs (the IPython
# extension installs its task-tracking factory this way). Empty by default.
_new_loop_hooks: list[Callable[[asyncio.AbstractEventLoop], None]] = []
# Loops and threads inherited through fork. Never closed in the child: closing
# would unregister the parent's file descriptors from a shared epoll instance.
_abandoned: list[object] = []
# Tasks that ignored cancellation at close: kept alive so that they are not
# reported as "Task was destroyed but it is pending" during interpreter teardown.
_lingering: list[asyncio.Task[Any]] = []

# Deadlock detection between worker loops: which worker each *worker thread* is
# blocked on. Only worker threads can close a cycle, so plain threads skip this.
_worker_threads: set[int] = set()
_waiting_on: dict[int, WorkerLoop] = {}
_edges_lock = threading.Lock()


def _warn(message: str, category: type[Warning] = LoopBridgeWarning) -> None:
    """Warn, attributing the warning to the first frame outside loopbridge."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(_PKG_DIR,))
        return
    level = 2  # stacklevel 2 is our caller, frame 1 here
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _check_seconds(value: object, what: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds{' or None' if allow_none else ''}, "
            f"got {type(value).__name__}: {value!r}"
        )
    if math.isnan(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _write_back(ctx: contextvars.Context) -> None:
    """Make the caller's context show what the coroutine set, as ``await`` would."""
    for var, value in ctx.items():
        if var.get(_MISSING) is not value:
            var.set(value)


async def _run_capturing_context(coro: Awaitable[T], call: _Call) -> T:
    # 3.10 only: a task's context cannot be read from outside, so read it from
    # inside when the coroutine ends, for the write-back to the caller.
    try:
        return await coro
    finally:
        call.ctx_out = contextvars.copy_context()


_WRAPPER_CODES = (_run_capturing_context.__code__, _await_it.__code__)


def _strip_wrappers(exc: BaseException) -> BaseException:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code in _WRAPPER_CODES:
        tb = tb.tb_next
    return exc.with_traceback(tb)


class _Gen:
    """One started loop of a worker, with its inbox of calls not yet started.

    Calls go into the inbox and the loop is woken only if no wake-up is pending,
    so a burst of calls from many threads costs one wake-up, not one each.
    """

    __slots__ = ("closed", "inbox", "lock", "loop", "swept", "wakeup_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inbox: collections.deque[_Call] = collections.deque()
        self.wakeup_pending = False
        self.closed = False  # set when finalising starts: nothing new starts
        self.swept = False  # set when the in-flight calls were failed
        self.lock = threading.Lock()  # only for calls racing with the sweep


class _Call:
    """One hand-off: filled in on the loop thread, read by the caller after the lock."""

    __slots__ = (
        "cancel_delivered",
        "cancel_early",
        "coro",
        "ctx",
        "ctx_out",
        "exc",
        "finished",
        "future",
        "lock",
        "loop",
        "task",
        "value",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        ctx: contextvars.Context,
        lock: threading.Lock | None,
        future: _BridgeFuture[Any] | None,
    ) -> None:
        self.loop = loop
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.ctx = ctx
        self.ctx_out: contextvars.Context | None = None
        self.lock = lock
        self.future = future
        self.task: asyncio.Task[Any] | None = None
        self.value: Any = None
        self.exc: BaseException | None = None
        self.cancel_delivered = False
        self.cancel_early = False  # cancel asked for before the task existed
        self.finished = False


class _BridgeFuture(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` that refuses to block its own worker loop."""

    _worker: WorkerLoop

    def _check_thread(self, api: str) -> None:
        if not self.done() and threading.get_ident() == self._worker._thread_id:
            raise DeadlockError(
                f"Future.{api}() was called on the thread of worker loop "
                f"{self._worker.name!r}, which must run the task this future waits "
                "for; blocking here would wait forever. Inside a coroutine, use "
                "`await asyncio.wrap_future(fut)` instead."
            )

    def result(self, timeout: float | None = None) -> T:
        self._check_thread("result")
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._check_thread("exception")
        return super().exception(timeout)


class WorkerLoop:
    """An event loop running forever in its own named daemon thread.

    Sync code hands it awaitables with :meth:`run_sync` (wait for the result)
    or :meth:`submit` (get a ``concurrent.futures.Future``). The same loop
    serves every call, so objects created through it (an aiohttp session, a
    redis client, an asyncpg pool) stay valid between calls. The loop starts on
    first use, is replaced by a fresh one in a forked child or if it died, and
    is closed cleanly by :meth:`close`, at the end of a ``with`` block, or at
    interpreter exit.

    Args:
        name: shown in errors and in the thread's name (``loopbridge-<name>``).
        loop_factory: makes the event loop, e.g. ``uvloop.new_event_loop``;
            called in the worker thread. Default: ``asyncio.new_event_loop``.
        debug: run the loop in asyncio debug mode.
        cancel_timeout: how long a timed-out or interrupted call waits for its
            cancelled task to finish its cleanup before giving up on it.
        shutdown_timeout: the bound on :meth:`close` (cancel tasks, finalise
            async generators, shut down the default executor).

    Example::

        with loopbridge.WorkerLoop(name="db") as wl:
            rows = wl.run_sync(fetch_rows(), timeout=10)
    """

    def __init__(
        self,
        name: str = "worker",
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        debug: bool = False,
        cancel_timeout: float = 5.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if loop_factory is not None and not callable(loop_factory):
            raise TypeError(
                f"loop_factory must be a callable that returns a new event loop "
                f"(e.g. asyncio.new_event_loop or uvloop.new_event_loop), got {loop_factory!r}"
            )
        if not isinstance(debug, bool):
            raise TypeError(f"debug must be True or False, got {debug!r}")
        self.name = name
        self.loop_factory = loop_factory
        self.debug = debug
        self.cancel_timeout: float = _check_seconds(  # type: ignore[assignment]
            cancel_timeout, "cancel_timeout", allow_none=False
        )
        self.shutdown_timeout: float = _check_seconds(  # type: ignore[assignment]
            shutdown_timeout, "shutdown_timeout", allow_none=False
        )
        self._lock = threading.Lock()
        self._state = _CREATED
        self._closing = False
        self._gen: _Gen | None = None  # the current loop and its inbox
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._inflight: set[_Call] = set()
        self._generation = 0
        self._death: str | None = None
        # id(loop) -> why it is being finalised, while it is
        self._closing_loops: dict[int, str] = {}
        _all_workers.add(self)

    # -- public state -------------------------------------------------------

    @property
    def thread_name(self) -> str:
        """The worker thread's name, ``loopbridge-<name>``."""
        return f"loopbridge-{self.name}"

    @property
    def state(self) -> str:
        """One of ``created``, ``running``, ``closing``, ``closed``, ``dead``, ``forked``."""
        return self._state

    @property
    def is_running(self) -> bool:
        """True while the loop runs and accepts calls."""
        return self._state == _RUNNING

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._state in (_CLOSING, _CLOSED)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop of this worker (started if needed).

        Example::

            wl = loopbridge.WorkerLoop()
            wl.loop.call_soon_threadsafe(print, "hello from", wl.thread_name)
        """
        return self._loop_for_call().loop

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread, or None before the first start."""
        return self._thread

    def __repr__(self) -> str:
        loop = type(self._gen.loop).__name__ if self._gen is not None else None
        return (
            f"<WorkerLoop name={self.name!r} state={self._state} "
            f"thread={self.thread_name!r} loop={loop}>"
        )

    # -- life cycle -----------------------------------------------------------

    def start(self) -> WorkerLoop:
        """Start the thread and loop now instead of on first use; return self.

        Example::

            wl = loopbridge.WorkerLoop(name="io").start()
        """
        self._loop_for_call()
        return self

    def __enter__(self) -> WorkerLoop:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> None:
        """Cancel what is left, finalise async generators, shut down, close.

        Bounded by *timeout* (default: ``shutdown_timeout``). Idempotent. Called
        from a coroutine on this loop, it only schedules the close and returns.
        Calls waiting on the loop get :class:`WorkerClosedError`.

        Example::

            wl = loopbridge.WorkerLoop(name="db")
            wl.run_sync(work())
            wl.close()
        """
        wait = _check_seconds(
            self.shutdown_timeout if timeout is None else timeout, "timeout", allow_none=False
        )
        with self._lock:
            state = self._state
            if state in (_CLOSED, _CLOSING):
                thread = self._thread if state == _CLOSING else None
            elif state == _RUNNING:
                self._state = _CLOSING
                self._closing = True
                thread = self._thread
                assert self._gen is not None
                loop = self._gen.loop
                try:
                    loop.call_soon_threadsafe(loop.stop)
                except RuntimeError:  # the loop closed under us: it is finishing anyway
                    pass
            else:  # created, dead (already finalised) or inherited through fork
                self._state = _CLOSED
                return
        if thread is None or threading.get_ident() == thread.ident:
            return  # already closed, or called on the loop itself: the thread finishes it
        # Finalising is bounded by shutdown_timeout; the margin covers the
        # thread's own start-up of it.
        thread.join(self.shutdown_timeout + 1.0 if timeout is None else wait)
        if thread.is_alive():
            _warn(
                f"worker loop {self.name!r} did not finish closing within {wait}s: "
                "something is blocking its thread (a synchronous call inside a "
                "coroutine?). The daemon thread is left to end with the process."
            )

    # -- calls ----------------------------------------------------------------

    def run_sync(self, awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
        """Run *awaitable* on this worker loop and return its result.

        Blocks the calling thread, whatever loop may be running in it. On
        timeout the task is cancelled and ``TimeoutError`` raised; on Ctrl-C
        the task is cancelled, given ``cancel_timeout`` to clean up, and the
        ``KeyboardInterrupt`` re-raised. Context variables behave as if the
        caller had awaited the coroutine. Raises :class:`DeadlockError` if
        called on this loop's own thread.

        Example::

            async def add(a, b):
                await asyncio.sleep(0.1)
                return a + b

            assert wl.run_sync(add(1, 2), timeout=5) == 3
        """
        __tracebackhide__ = True
        call = self._call_blocking(awaitable, timeout, "run_sync")
        if call.exc is not None:
            exc, call.exc = call.exc, None
            raise exc
        return call.value  # type: ignore[no-any-return]

    def submit(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule *awaitable* on this loop and return a future at once.

        Cancelling the future cancels the task. The coroutine runs in a copy of
        the caller's context (like ``asyncio.create_task``).

        Example::

            fut = wl.submit(fetch(2))
            ...
            value = fut.result(timeout=10)
        """
        gen = self._loop_for_call(awaitable)
        coro = as_coroutine(awaitable, gen.loop, "submit")
        fut: _BridgeFuture[T] = _BridgeFuture()
        fut._worker = self
        call = self._schedule(gen, coro, contextvars.copy_context(), None, fut)
        fut.add_done_callback(functools.partial(self._future_done, call))
        return fut

    # -- caller side ------------------------------------------------------------

    def _call_blocking(
        self,
        awaitable: object,
        timeout: float | None,
        api: str,
        on_tick: Callable[[], None] | None = None,
    ) -> _Call:
        """Run *awaitable* and wait for it; *on_tick* runs in the caller about 10x/s."""
        __tracebackhide__ = True
        if timeout is not None:
            timeout = _check_seconds(timeout, "timeout", allow_none=True)
        gen = self._loop_for_call(awaitable)
        coro = as_coroutine(awaitable, gen.loop, api)
        me = threading.get_ident()
        if me == self._thread_id:
            coro.close()  # never started: close it so Python does not warn about it
            raise DeadlockError(
                f"{api}() was called on the thread of worker loop {self.name!r} "
                f"({self.thread_name}), the loop that would have to run "
                f"{_coro_name(coro)}: waiting here would block that loop forever. "
                "You are inside a coroutine that the bridge runs: `await` the "
                f"coroutine instead of calling {api}() (or call the async version of "
                "the API)."
            )
        ctx = contextvars.copy_context()
        lock = threading.Lock()
        lock.acquire()
        # The wait edge goes in before scheduling: the coroutine may call back at once.
        edge = me in _worker_threads and self._add_wait_edge(me, coro, api)
        watch = _calling_task() if _TASK_CONTEXT else None
        try:
            call = self._schedule(gen, coro, ctx, lock, None)
            try:
                if watch is None and on_tick is None:
                    done = lock.acquire(True, -1 if timeout is None else timeout)
                else:
                    done = _wait_watching(lock, timeout, watch, on_tick)
            except BaseException:
                # KeyboardInterrupt from Ctrl-C / "Interrupt kernel", or another
                # asynchronous exception: the work must not be left running.
                self._cancel_and_wait(call, "interrupted")
                raise
            finally:
                ctx_out = call.ctx_out if not _TASK_CONTEXT else (ctx if call.task else None)
                if ctx_out is not None:
                    _write_back(ctx_out)
            if not done:
                self._cancel_and_wait(call, f"timed out after {timeout}s")
                if call.cancel_delivered or not call.finished:
                    cause = call.exc if not isinstance(call.exc, asyncio.CancelledError) else None
                    call.exc = BridgeTimeoutError(
                        f"{api}() timed out after {timeout}s waiting for "
                        f"{_coro_name(coro)}; the task was cancelled on worker "
                        f"loop {self.name!r}."
                    )
                    call.exc.__cause__ = cause
                    return call
        finally:
            if edge:
                with _edges_lock:
                    _waiting_on.pop(me, None)
        if call.exc is not None:
            exc = _strip_wrappers(call.exc) if call.exc.__traceback__ else call.exc
            explain_cross_loop(exc, self, in_caller=True)
            call.exc = exc
        return call

    def _add_wait_edge(self, me: int, coro: Coroutine[Any, Any, Any], api: str) -> bool:
        """Refuse a wait that closes a cycle of worker loops waiting on each other."""
        with _edges_lock:
            owner = self._thread_id
            for _ in range(len(_waiting_on) + 1):
                target = _waiting_on.get(owner)  # type: ignore[arg-type]
                if target is None:
                    break
                if target._thread_id == me:
                    coro.close()
                    raise DeadlockError(
                        f"{api}() on worker loop {self.name!r} would deadlock: that loop "
                        f"is itself blocked waiting for worker loop {target.name!r}, "
                        "whose thread is making this call. Await the coroutine instead, "
                        "or use submit() and do not wait on it from the worker thread."
                    )
                owner = target._thread_id
            _waiting_on[me] = self
        return True

    def _schedule(
        self,
        gen: _Gen,
        coro: Coroutine[Any, Any, Any],
        ctx: contextvars.Context,
        lock: threading.Lock | None,
        future: _BridgeFuture[Any] | None,
    ) -> _Call:
        call = _Call(gen.loop, coro, ctx, lock, future)
        # Registered before anything else: a loop that closes before starting
        # the call finds it here and fails it, so no caller waits forever.
        self._inflight.add(call)
        gen.inbox.append(call)
        if gen.closed:
            self._refuse_if_swept(gen, call)
        elif not gen.wakeup_pending:
            gen.wakeup_pending = True
            try:
                gen.loop.call_soon_threadsafe(self._drain, gen, context=contextvars.Context())
            except RuntimeError:  # closed between our check and now
                self._refuse_if_swept(gen, call)
        return call

    def _refuse_if_swept(self, gen: _Gen, call: _Call) -> None:
        """The loop is closing: fail *call* now unless the final sweep will."""
        with gen.lock:
            if not gen.swept or call.finished:
                return  # the sweep has not run yet: it will fail this call
            call.finished = True
            self._inflight.discard(call)
        if call.coro is not None:
            call.coro.close()
        raise WorkerClosedError(
            f"worker loop {self.name!r} closed while this call was being made; "
            "try again (the default worker restarts on its own)."
        )

    def _cancel_and_wait(self, call: _Call, why: str) -> None:
        try:
            call.loop.call_soon_threadsafe(self._cancel_call, call)
        except RuntimeError:
            pass  # closed: the finaliser has failed (or will fail) the call
        assert call.lock is not None
        # A second Ctrl-C here interrupts the grace wait itself, as users expect.
        if not call.lock.acquire(True, self.cancel_timeout):
            _warn(
                f"a call to worker loop {self.name!r} {why}; its task "
                f"{_coro_name(call.task or call.coro)} was cancelled but had not finished "
                f"{self.cancel_timeout}s later (it may be ignoring cancellation or "
                "blocking the loop). It keeps running there."
            )

    # -- loop side (these run on the worker thread) -----------------------------

    def _drain(self, gen: _Gen) -> None:
        # Cleared before draining: a call appended from now on schedules a new
        # drain if this one has already passed it, so none is left behind.
        gen.wakeup_pending = False
        inbox = gen.inbox
        while inbox and not gen.closed:  # once closing, the final sweep fails them
            self._start_call(inbox.popleft())

    def _start_call(self, call: _Call) -> None:
        loop = call.loop
        coro = call.coro
        assert coro is not None
        fut = call.future
        if call.cancel_early or (fut is not None and fut.cancelled()):
            coro.close()  # cancelled before it could start: it never runs
            call.exc = asyncio.CancelledError()
            self._finish(call)
            return
        try:
            factory = loop.get_task_factory()
            if _EAGER and factory is None:
                task: asyncio.Task[Any] = asyncio.Task(
                    coro,
                    loop=loop,
                    context=call.ctx,
                    eager_start=True,  # type: ignore[call-arg]
                )
            elif _EAGER and getattr(factory, "__loopbridge_eager__", False):
                # our own recording factory (the IPython extension): keeps eager start
                eager: Any = factory
                task = eager(loop, coro, context=call.ctx, eager_start=True)
            elif _TASK_CONTEXT:
                task = loop.create_task(coro, context=call.ctx)  # type: ignore[call-arg,unused-ignore]
            else:
                task = call.ctx.run(loop.create_task, _run_capturing_context(coro, call))
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised by the coroutine's eager first step: it belongs to the caller.
            call.exc = exc
            self._finish(call)
            return
        call.task = task
        if task.done():
            self._task_done(call, task)
        else:
            task.add_done_callback(functools.partial(self._task_done, call))

    def _task_done(self, call: _Call, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            try:
                task.result()  # the CancelledError, with its message
            except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                call.exc = exc
            reason = self._closing_loops.get(id(call.loop))
            if reason is not None and not call.cancel_delivered:
                # Cancelled by close() or a dying loop, not by its caller: say so.
                closed = WorkerClosedError(f"{reason} while this call was waiting on it.")
                closed.__cause__ = call.exc
                call.exc = closed
        else:
            # exception() rather than result(): re-raising here would add a
            # frame of ours to the coroutine's traceback.
            call.exc = task.exception()
            if call.exc is None:
                call.value = task.result()
        if not _TASK_CONTEXT and call.coro is not None:
            call.coro.close()  # 3.10: the task may have been cancelled before it began
        self._finish(call)

    def _finish(self, call: _Call) -> None:
        if not call.finished:
            call.finished = True
            self._complete(call)

    def _complete(self, call: _Call) -> None:
        call.coro = None
        self._inflight.discard(call)
        fut = call.future
        if fut is None:
            assert call.lock is not None
            call.lock.release()
            return
        # future -> its done-callback -> call -> future is a reference cycle:
        # break it so finished calls are freed at once, not by the cyclic GC.
        task, call.future, call.task = call.task, None, None
        if not fut.cancelled():
            if task is not None and task.cancelled() and call.exc is not None:
                fut.cancel()
                fut.set_running_or_notify_cancel()
            elif fut.set_running_or_notify_cancel():
                if call.exc is not None:
                    exc = _strip_wrappers(call.exc)
                    explain_cross_loop(exc, self, in_caller=False)
                    fut.set_exception(exc)
                else:
                    fut.set_result(call.value)
            call.exc = None

    def _cancel_call(self, call: _Call) -> None:
        task = call.task
        if task is None:
            call.cancel_early = not call.finished  # still in the inbox
            call.cancel_delivered = call.cancel_early
        elif not task.done():
            call.cancel_delivered = task.cancel()

    def _future_done(self, call: _Call, fut: concurrent.futures.Future[Any]) -> None:
        # Runs in whichever thread finished or cancelled the future.
        if fut.cancelled() and not call.finished:
            try:
                call.loop.call_soon_threadsafe(self._cancel_call, call)
            except RuntimeError:
                pass  # closed: the finaliser fails what is left

    # -- thread and loop life cycle ---------------------------------------------

    def _loop_for_call(self, refused: object = None) -> _Gen:
        """The running loop, started or revived as needed.

        *refused* is the caller's awaitable: a coroutine is closed if the call is
        refused, so Python does not add a "never awaited" warning to the error.
        """
        if self._state == _RUNNING:  # the hot path: no lock
            return self._gen  # type: ignore[return-value]
        with self._lock:
            state = self._state
            if state == _RUNNING:
                return self._gen  # type: ignore[return-value]
            if state in (_CLOSING, _CLOSED):
                if isinstance(refused, types.CoroutineType):
                    refused.close()
                raise WorkerClosedError(
                    f"worker loop {self.name!r} is closed; create a new WorkerLoop "
                    "(module-level loopbridge.run_sync() starts a new default worker "
                    "by itself)."
                )
            if state == _DEAD:
                _warn(
                    f"worker loop {self.name!r} had {self._death}; starting a fresh "
                    "event loop for it. Objects bound to the old loop (clients, pools, "
                    "locks) cannot be used on the new one: create them again."
                )
            elif state == _FORKED:
                log.debug("worker loop %r: fresh loop in forked child %d", self.name, os.getpid())
            return self._start_thread()

    def _start_thread(self) -> _Gen:
        # Called with self._lock held.
        started = threading.Event()
        box: list[Any] = []
        self._generation += 1
        name = (
            self.thread_name
            if self._generation == 1
            else (f"{self.thread_name}-{self._generation}")
        )
        thread = threading.Thread(
            target=self._thread_main, args=(started, box), name=name, daemon=True
        )
        thread.start()
        if not started.wait(30):
            raise RuntimeError(
                f"worker loop {self.name!r} did not start within 30s (thread {name!r})"
            )
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        self._gen = result
        self._thread = thread
        self._thread_id = thread.ident
        self._closing = False
        self._death = None
        self._state = _RUNNING
        return self._gen

    def _make_loop(self) -> asyncio.AbstractEventLoop:
        factory = self.loop_factory or asyncio.new_event_loop
        loop = factory()
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"loop_factory {factory!r} returned {type(loop).__name__}: {loop!r}; "
                "expected a new event loop (e.g. asyncio.new_event_loop)."
            )
        if loop.is_running() or loop.is_closed():
            raise ValueError(
                f"loop_factory {factory!r} returned a loop that is already "
                f"{'running' if loop.is_running() else 'closed'}; it must return a new one."
            )
        for hook in list(_new_loop_hooks):
            try:
                hook(loop)
            except Exception:
                log.exception("new-loop hook %r failed", hook)
        return loop

    def _thread_main(self, started: threading.Event, box: list[Any]) -> None:
        try:
            loop = self._make_loop()
            loop.set_debug(self.debug)
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            box.append(exc)
            started.set()
            return
        gen = _Gen(loop)
        box.append(gen)
        me = threading.get_ident()
        with _edges_lock:
            _worker_threads.add(me)
        loop.call_soon(started.set)
        died: str | None = None
        try:
            while True:
                try:
                    loop.run_forever()
                except (KeyboardInterrupt, SystemExit):
                    # Raised by user code in a task: asyncio stored it on the task
                    # before re-raising, so its caller gets it. The loop is fine.
                    continue
                break
            if not self._closing:
                died = "its event loop stopped (loop.stop() called by user code?)"
        except BaseException as exc:
            died = f"its event loop failed with {exc!r}"
            log.exception("worker loop %r failed", self.name)
        finally:
            if died:
                # From now on new calls start a fresh loop instead of landing on
                # this one while it is being finalised.
                with self._lock:
                    if self._gen is gen and self._state == _RUNNING:
                        self._state = _DEAD
                        self._death = died
            self._finalize(gen, died)
            with _edges_lock:
                _worker_threads.discard(me)

    def _finalize(self, gen: _Gen, died: str | None) -> None:
        """Close the loop in order, as asyncio.run does, within ``shutdown_timeout``."""
        loop = gen.loop
        gen.closed = True  # from now on no new call starts on this loop
        reason = (
            f"worker loop {self.name!r} {died}" if died else f"worker loop {self.name!r} was closed"
        )
        self._closing_loops[id(loop)] = reason
        try:
            budget = self.shutdown_timeout
            deadline = time.monotonic() + budget
            self._cancel_all_tasks(loop, budget * 0.6)
            remaining = max(deadline - time.monotonic(), 0.0)
            _run_bounded(loop, loop.shutdown_asyncgens(), remaining / 2)
            remaining = max(deadline - time.monotonic(), 0.0)
            _run_bounded(loop, loop.shutdown_default_executor(), remaining)
        except BaseException:
            log.exception("error while closing worker loop %r", self.name)
        finally:
            try:
                loop.close()
            except Exception:
                log.exception("error while closing worker loop %r", self.name)
            asyncio.set_event_loop(None)
            with self._lock:
                if self._gen is gen and self._state == _CLOSING:
                    self._state = _CLOSED
            # Anything of this loop still waiting was either never started or
            # lost with the loop: fail it rather than leave its caller waiting.
            # Claimed under gen.lock (a racing _schedule checks it), completed
            # outside it (a future's callbacks run user code).
            with gen.lock:
                gen.swept = True
                claimed = [c for c in list(self._inflight) if c.loop is loop and not c.finished]
                for call in claimed:
                    call.finished = True
            for call in claimed:
                if call.coro is not None:
                    call.coro.close()
                call.exc = WorkerClosedError(f"{reason} while this call was waiting on it.")
                self._complete(call)
            del self._closing_loops[id(loop)]

    def _cancel_all_tasks(self, loop: asyncio.AbstractEventLoop, budget: float) -> None:
        deadline = loop.time() + budget
        for _ in range(5):  # cancellation handlers may start new tasks
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            _run_bounded(loop, asyncio.wait(tasks, timeout=remaining), None)
        stuck = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if stuck:
            for task in stuck:
                task._log_destroy_pending = False  # type: ignore[attr-defined]
            _lingering.extend(stuck)
            log.warning(
                "worker loop %r closed with %d task(s) that ignored cancellation for %.1fs: %s",
                self.name,
                len(stuck),
                budget,
                ", ".join(_coro_name(t) for t in stuck[:5]),
            )

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._inflight = set()
        if self._state in (_RUNNING, _CLOSING, _DEAD):
            _abandoned.append((self._gen.loop if self._gen else None, self._thread))
            self._state = _FORKED if self._state != _CLOSING else _CLOSED
        self._gen = None
        self._thread = None
        self._thread_id = None


def _calling_task() -> tuple[asyncio.Task[Any], int] | None:
    """The task of the loop running in this thread, and its cancel count (3.11+)."""
    if sys.version_info < (3, 11):
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread: the common script case
        return None
    return None if task is None else (task, task.cancelling())


def _wait_watching(
    lock: threading.Lock,
    timeout: float | None,
    watch: tuple[asyncio.Task[Any], int] | None,
    on_tick: Callable[[], None] | None = None,
) -> bool:
    """Wait for *lock* while also noticing that the calling task was cancelled.

    *on_tick*, if given, runs in the waiting thread between slices (a progress
    bar must be drawn by the thread that owns the output, e.g. a notebook cell).

    Under ``asyncio.run`` (3.11+) the first Ctrl-C does not raise: its handler
    cancels the main task, which cannot take effect while that task's thread
    blocks here. Seeing the cancel count rise, raise ``CancelledError`` so the
    interrupt cancels our work too (and asyncio.run turns it into
    ``KeyboardInterrupt`` as usual).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    step = _WATCH_SLICE if watch is not None else _TICK_SLICE
    while True:
        slice_ = step if deadline is None else min(step, deadline - time.monotonic())
        if lock.acquire(True, max(slice_, 0.0)):
            return True
        if sys.version_info >= (3, 11) and watch is not None and watch[0].cancelling() > watch[1]:
            raise asyncio.CancelledError("the calling task was cancelled")
        if on_tick is not None:
            on_tick()
        if deadline is not None and time.monotonic() >= deadline:
            return False


_WATCH_SLICE = 0.05
_TICK_SLICE = 0.1


def _run_bounded(
    loop: asyncio.AbstractEventLoop, aw: Awaitable[Any], timeout: float | None
) -> None:
    coro = asyncio.wait_for(aw, timeout) if timeout is not None else aw
    try:
        loop.run_until_complete(coro)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass
    except (KeyboardInterrupt, SystemExit):
        pass  # from user cleanup code during shutdown: keep closing


def _coro_name(obj: object) -> str:
    if isinstance(obj, asyncio.Task):
        obj = obj.get_coro()
    frame = getattr(obj, "cr_frame", None)
    if frame is not None and frame.f_code is _run_capturing_context.__code__:
        obj = frame.f_locals.get("coro", obj)  # 3.10: name the user's coroutine
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{name}()" if obj is not None else "the coroutine"


def _after_fork_in_child() -> None:
    global _edges_lock
    _edges_lock = threading.Lock()
    _worker_threads.clear()
    _waiting_on.clear()
    for worker in list(_all_workers):
        worker._after_fork_in_child()


def _close_all_at_exit() -> None:
    for worker in list(_all_workers):
        if worker._state == _RUNNING:
            try:
                worker.close()
            except Exception:
                log.exception("error closing worker loop %r at exit", worker.name)


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
