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
import inspect
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

from . import _loops
from ._awaitables import _await_it, as_coroutine
from ._errors import (
    _KERNEL_ROLE,
    _WORKER_ROLE,
    BridgeTimeoutError,
    DeadlockError,
    LoopBridgeWarning,
    WorkerClosedError,
    _add_note,
    _in_kernel,
    explain_cross_loop,
)

__all__ = ["WorkerLoop"]

T = TypeVar("T")
log = logging.getLogger("loopbridge")

# 3.12+: a task can run its first step inside create: a coroutine that finishes
# without suspending then costs no extra loop iteration.
_EAGER = sys.version_info >= (3, 12)
_get_running_loop = asyncio.events._get_running_loop
_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
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
# concurrent.futures' states, read without its lock (see _BridgeFuture._wait_done)
_FUT_CANCELLED = ("CANCELLED", "CANCELLED_AND_NOTIFIED")
_FINISHED = "FINISHED"
_FUT_DONE = (*_FUT_CANCELLED, _FINISHED)
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


# The longest wait threading's locks accept (about 292 years). A timeout of this
# or more, math.inf included, means "no bound", as in trio and anyio: checked
# before anything is scheduled, never an OverflowError halfway through a call.
_NO_BOUND = threading.TIMEOUT_MAX


def _check_seconds(
    value: object, what: str, *, allow_none: bool, positive: bool = False
) -> float | None:
    """Validate a number of seconds; return it as a float, ``math.inf`` for "no bound".

    ``None`` (where allowed), ``math.inf`` and anything at or above
    ``threading.TIMEOUT_MAX`` all mean "no bound" and come back as ``None``
    (where allowed) or ``math.inf``; negative numbers, NaN, bools and non-numbers
    are refused with a message naming *what*.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds{' or None' if allow_none else ''}, "
            f"got {type(value).__name__}: {value!r}"
        )
    if math.isnan(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(
            f"{what} must be a {kind} number of seconds"
            f"{' or None' if allow_none else ''} (math.inf means no bound), got {value!r}"
        )
    if value >= _NO_BOUND:
        return None if allow_none else math.inf
    return float(value)


def _bound(seconds: float | None) -> float | None:
    """*seconds* as a wait argument: None when there is no bound."""
    return None if seconds is None or seconds >= _NO_BOUND else seconds


def _acquire(lock: threading.Lock, seconds: float | None) -> bool:
    """``lock.acquire`` with a bound that may be None or math.inf (wait forever)."""
    seconds = _bound(seconds)
    return lock.acquire(True, -1 if seconds is None else max(seconds, 0.0))


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


# The coroutines loopbridge wraps a user's awaitable in (inspection looks through them).
_WRAPPER_CODES = (_run_capturing_context.__code__, _await_it.__code__)


def _strip_wrappers(exc: BaseException) -> BaseException:
    """The exception with loopbridge's own frames taken out of its traceback.

    What the user reads is their code: the coroutine's frames (and the call
    site), not our wrappers, runners or waits in between.
    """
    return exc.with_traceback(_user_traceback(exc.__traceback__))


def _user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """*tb* without the frames of loopbridge's own files (rebuilt, in order)."""
    kept = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_PKG_DIR):
            kept.append(tb)
        tb = tb.tb_next
    out = None
    for t in reversed(kept):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


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


class _Start:
    """What a starting worker thread hands back, and the caller's "never mind"."""

    __slots__ = ("abandoned", "lock", "result", "started")

    def __init__(self) -> None:
        self.started = threading.Event()
        self.lock = threading.Lock()
        self.result: _Gen | BaseException | None = None
        self.abandoned = False

    def abandon(self) -> None:
        """The starter gave up: stop the loop if it runs, or before it runs."""
        with self.lock:
            self.abandoned = True
            gen = self.result
        if isinstance(gen, _Gen):
            try:
                gen.loop.call_soon_threadsafe(gen.loop.stop)
            except RuntimeError:
                pass  # already closed


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
        "gen",
        "lock",
        "loop",
        "notify",
        "site",
        "started",
        "starter",
        "task",
        "value",
        "wrapped",
    )

    def __init__(
        self,
        gen: _Gen,
        coro: Coroutine[Any, Any, Any],
        ctx: contextvars.Context,
        lock: threading.Lock | None,
        future: _BridgeFuture[Any] | None,
    ) -> None:
        self.gen = gen
        self.loop = gen.loop
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.ctx = ctx
        self.ctx_out: contextvars.Context | None = None
        self.lock = lock
        self.future = future
        self.notify: Callable[[], None] | None = None  # run_async: wakes the awaiting loop
        self.starter: Callable[[_Call], Any] | None = None  # hands the call to running code
        # the caller's "file:line in function", recorded only while loop health runs
        self.site: str | None = _caller_site() if _record_sites else None
        self.task: asyncio.Task[Any] | None = None
        self.value: Any = None
        self.exc: BaseException | None = None
        self.cancel_delivered = False
        self.cancel_early = False  # cancel asked for before the task existed
        self.finished = False
        self.started = False  # a task was made for it
        self.wrapped = False  # run inside _run_capturing_context (3.10, classic factories)


