"""Errors and warnings of loopbridge, and the cross-loop diagnosis.

The hierarchy is small on purpose: every error loopbridge raises itself is a
:class:`LoopBridgeError`, and each also subclasses the closest builtin so that
existing ``except RuntimeError`` code keeps working.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._worker import WorkerLoop

__all__ = [
    "DeadlockError",
    "LoopBridgeError",
    "LoopBridgeWarning",
    "WorkerClosedError",
    "explain",
]


class LoopBridgeError(Exception):
    """Base class of the errors that loopbridge raises itself.

    Example::

        try:
            loopbridge.run_sync(work())
        except loopbridge.LoopBridgeError as exc:
            print("the bridge refused the call:", exc)
    """


class DeadlockError(LoopBridgeError, RuntimeError):
    """A blocking call would wait for the very loop it is running on.

    Raised at once, instead of hanging, when ``run_sync`` is called on a worker
    loop's own thread (a coroutine run by the bridge calling a sync wrapper that
    calls ``run_sync`` again), or when two worker loops would wait on each other.

    Example::

        async def inner():
            return loopbridge.run_sync(asyncio.sleep(0))   # on the worker thread

        loopbridge.run_sync(inner())   # raises DeadlockError: await it instead
    """


class WorkerClosedError(LoopBridgeError, RuntimeError):
    """The worker loop is closed, or stopped while a call was waiting on it.

    Example::

        wl = loopbridge.WorkerLoop(name="db")
        wl.close()
        wl.run_sync(work())   # raises WorkerClosedError: make a new WorkerLoop
    """


class LoopBridgeWarning(RuntimeWarning):
    """Something went wrong that loopbridge recovered from, or could not finish.

    Emitted when a dead or stopped worker loop is replaced by a fresh one, and
    when a cancelled task does not finish within its grace period.

    Example::

        import warnings
        warnings.simplefilter("error", loopbridge.LoopBridgeWarning)
    """


if sys.version_info >= (3, 11):
    BridgeTimeoutError = TimeoutError
else:

    class BridgeTimeoutError(TimeoutError, asyncio.TimeoutError):
        """On 3.10 ``asyncio.TimeoutError`` is not the builtin; catch either."""


# --- cross-loop diagnosis ---------------------------------------------------

_NOTE_MARK = "loopbridge:"

# The messages asyncio (and the clients built on it) use when an object is used
# on a loop other than its own, or after its loop was closed.
_DIFFERENT_LOOP = (
    "attached to a different loop",
    "bound to a different event loop",
    "is bound to a different loop",
    "different event loop",
    "non-thread-safe operation invoked on an event loop other than the current one",
)
_CLOSED_LOOP = ("event loop is closed",)
_CHAIN_LIMIT = 64  # exceptions looked at in one chain (cycles and huge groups are cut)


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    elif exc.args and isinstance(exc.args[0], str):
        # 3.10 has no notes: append to the message, which is what tracebacks show.
        exc.args = (f"{exc.args[0]}\n\n{note}", *exc.args[1:])
    else:
        exc.args = (*exc.args, note)


def _has_note(exc: BaseException) -> bool:
    notes = getattr(exc, "__notes__", None) or ()
    if any(str(n).startswith(_NOTE_MARK) for n in notes):
        return True
    return bool(exc.args) and isinstance(exc.args[0], str) and f"\n\n{_NOTE_MARK}" in exc.args[0]


def _kind(exc: BaseException) -> str | None:
    """``"different"`` or ``"closed"`` for one of asyncio's cross-loop messages."""
    if not exc.args or not isinstance(exc.args[0], str):
        return None
    text = exc.args[0].lower()
    if any(m in text for m in _DIFFERENT_LOOP):
        return "different"
    if any(m in text for m in _CLOSED_LOOP):
        return "closed"
    return None


