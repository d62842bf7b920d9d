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
)
_CLOSED_LOOP = ("event loop is closed",)


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


def _describe_caller_loop() -> str | None:
    """Name the loop running in the calling thread, if any (e.g. Jupyter's)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    thread = threading.current_thread()
    in_kernel = "ipykernel" in sys.modules and thread is threading.main_thread()
    who = "most likely the Jupyter kernel's loop" if in_kernel else "the loop"
    return (
        f"{who} running in the calling thread {thread.name!r} "
        f"({type(loop).__name__} at {id(loop):#x})"
    )


def explain_cross_loop(exc: BaseException, worker: WorkerLoop, *, in_caller: bool) -> None:
    """Add a note to *exc* if it is one of asyncio's cross-loop failures.

    The exception keeps its type and message; the note says which loops were
    involved and how to fix it. Does nothing for other exceptions, and adds the
    note only once when the same exception crosses several bridges. *in_caller*
    says whether this runs in the calling thread, whose loop can then be named.
    """
    if not isinstance(exc, (RuntimeError, ValueError)) or _has_note(exc):
        return
    text = str(exc.args[0]).lower() if exc.args else ""
    where = f"loopbridge's worker loop {worker.name!r} (thread {worker.thread_name!r})"
    if any(m in text for m in _DIFFERENT_LOOP):
        caller = _describe_caller_loop() if in_caller else None
        origin = (
            f"on another event loop, {caller}: objects made with top-level `await` "
            "in a notebook cell live on that loop"
            if caller
            else "on another event loop (one made by asyncio.run(), another thread's "
            "loop, or an earlier worker loop)"
        )
        note = (
            f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object "
            f"(a future, lock, queue, client or pool) that was created {origin}. "
            "asyncio objects stay bound to the loop they were created on. Fix: create "
            "the object through the bridge too (e.g. `client = run_sync(make_client())`) "
            "so that it lives on the worker loop, and use it only through run_sync."
        )
    elif any(m in text for m in _CLOSED_LOOP):
        note = (
            f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object "
            "whose event loop is already closed, typically one made by asyncio.run() "
            "or by a fresh loop per call, which is closed when that call returns. Fix: "
            "create the object through loopbridge.run_sync so that it lives on the "
            "persistent worker loop, and keep reusing it there."
        )
    else:
        return
    _add_note(exc, note)