class _BridgeFuture(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` that refuses to block its own worker loop,
    and that takes part in the deadlock check between worker loops."""

    _worker: WorkerLoop

    def __init__(self) -> None:
        super().__init__()
        self._lb_waiters: list[threading.Lock] = []

    def _check_thread(self, api: str) -> bool:
        """Refuse a wait that can never end; return True if a wait edge was added."""
        if self._state in _FUT_DONE:
            return False
        me = threading.get_ident()
        if me == self._worker._thread_id:
            raise DeadlockError(
                f"Future.{api}() was called on the thread of worker loop "
                f"{self._worker.name!r}, which must run the task this future waits "
                "for; blocking here would wait forever. Inside a coroutine, use "
                "`await asyncio.wrap_future(fut)` instead."
            )
        if me not in _worker_threads:
            return False
        # Another worker's thread blocks on this one: the same cycle check as run_sync.
        with _edges_lock:
            target = _cycle_through(self._worker, me)
            if target is not None:
                raise DeadlockError(
                    f"Future.{api}() would deadlock: this thread runs a worker loop "
                    f"that worker loop {self._worker.name!r} (which must finish the "
                    f"future) is itself blocked on, through worker loop {target.name!r}. "
                    "Inside a coroutine, use `await asyncio.wrap_future(fut)` instead."
                )
            _waiting_on[me] = self._worker
        return True

    def _lb_wake(self) -> None:
        """Release the bare-lock waiters of result()/exception(): the future is done."""
        waiters, self._lb_waiters = self._lb_waiters, []
        for waiter in waiters:
            waiter.release()

    def cancel(self) -> bool:
        try:
            return super().cancel()
        finally:
            if self._state in _FUT_DONE:
                self._lb_wake()

    def _wait_done(self, timeout: float | None, api: str) -> None:
        """Wait until done on a bare lock: safe against Ctrl-C at any moment.

        ``Future.result(timeout)`` waits in ``Condition.wait``, and the
        Condition's ``__enter__``/``__exit__``/``wait`` are Python code: a
        KeyboardInterrupt landing inside them can leave the future's lock held
        (the worker then could never complete the future) or raise
        "cannot release un-acquired lock". Here the caller only appends a
        pre-acquired lock to a list (atomic) and waits on it; the worker
        releases it after completing the future (``_lb_wake``).
        """
        seconds = _bound(_check_seconds(timeout, "timeout", allow_none=True))
        if self._state in _FUT_DONE:
            return
        if _get_running_loop() is not None:
            _warn_if_blocking_a_loop(
                self._worker,
                f"Future.{api}() of a submit()",
                "`await asyncio.wrap_future(fut)`, or submit nothing and "
                "`await loopbridge.run_async(...)`",
            )
        edge = self._check_thread(api)
        try:
            waiter = threading.Lock()
            waiter.acquire()
            self._lb_waiters.append(waiter)
            if self._state in _FUT_DONE:  # done before we were listed: not woken
                return
            if not _acquire(waiter, seconds):
                raise concurrent.futures.TimeoutError()
        finally:
            if edge:
                _drop_edge()

    def result(self, timeout: float | None = None) -> T:
        self._wait_done(timeout, "result")
        # Done: state, result and exception no longer change, so no lock is needed.
        if self._state != _FINISHED:
            raise concurrent.futures.CancelledError()
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return,return-value,unused-ignore]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_done(timeout, "exception")
        if self._state != _FINISHED:
            raise concurrent.futures.CancelledError()
        return self._exception


def _drop_edge() -> None:
    with _edges_lock:
        _waiting_on.pop(threading.get_ident(), None)


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
        debug: run the loop in asyncio debug mode. Default (None): as
            ``asyncio.run`` would, on under ``python -X dev`` / ``PYTHONDEVMODE=1``
            or ``PYTHONASYNCIODEBUG=1``.
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
        debug: bool | None = None,
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
        if debug is not None and not isinstance(debug, bool):
            raise TypeError(f"debug must be True, False or None (asyncio's default), got {debug!r}")
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
        # As ThreadPoolExecutor.__exit__: work already handed over finishes first,
        # unless the block is left by Ctrl-C (or SystemExit): then stop at once.
        interrupted = exc is not None and not isinstance(exc, Exception)
        self.close(cancel_pending=interrupted)

    def close(self, timeout: float | None = None, *, cancel_pending: bool = True) -> None:
        """Stop taking calls, cancel what is left, finalise async generators, close.

        With ``cancel_pending=True`` (the default: the hard stop, also used at
        interpreter exit) calls still running are cancelled at once. With
        ``cancel_pending=False`` (what leaving a ``with`` block does, like
        ``ThreadPoolExecutor.shutdown(wait=True)``) they may first finish, for
        at most *timeout* seconds, and are cancelled after that. Either way new
        calls are refused from the start, and a call cut off by the close fails
        with :class:`WorkerClosedError` (its future too), never a bare
        ``CancelledError`` its caller did not ask for.

        Finalising is bounded by ``shutdown_timeout``; waiting for pending calls
        by *timeout* (default: ``shutdown_timeout``). Idempotent. Called from a
        coroutine on this loop, it only schedules the close and returns.

        Example::

            wl = loopbridge.WorkerLoop(name="db")
            fut = wl.submit(work())
            wl.close(cancel_pending=False, timeout=30)   # work() finishes first
        """
        wait = _check_seconds(
            self.shutdown_timeout if timeout is None else timeout, "timeout", allow_none=False
        )
        if not isinstance(cancel_pending, bool):
            raise TypeError(f"cancel_pending must be True or False, got {cancel_pending!r}")
        on_loop = False
        with self._lock:
            state = self._state
            if state in (_CLOSED, _CLOSING):
                thread = self._thread if state == _CLOSING else None
                loop = None
            elif state == _RUNNING:
                self._state = _CLOSING  # refuse new calls from now on
                self._closing = True
                thread = self._thread
                assert self._gen is not None
                loop = self._gen.loop
                on_loop = thread is not None and threading.get_ident() == thread.ident
            else:  # created, dead (already finalised) or inherited through fork
                self._state = _CLOSED
                return
        if loop is not None:
            try:
                if not cancel_pending and not on_loop:
                    self._drain_pending(wait)  # a Ctrl-C here still stops the loop
            finally:
                try:
                    loop.call_soon_threadsafe(loop.stop)
                except RuntimeError:  # the loop closed under us: it is finishing anyway
                    pass
        if thread is None or threading.get_ident() == thread.ident:
            return  # already closed, or called on the loop itself: the thread finishes it
        # Finalising is bounded by shutdown_timeout; the margin covers the
        # thread's own start-up of it.
        thread.join(_bound(self.shutdown_timeout + 1.0 if timeout is None else wait))
        if thread.is_alive():
            _warn(
                f"worker loop {self.name!r} did not finish closing within {wait}s: "
                "something is blocking its thread (a synchronous call inside a "
                "coroutine?). The daemon thread is left to end with the process."
            )

    def _drain_pending(self, seconds: float | None) -> None:
        """Wait (bounded) until the calls already handed over have finished."""
        deadline = None if seconds is None else time.monotonic() + seconds
        pause = 0.0005
        while self._inflight and (deadline is None or time.monotonic() < deadline):
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

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
        if _get_running_loop() is not None:
            _warn_run_sync_in_coroutine(self, awaitable)
        try:
            call = self._call_blocking(awaitable, timeout, "run_sync")
        except BaseException as err:  # noqa: BLE001 - re-raised, with the user's frames only
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        if call.exc is not None:
            exc, call.exc = call.exc, None
            raise exc
        return call.value  # type: ignore[no-any-return]

    async def run_async(self, awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
        """Await *awaitable* on this worker loop from a coroutine on another loop.

        The awaitable twin of :meth:`run_sync`: same loop, same errors, same
        context-variable behaviour, but the calling loop keeps running while the
        work runs here. Use it in async code that must reach an object living
        on the worker loop (a pool made through ``run_sync``), e.g. in a FastAPI
        handler or a pytest-asyncio test.

        * Cancelling the awaiting task cancels the task here, waits (at most
          ``cancel_timeout``) for its cleanup, then raises ``CancelledError``.
        * ``timeout`` (seconds): the same, then ``TimeoutError``.
        * A cancellation or error on the worker comes back as it is.
        * Awaited on this worker loop itself, it simply awaits *awaitable*.

        Example::

            async def handler():
                return await wl.run_async(pool.fetchval("select 1"), timeout=5)
        """
        __tracebackhide__ = True
        coro: Any = awaitable
        try:
            if timeout is not None:
                timeout = _check_seconds(timeout, "timeout", allow_none=True)
            caller = asyncio.get_running_loop()
            gen = self._loop_for_call(awaitable)
            coro = as_coroutine(awaitable, gen.loop, "run_async")
            if caller is gen.loop:
                coro, direct = None, coro
                return await self._run_here(direct, timeout)
            ctx = contextvars.copy_context()
            lock = threading.Lock()
            lock.acquire()
            call = _Call(gen, coro, ctx, lock, None)
            # The future the caller awaits; replaced by a fresh one if the caller is
            # cancelled (which cancels the one it awaited), for the grace wait.
            box = [caller.create_future()]
            call.notify = functools.partial(_wake_threadsafe, caller, box)
        except BaseException:
            _close_unstarted(coro)
            raise
        timer = None
        try:
            self._schedule(call)
            if timeout is not None and timeout < _NO_BOUND:
                timer = caller.call_later(timeout, _set_done, box)
            await box[0]
        except BaseException as interrupt:
            # The awaiting task was cancelled (or the loop interrupted): the
            # remote task must not be left running.
            await self._abort_async(call, box, "was cancelled by its caller", interrupt)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            ctx_out = call.ctx_out if call.wrapped else (ctx if call.started else None)
            if ctx_out is not None:
                _write_back(ctx_out)
        if not call.finished:  # woken by the timer
            await self._abort_async(call, box, f"timed out after {timeout}s", None)
            if call.cancel_delivered or not call.finished:
                cause = call.exc if not isinstance(call.exc, asyncio.CancelledError) else None
                call.exc = None
                raise BridgeTimeoutError(
                    f"run_async() timed out after {timeout}s waiting for "
                    f"{_coro_name(coro)}; the task was cancelled on worker loop "
                    f"{self.name!r}."
                ) from cause
        if call.exc is not None:
            exc, call.exc = call.exc, None
            exc = _strip_wrappers(exc) if exc.__traceback__ else exc
            explain_cross_loop(exc, self, in_caller=True)
            raise exc
        return call.value  # type: ignore[no-any-return]

    async def _run_here(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """run_async on the worker loop itself: awaiting is the same thing, minus a hop."""
        if timeout is None:
            return await coro
        try:
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise BridgeTimeoutError(
                f"run_async() timed out after {timeout}s waiting for {_coro_name(coro)} "
                f"on worker loop {self.name!r}; it was cancelled."
            ) from None

    async def _abort_async(
        self,
        call: _Call,
        box: list[asyncio.Future[None]],
        why: str,
        exc: BaseException | None,
    ) -> None:
        """run_async's _abort: cancel *call* on the worker, wait (bounded) for its cleanup."""
        if call.finished:
            return
        waiter = box[0] = asyncio.get_running_loop().create_future()
        try:
            call.loop.call_soon_threadsafe(self._cancel_call, call, context=contextvars.Context())
        except RuntimeError:
            pass  # closed: the finaliser fails the call
        if not call.finished:
            # A second cancellation interrupts this grace wait, as a second Ctrl-C does.
            await asyncio.wait((waiter,), timeout=_bound(self.cancel_timeout))
        if call.finished:
            return
        message = (
            f"a run_async() call to worker loop {self.name!r} {why}; its task "
            f"{_coro_name(call.task or call.coro)} was cancelled but had not finished "
            f"{self.cancel_timeout}s later (it may be ignoring cancellation or "
            "blocking the loop). It keeps running there."
        )
        try:
            _warn(message)
        except Warning as warning:
            if exc is None:
                raise
            _add_note(exc, f"loopbridge: {warning}")

    def submit(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule *awaitable* on this loop and return a future at once.

        Cancelling the future cancels the task. The coroutine runs in a copy of
        the caller's context (like ``asyncio.create_task``). If the worker is
        closed (or the process forks) before the task ends, the future fails
        with :class:`WorkerClosedError`.

        Example::

            fut = wl.submit(fetch(2))
            ...
            value = fut.result(timeout=10)
        """
        coro: Any = awaitable
        try:
            gen = self._loop_for_call(awaitable)
            coro = as_coroutine(awaitable, gen.loop, "submit")
            fut: _BridgeFuture[T] = _BridgeFuture()
            fut._worker = self
            call = _Call(gen, coro, contextvars.copy_context(), None, fut)
        except BaseException:
            _close_unstarted(coro)  # refused or interrupted before it was handed over
            raise
        try:
            self._schedule(call)
            fut.add_done_callback(functools.partial(self._future_done, call))
        except BaseException:
            # Ctrl-C (or a refusal) before the caller holds the future: nobody
            # could wait for or cancel this task, so it must not run.
            self._abort(call, wait=False)
            raise
        return fut

    # -- caller side ------------------------------------------------------------
    #
    # The invariant (docs/architecture.md, "Faults"): whatever is interrupted, at
    # whatever bytecode, every call ends within its bound and the worker serves
    # the next call. A call exists (and is registered) before anything can be
    # interrupted, and every exit path that is not a normal return goes through
    # _abort(), which repairs the hand-off and cancels the call on the loop.

    def _call_blocking(
        self,
        awaitable: object,
        timeout: float | None,
        api: str,
        on_tick: Callable[[], None] | None = None,
        starter: Callable[[_Call], Any] | None = None,
    ) -> _Call:
        """Run *awaitable* and wait for it; *on_tick* runs in the caller about 10x/s.

        With *starter*, the call runs no task of its own: on the loop, ``starter(call)``
        hands it to running code (a face's host task), which finishes it later with
        :meth:`_finish_handed`; it returns a handle with ``done()`` and ``cancel()``.
        *awaitable* is then only the call's name in messages.
        """
        __tracebackhide__ = True
        coro: Any = awaitable
        try:
            if timeout is not None:
                timeout = _check_seconds(timeout, "timeout", allow_none=True)
            gen = self._loop_for_call(awaitable)
            coro = as_coroutine(awaitable, gen.loop, api) if starter is None else awaitable
            me = threading.get_ident()
            if me == self._thread_id:
                if _in_module_code():
                    raise DeadlockError(
                        f"{api}() was called in a notebook cell that runs on the worker "
                        f"loop {self.name!r} itself (a cell with top-level `await` in "
                        "one-loop mode, or a %%aio run cell): waiting here for "
                        f"{_coro_name(coro)} would block the very loop that must run it. "
                        f"In this cell, `await` it instead of calling {api}() (e.g. "
                        "`await fetch(1)`), or move the sync call to a cell without "
                        "`await`, or turn the mode off with %aio one-loop off."
                    )
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
            edge = me in _worker_threads and self._add_wait_edge(me, api)
            call = _Call(gen, coro, ctx, lock, None)
            call.starter = starter
        except BaseException:
            _close_unstarted(coro)  # refused or interrupted before it was handed over
            raise
        try:
            watch = _calling_task() if _TASK_CONTEXT else None
            self._schedule(call)
            done = self._wait(call, timeout, watch, on_tick)
        except BaseException as interrupt:
            # KeyboardInterrupt from Ctrl-C / "Interrupt kernel" (at any bytecode
            # of the lines above), another asynchronous exception, or a refusal:
            # the work must not be left running, nor the hand-off half done.
            self._abort(call, wait=True, why="interrupted", exc=interrupt)
            raise
        finally:
            if edge:
                _drop_edge()
            ctx_out = call.ctx_out if call.wrapped else (ctx if call.started else None)
            if ctx_out is not None:
                _write_back(ctx_out)
        if not done:
            self._abort(call, wait=True, why=f"timed out after {timeout}s")
            if call.cancel_delivered or not call.finished:
                cause = call.exc if not isinstance(call.exc, asyncio.CancelledError) else None
                call.exc = BridgeTimeoutError(
                    f"{api}() timed out after {timeout}s waiting for "
                    f"{_coro_name(coro)}; the task was cancelled on worker "
                    f"loop {self.name!r}."
                )
                call.exc.__cause__ = cause
                return call
        if call.exc is not None:
            exc = _strip_wrappers(call.exc) if call.exc.__traceback__ else call.exc
            explain_cross_loop(exc, self, in_caller=True)
            call.exc = exc
        return call

    def _wait(
        self,
        call: _Call,
        timeout: float | None,
        watch: tuple[asyncio.Task[Any], int] | None,
        on_tick: Callable[[], None] | None,
    ) -> bool:
        """Wait for *call* to finish, at most *timeout* seconds; False on timeout.

        The fast path is one ``lock.acquire``. A call that has not *started*
        after a slice gets its hand-off repaired (a fresh drain, which costs
        nothing if one was already pending): the belt to _abort's braces, for a
        wake-up lost to an interrupt that hit another caller twice.
        """
        lock = call.lock
        assert lock is not None
        if watch is None and on_tick is None:
            first = _START_SLICE if timeout is None else min(_START_SLICE, timeout)
            if lock.acquire(True, first):
                return True
            if call.task is None and not call.finished:
                self._kick(call.gen)
            if timeout is None:
                return lock.acquire()
            return lock.acquire(True, max(timeout - first, 0.0))

        def repair() -> None:
            if call.task is None and not call.finished:
                self._kick(call.gen)

        return _wait_watching(lock, timeout, watch, on_tick, repair)

    def _kick(self, gen: _Gen) -> None:
        """Schedule a drain of *gen*'s inbox unconditionally (thread-safe, idempotent)."""
        try:
            gen.loop.call_soon_threadsafe(self._drain, gen, context=contextvars.Context())
        except RuntimeError:
            pass  # closed: the final sweep fails what is left

    def _add_wait_edge(self, me: int, api: str) -> bool:
        """Refuse a wait that closes a cycle of worker loops waiting on each other."""
        with _edges_lock:
            target = _cycle_through(self, me)
            if target is not None:
                raise DeadlockError(
                    f"{api}() on worker loop {self.name!r} would deadlock: that loop "
                    f"is itself blocked waiting for worker loop {target.name!r}, "
                    "whose thread is making this call. Await the coroutine instead, "
                    "or use submit() and do not wait on it from the worker thread."
                )
            _waiting_on[me] = self
        return True

    def _schedule(self, call: _Call) -> None:
        gen = call.gen
        # Registered before anything else: a loop that closes before starting
        # the call finds it here and fails it, so no caller waits forever.
        self._inflight.add(call)
        gen.inbox.append(call)
        if gen.closed:
            self._refuse_if_swept(gen, call)
        elif not gen.wakeup_pending:
            # If an interrupt lands between these two lines, the flag says a
            # drain is coming when none is: _abort (this caller) and _wait
            # (any later caller) re-kick, so the inbox is never left unserved.
            gen.wakeup_pending = True
            try:
                gen.loop.call_soon_threadsafe(self._drain, gen, context=contextvars.Context())
            except RuntimeError:  # closed between our check and now
                self._refuse_if_swept(gen, call)

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

    def _abort(
        self, call: _Call, *, wait: bool, why: str = "", exc: BaseException | None = None
    ) -> None:
        """End *call* after its caller stopped waiting (Ctrl-C, timeout, refusal).

        Runs ``_cancel_call`` on the loop, which also repairs a hand-off that an
        interrupt left half done (the call still in the inbox, a wake-up flag
        set with no wake-up sent). With *wait*, waits for the task to finish its
        cleanup, at most ``cancel_timeout``; not at all if it already finished,
        which is how Ctrl-C right after the result came in costs nothing.
        """
        if call.finished:
            return
        try:
            call.loop.call_soon_threadsafe(self._cancel_call, call, context=contextvars.Context())
        except RuntimeError:
            pass  # closed: the finaliser has failed (or will fail) the call
        if not wait or call.finished:
            return
        assert call.lock is not None
        # A second Ctrl-C here interrupts the grace wait itself, as users expect.
        if _acquire(call.lock, self.cancel_timeout) or call.finished:
            return
        message = (
            f"a call to worker loop {self.name!r} {why}; its task "
            f"{_coro_name(call.task or call.coro)} was cancelled but had not finished "
            f"{self.cancel_timeout}s later (it may be ignoring cancellation or "
            "blocking the loop). It keeps running there."
        )
        if exc is None:
            _warn(message)
            return
        # Under -W error the warning must not replace the KeyboardInterrupt.
        try:
            _warn(message)
        except Warning as warning:
            _add_note(exc, f"loopbridge: {warning}")

    # -- loop side (these run on the worker thread) -----------------------------

    def _drain(self, gen: _Gen) -> None:
        # Cleared before draining: a call appended from now on schedules a new
        # drain if this one has already passed it, so none is left behind.
        gen.wakeup_pending = False
        inbox = gen.inbox
        while inbox and not gen.closed:  # once closing, the final sweep fails them
            try:
                call = inbox.popleft()
            except IndexError:  # taken by a _cancel_call of this same thread
                break
            self._start_call(call)

    def _start_call(self, call: _Call) -> None:
        loop = call.loop
        coro = call.coro
        if call.finished or coro is None:
            return  # ended by _cancel_call while it waited in the inbox
        fut = call.future
        # fut._state, not fut.cancelled(): never take a future's lock here (see _settle)
        if call.cancel_early or (fut is not None and fut._state in _FUT_CANCELLED):
            coro.close()  # cancelled before it could start: it never runs
            call.exc = asyncio.CancelledError()
            self._finish(call)
            return
        if call.starter is not None:
            # Handed to code already running on the loop; no context write-back here
            # (wrapped, with no ctx_out): that code shares its context itself.
            call.started = call.wrapped = True
            try:
                call.task = call.starter(call)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
                call.exc = exc
                self._finish(call)
            return
        try:
            task = self._create_task(loop, coro, call)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised by the coroutine's eager first step: it belongs to the caller.
            call.exc = exc
            self._finish(call)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
            # A task factory that raises must fail this call, not the drain: an
            # exception escaping here would strand every call queued behind it.
            if not _started(coro):
                coro.close()
            _add_note(
                exc,
                f"loopbridge: the task factory {loop.get_task_factory()!r} of worker loop "
                f"{self.name!r} raised this while creating the task for {_coro_name(coro)}; "
                "the call was not run. Fix the factory, or remove it with "
                "loop.set_task_factory(None).",
            )
            call.exc = exc
            self._finish(call)
            return
        call.task = task
        call.started = True
        if task.done():
            self._task_done(call, task)
        else:
            task.add_done_callback(functools.partial(self._task_done, call))

    def _create_task(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], call: _Call
    ) -> asyncio.Task[Any]:
        factory = loop.get_task_factory()
        task: Any
        if _EAGER and factory is None:
            task = asyncio.Task(
                coro,
                loop=loop,
                context=call.ctx,
                eager_start=True,  # type: ignore[call-arg]
            )
        elif _EAGER and getattr(factory, "__loopbridge_eager__", False):
            # our own recording factory (the IPython extension): keeps eager start
            eager: Any = factory
            task = eager(loop, coro, context=call.ctx, eager_start=True)
        else:
            task = None
            if _TASK_CONTEXT:
                try:
                    task = loop.create_task(coro, context=call.ctx)  # type: ignore[call-arg,unused-ignore]
                except TypeError as exc:
                    # A classic ``factory(loop, coro)`` refuses the context
                    # argument before running: fall back to the 3.10 way.
                    if "context" not in str(exc) or _started(coro):
                        raise
            if task is None:
                # The task copies the caller's context, read back when it ends.
                call.wrapped = True
                wrapper = _run_capturing_context(coro, call)
                try:
                    task = call.ctx.run(loop.create_task, wrapper)
                except BaseException:
                    wrapper.close()  # refused by the factory: never started
                    raise
        if not isinstance(task, asyncio.Future):
            raise TypeError(
                f"the task factory {factory!r} returned {type(task).__name__}, "
                "not an asyncio.Task (or Future)"
            )
        return task  # type: ignore[return-value,no-any-return,unused-ignore]

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
        if call.wrapped and call.coro is not None:
            call.coro.close()  # the task may have been cancelled before its wrapper began
        self._finish(call)

    def _finish_handed(
        self, call: _Call, value: Any, exc: BaseException | None, cancelled_by_caller: bool
    ) -> None:
        """On the loop: finish a call handed over by a starter (see _call_blocking).

        A cancellation its caller did not ask for, while the loop closes, becomes
        WorkerClosedError, as for a call's own task (_task_done).
        """
        if isinstance(exc, asyncio.CancelledError) and not cancelled_by_caller:
            reason = self._closing_loops.get(id(call.loop))
            if reason is not None:
                closed = WorkerClosedError(f"{reason} while this call was waiting on it.")
                closed.__cause__ = exc
                exc = closed
        call.cancel_delivered = call.cancel_delivered or cancelled_by_caller
        call.value, call.exc = value, exc
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
            if call.notify is not None:
                call.notify()
            # The task is freed here, on the loop thread (after the caller is woken,
            # off its latency): freed in the caller, its weakref callbacks (asyncio's
            # task sets) would run there, where a Ctrl-C landing in them is swallowed
            # ("Exception ignored in").
            call.task = None
            return
        # future -> its done-callback -> call -> future is a reference cycle:
        # break it so finished calls are freed at once, not by the cyclic GC.
        task, call.future, call.task = call.task, None, None
        exc, call.exc = call.exc, None
        cancelled = isinstance(exc, asyncio.CancelledError) and (
            call.cancel_delivered or (task is not None and task.cancelled())
        )
        self._settle(fut, cancelled, exc, call.value, call.loop, 0.0)

    def _settle(
        self,
        fut: concurrent.futures.Future[Any],
        cancelled: bool,
        exc: BaseException | None,
        value: Any,
        loop: asyncio.AbstractEventLoop,
        delay: float,
    ) -> None:
        """Complete *fut* without ever blocking the loop thread on the future's lock.

        A Ctrl-C that lands inside ``threading.Condition.__enter__`` (Python
        code) in a thread using the future (``cancel()``, ``done()``...) leaves
        its lock held for good; blocking on it here would wedge the worker for
        every caller. So: take it only if free, else try again a little later.
        """
        lock = fut._condition
        if not lock.acquire(False):
            delay = min(max(delay * 2, 0.001), 0.1)
            try:
                loop.call_later(delay, self._settle, fut, cancelled, exc, value, loop, delay)
            except RuntimeError:  # the loop is closed: this runs in its final sweep
                threading.Timer(
                    delay, self._settle, (fut, cancelled, exc, value, loop, delay)
                ).start()
            return
        try:
            if fut.cancelled():
                return
            if cancelled:
                # cancelled by the future's owner, or by code on the loop: the
                # future says "cancelled", as run_coroutine_threadsafe's does.
                # Cancelled by close() it fails with WorkerClosedError instead.
                fut.cancel()
                fut.set_running_or_notify_cancel()
            elif fut.set_running_or_notify_cancel():
                if exc is not None:
                    exc = _strip_wrappers(exc)
                    explain_cross_loop(exc, self, in_caller=False)
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
        finally:
            lock.release()
            if isinstance(fut, _BridgeFuture):
                fut._lb_wake()

    def _cancel_call(self, call: _Call) -> None:
        """On the loop: cancel *call*, wherever its hand-off got to."""
        if call.finished:
            return
        task = call.task
        if task is None:
            # Not started: queued, or never queued (the caller was interrupted
            # inside _schedule). Either way it ends here, and the inbox is
            # drained in case the interrupt also swallowed its wake-up.
            try:
                call.gen.inbox.remove(call)
            except ValueError:
                pass
            call.cancel_early = call.cancel_delivered = True
            if call.coro is not None:
                call.coro.close()
            call.exc = asyncio.CancelledError()
            self._finish(call)
            if call.gen.inbox and not call.gen.closed:
                self._drain(call.gen)
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
        revived: str | None = None
        with self._lock:
            state = self._state
            if state == _RUNNING:
                return self._gen  # type: ignore[return-value]
            if state in (_CLOSING, _CLOSED):
                _close_unstarted(refused)
                raise WorkerClosedError(
                    f"worker loop {self.name!r} is {state}; create a new WorkerLoop "
                    "(module-level loopbridge.run_sync() starts a new default worker "
                    "by itself)."
                )
            if _exiting:
                _close_unstarted(refused)
                raise WorkerClosedError(
                    f"worker loop {self.name!r} cannot start: the interpreter is exiting "
                    "(the main thread has finished). Join the threads that still need "
                    "the bridge before the main thread ends."
                )
            if state == _DEAD:
                revived = self._death
            elif state == _FORKED:
                log.debug("worker loop %r: fresh loop in forked child %d", self.name, os.getpid())
            gen = self._start_thread()
        if revived is not None:
            # Warned after the revival: under -W error the warning raises, and the
            # worker must be back all the same for the next call.
            _warn(
                f"worker loop {self.name!r} had {revived}; started a fresh event loop "
                "for it. Objects bound to the old loop (clients, pools, locks) cannot be "
                "used on the new one: create them again."
            )
        return gen

    def _start_thread(self) -> _Gen:
        # Called with self._lock held.
        start = _Start()
        self._generation += 1
        name = (
            self.thread_name
            if self._generation == 1
            else (f"{self.thread_name}-{self._generation}")
        )
        thread = threading.Thread(target=self._thread_main, args=(start,), name=name, daemon=True)
        try:
            thread.start()
            if not start.started.wait(30):
                raise RuntimeError(
                    f"worker loop {self.name!r} did not start within 30s (thread {name!r})"
                )
            result = start.result
            if isinstance(result, BaseException):
                raise result
            assert isinstance(result, _Gen)
            self._gen = result
            self._thread = thread
            self._thread_id = thread.ident
            self._closing = False
            self._death = None
            self._state = _RUNNING
        except BaseException:
            # Ctrl-C (or the 30 s bound) while the thread starts: unless it became
            # this worker's running loop, it must not live on as an orphan that no
            # close() knows about.
            if self._state != _RUNNING or self._gen is not start.result:
                start.abandon()
            raise
        return result

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

    def _thread_main(self, start: _Start) -> None:
        try:
            loop = self._make_loop()
            loop.set_debug(self.debug if self.debug is not None else _asyncio_debug_default())
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            start.result = exc
            start.started.set()
            return
        _loops.remember(loop, f"{_WORKER_ROLE} {self.name!r} (thread {self.thread_name!r})")
        gen = _Gen(loop)
        with start.lock:
            abandoned = start.abandoned
            start.result = gen
        me = threading.get_ident()
        with _edges_lock:
            _worker_threads.add(me)
        if abandoned:
            loop.call_soon(loop.stop)
        else:
            loop.call_soon(start.started.set)
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
            if not self._closing and not start.abandoned:
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
            _run_bounded(loop, asyncio.wait(tasks, timeout=_bound(remaining)), None)
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
        # Only the forking thread exists here, so no run_sync caller waits; but
        # submit() futures were copied, and their tasks stayed in the parent.
        stranded = [c for c in self._inflight if c.future is not None and not c.finished]
        self._inflight = set()
        for call in stranded:
            fut, call.future, call.finished = call.future, None, True
            assert fut is not None
            # A parent thread may have held the future's lock at fork time.
            fut._condition = threading.Condition()
            if fut.set_running_or_notify_cancel():
                fut.set_exception(
                    WorkerClosedError(
                        f"the process forked (child pid {os.getpid()}) while this "
                        f"submit() to worker loop {self.name!r} was pending: its task "
                        "runs in the parent process only, so the child's copy of the "
                        "future can never complete. Submit the work again in the child."
                    )
                )
            if isinstance(fut, _BridgeFuture):
                fut._lb_waiters = []  # the threads that waited are not in this process
        if self._state in (_RUNNING, _CLOSING, _DEAD):
            _abandoned.append((self._gen.loop if self._gen else None, self._thread))
            self._state = _FORKED if self._state != _CLOSING else _CLOSED
        self._gen = None
        self._thread = None
        self._thread_id = None


def _warn_if_blocking_a_loop(worker: WorkerLoop, what: str, instead: str) -> None:
    """Warn when a blocking call (run_sync, a future's result(), a sync face) is made
    from a coroutine running on another loop.

    A Jupyter cell also runs while the kernel's loop is running, but its code is
    module-level code, not a coroutine: walking up the stack, the first frame that
    is either a coroutine or module code tells the two apart.
    """
    loop = _get_running_loop()
    if loop is None or threading.get_ident() == worker._thread_id:
        return  # a plain thread, or the worker itself (the core raises DeadlockError)
    if _loops.role_of(loop) is None:
        _loops.remember(loop, _caller_role(), replace=False)
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    for _ in range(64):
        if frame is None:
            return
        code = frame.f_code
        if code.co_flags & _ASYNC_CODE and code.co_name != "<module>":
            break
        if code.co_name == "<module>":
            return
        frame = frame.f_back  # type: ignore[assignment]
    else:
        return
    coro_name = getattr(code, "co_qualname", code.co_name)
    _warn(
        f"{what} blocks the event loop running in this thread ({type(loop).__name__}, "
        f"in coroutine {coro_name}()) until it returns: every other task on that loop "
        f"stalls meanwhile. In async code, await the async original instead: {instead}."
    )


def _caller_role() -> str:
    """What the loop running in this thread is, for the cross-loop notes."""
    thread = threading.current_thread()
    if thread is threading.main_thread() and _in_kernel():
        return f"{_KERNEL_ROLE} (the cells run on it)"
    return f"the event loop of thread {thread.name!r}, which called into the bridge"


def _warn_run_sync_in_coroutine(worker: WorkerLoop, awaitable: object) -> None:
    """run_sync from a coroutine: warn that it blocks that loop (and close the
    coroutine if the warning is raised, so Python does not add "never awaited")."""
    code = getattr(awaitable, "cr_code", None)
    name = f"{code.co_name}(...)" if code is not None else "the awaitable"
    try:
        _warn_if_blocking_a_loop(
            worker,
            f"run_sync({name})",
            f"`await {name}` itself if it can run on this loop, or `await "
            f"loopbridge.run_async({name})` to keep it on the worker loop",
        )
    except BaseException:
        _close_unstarted(awaitable)
        raise