def _find_cross_loop(exc: BaseException) -> tuple[BaseException, str] | None:
    """The first cross-loop failure in *exc*'s chain: itself, its ``__cause__`` and
    ``__context__``, and the members of exception groups (bounded, cycle-safe).

    The error a user sees is often another one raised while handling it (asyncpg's
    "another operation is in progress" over the RuntimeError that says why).
    """
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < _CHAIN_LIMIT:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        kind = _kind(e)
        if kind is not None:
            return e, kind
        members = getattr(e, "exceptions", None)  # ExceptionGroup members
        if isinstance(members, (tuple, list)):  # not some library's own `exceptions`
            todo.extend(m for m in members if isinstance(m, BaseException))
        for linked in (e.__cause__, e.__context__):
            if linked is not None:
                todo.append(linked)
    return None


def _in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (only then do notes speak of cells)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def _describe_caller_loop() -> str | None:
    """Name the loop running in the calling thread, if any (e.g. Jupyter's)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    thread = threading.current_thread()
    in_kernel = _in_kernel() and thread is threading.main_thread()
    who = "most likely the Jupyter kernel's loop" if in_kernel else "the loop"
    return (
        f"{who} running in the calling thread {thread.name!r} "
        f"({type(loop).__name__} at {id(loop):#x})"
    )


def _note(exc: BaseException, where: str, caller: str | None) -> str | None:
    """The note for *exc* if its chain holds a cross-loop failure; *where* says
    which loop the failing code ran on, *caller* the loop of the calling thread."""
    found = _find_cross_loop(exc)
    if found is None:
        return None
    cause, kind = found
    via = (
        ""
        if cause is exc
        else f" (the cause, further down this exception's chain: {type(cause).__name__}: "
        f"{str(cause.args[0]).splitlines()[0][:160]})"
    )
    if kind == "different":
        if caller:
            origin = f"on another event loop, {caller}"
            if _in_kernel():
                origin += ": objects made with top-level `await` in a notebook cell live there"
        else:
            origin = "on another event loop (another thread's, an earlier one, or one made by "
            origin += "asyncio.run())"
        return (
            f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object (a "
            f"future, lock, queue, client or pool) that was created {origin}{via}. asyncio "
            "objects stay bound to the loop they were created on. Fix: if only sync code "
            "uses the object, create it through the bridge too (`client = "
            "run_sync(make_client())`) so that it lives on the worker loop. If async code "
            "on its own loop uses it as well, give each loop its own instance: `client = "
            "loopbridge.loop_local(make_client)`, then `client()` (or `await "
            "client.aget()`) on whichever loop you are."
        )
    return (
        f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object whose event "
        f"loop is already closed{via}: objects cannot outlive their loop (asyncio.run() "
        "and loop-per-call helpers close theirs when they return). Fix: create it on a loop "
        "that lives as long as the object, e.g. through loopbridge.run_sync (the "
        "persistent worker loop), or loopbridge.loop_local for one instance per loop."
    )


def explain_cross_loop(exc: BaseException, worker: WorkerLoop, *, in_caller: bool) -> None:
    """Add a note to *exc* if its chain holds one of asyncio's cross-loop failures.

    The exception keeps its type and message; the note says which loops were
    involved and how to fix it, and goes on *exc*, the exception the user sees,
    even when the cross-loop error is only its cause or context. It is added
    only once when the same exception crosses several bridges. *in_caller* says
    whether this runs in the calling thread, whose loop can then be named.
    """
    if _has_note(exc):
        return
    where = f"loopbridge's worker loop {worker.name!r} (thread {worker.thread_name!r})"
    note = _note(exc, where, _describe_caller_loop() if in_caller else None)
    if note is not None:
        _add_note(exc, note)


def explain(exc: BaseException) -> str | None:
    """Explain one of asyncio's cross-loop failures, wherever it was raised.

    Returns the note loopbridge would add (which loop the code ran on, where the
    object most likely came from, the fix), or None when nothing in the
    exception's chain is a cross-loop error. The exception is not changed.

    Example::

        try:
            await pool.fetch("select 1")
        except Exception as exc:
            print(loopbridge.explain(exc) or "not a cross-loop error")
    """
    if not isinstance(exc, BaseException):
        raise TypeError(f"explain() expects an exception, got {type(exc).__name__}: {exc!r}")
    thread = threading.current_thread().name
    try:
        loop = asyncio.get_running_loop()
        where = f"the event loop running in thread {thread!r} ({type(loop).__name__})"
    except RuntimeError:
        where = f"thread {thread!r}, with no running event loop"
    return _note(exc, where, None)