def _wake_threadsafe(loop: asyncio.AbstractEventLoop, box: list[asyncio.Future[None]]) -> None:
    """From the worker thread: wake run_async's caller, on its own loop."""
    try:
        loop.call_soon_threadsafe(_set_done, box)
    except RuntimeError:
        pass  # the awaiting loop is closed: nobody is waiting any more


def _set_done(box: list[asyncio.Future[None]]) -> None:
    """On the caller's loop: complete the future run_async waits on *now* (read here,
    not when scheduled, so a grace wait's fresh future is the one woken)."""
    waiter = box[0]
    if not waiter.done():
        waiter.set_result(None)


def _started(coro: Coroutine[Any, Any, Any]) -> bool:
    """Whether *coro* ran its first step (compiled coroutines: assume it did)."""
    if isinstance(coro, types.CoroutineType):
        return inspect.getcoroutinestate(coro) != inspect.CORO_CREATED
    return True


def _asyncio_debug_default() -> bool:
    """What asyncio.run's loop would use: dev mode, or PYTHONASYNCIODEBUG set."""
    return sys.flags.dev_mode or (
        not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    )


_record_sites = False  # set by loopbridge.health while it runs


def _caller_site() -> str | None:
    """The first frame outside loopbridge: who handed this call to the bridge."""
    frame = sys._getframe(2)
    for _ in range(32):
        if frame is None:
            return None
        code = frame.f_code
        if not code.co_filename.startswith(_PKG_DIR):
            name = getattr(code, "co_qualname", code.co_name)
            return f"{code.co_filename}:{frame.f_lineno} in {name}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def call_site_of(loop: asyncio.AbstractEventLoop, task: object) -> str | None:
    """Who handed *task* (running on *loop*) to the bridge, if health recorded it."""
    for worker in list(_all_workers):
        for call in list(worker._inflight):
            if call.loop is not loop:
                continue
            handle = call.task
            if handle is task or getattr(getattr(handle, "host", None), "task", None) is task:
                return call.site
            # 3.12+: an eager task's first step runs before call.task is set
            coro = getattr(task, "get_coro", lambda: None)()
            if handle is None and getattr(coro, "__wrapped__", coro) is call.coro:
                return call.site
    return None


def _in_module_code() -> bool:
    """Whether module-level code is on the stack: on a worker thread, that is a
    notebook cell run there (one-loop mode's awaiting cells, ``%%aio run``)."""
    frame = sys._getframe(1)
    for _ in range(64):
        if frame is None:
            return False
        if frame.f_code.co_name == "<module>":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _close_unstarted(obj: object) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited."""
    if isinstance(obj, types.CoroutineType) and not _started(obj):
        obj.close()


def _cycle_through(worker: WorkerLoop, me: int) -> WorkerLoop | None:
    """The worker whose wait closes a cycle if thread *me* waits on *worker*, if any.

    Called with ``_edges_lock`` held. Edges are "worker thread T is blocked on
    worker W" (run_sync, or a future of W's); a cycle leads back to *me*.
    """
    owner = worker._thread_id
    for _ in range(len(_waiting_on) + 1):
        target = _waiting_on.get(owner)  # type: ignore[arg-type]
        if target is None:
            return None
        if target._thread_id == me:
            return target
        owner = target._thread_id
    return None


def _calling_task() -> tuple[asyncio.Task[Any], int] | None:
    """The task of the loop running in this thread, and its cancel count (3.11+)."""
    if sys.version_info < (3, 11):
        return None
    loop = asyncio.events._get_running_loop()
    if loop is None:  # no running loop in this thread: the common script case
        return None
    task = asyncio.current_task(loop)
    return None if task is None else (task, task.cancelling())


def _wait_watching(
    lock: threading.Lock,
    timeout: float | None,
    watch: tuple[asyncio.Task[Any], int] | None,
    on_tick: Callable[[], None] | None = None,
    on_slice: Callable[[], object] | None = None,
) -> bool:
    """Wait for *lock* while also noticing that the calling task was cancelled.

    *on_tick*, if given, runs in the waiting thread between slices (a progress
    bar must be drawn by the thread that owns the output, e.g. a notebook cell).
    *on_slice* runs there too (the hand-off repair of ``WorkerLoop._wait``).

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
        if on_slice is not None:
            on_slice()
        if on_tick is not None:
            on_tick()
        if deadline is not None and time.monotonic() >= deadline:
            return False


_WATCH_SLICE = 0.05
_TICK_SLICE = 0.1
# A call not started after this long gets its wake-up sent again (see _wait).
_START_SLICE = 0.25


def _run_bounded(
    loop: asyncio.AbstractEventLoop, aw: Awaitable[Any], timeout: float | None
) -> None:
    timeout = _bound(timeout)
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
    if name.startswith("In["):  # a notebook cell (%%aio run names its coroutine so)
        return f"cell {name}"
    return f"{name}()" if obj is not None else "the coroutine"


def _after_fork_in_child() -> None:
    global _edges_lock
    _edges_lock = threading.Lock()
    _worker_threads.clear()
    _waiting_on.clear()
    for worker in list(_all_workers):
        worker._after_fork_in_child()


_exiting = False


def _close_all_at_exit() -> None:
    """Close every worker: at interpreter exit, *before* non-daemon threads are joined.

    Python joins non-daemon threads before ``atexit`` hooks run, so a thread
    blocked in run_sync on a task that never ends would hang the exit. Hooked
    into threading's own exit (as concurrent.futures does), the close fails such
    calls with WorkerClosedError and the thread can finish.
    """
    global _exiting
    _exiting = True
    for worker in list(_all_workers):
        if worker._state == _RUNNING:
            try:
                worker.close()
            except Exception:
                log.exception("error closing worker loop %r at exit", worker.name)


atexit.register(_close_all_at_exit)  # idempotent; covers embedders without the hook below
_register_threading_exit = getattr(threading, "_register_atexit", None)
if _register_threading_exit is not None:  # CPython 3.9+
    _register_threading_exit(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
