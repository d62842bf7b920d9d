"""Errors and warnings of loopbridge, and the cross-loop diagnosis.

The hierarchy is small on purpose: every error loopbridge raises itself is a
:class:`LoopBridgeError`, and each also subclasses the closest builtin so that
existing ``except RuntimeError`` code keeps working.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from typing import TYPE_CHECKING

from . import _loops

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
    # aiohttp: a session's timeout entered from a task of another loop finds no task
    # of its own loop ("Timeout context manager should be used inside a task").
    "timeout context manager should be used inside a task",
)
_CLOSED_LOOP = ("event loop is closed",)
# A second loop started in a thread whose loop already runs (asyncio.run in a cell).
_NESTED_LOOP = (
    "cannot be called from a running event loop",
    "this event loop is already running",
    "cannot run the event loop while another loop is running",
)
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
    return _existing_note(exc) is not None


def _existing_note(exc: BaseException) -> str | None:
    """The loopbridge note already on *exc* (a PEP 678 note, or on 3.10 the message's tail)."""
    for note in getattr(exc, "__notes__", None) or ():
        if isinstance(note, str) and note.startswith(_NOTE_MARK):
            return note
    if exc.args and isinstance(exc.args[0], str) and f"\n\n{_NOTE_MARK}" in exc.args[0]:
        return _NOTE_MARK + exc.args[0].rsplit(f"\n\n{_NOTE_MARK}", 1)[1]
    return None


def _kind(exc: BaseException) -> str | None:
    """``"different"``, ``"closed"`` or ``"nested"`` for one of asyncio's loop messages."""
    if not exc.args or not isinstance(exc.args[0], str):
        return None
    text = exc.args[0].lower()
    if any(m in text for m in _DIFFERENT_LOOP):
        return "different"
    if any(m in text for m in _CLOSED_LOOP):
        return "closed"
    if any(m in text for m in _NESTED_LOOP):
        return "nested"
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


_WORKER_ROLE = "loopbridge's worker loop"
_KERNEL_ROLE = "the Jupyter kernel's loop"
_IMPLICIT_ROLE = "the loop asyncio.get_event_loop() returns outside a coroutine in thread"

_LOOP_LOCAL_FIX = (
    "give each loop its own instance: `client = loopbridge.loop_local(make_client)`, "
    "then `client()` (or `await client.aget()`) on whichever loop you are"
)


_INNER_REPR = re.compile(r"<[^<>]*>")


def _short_message(exc: BaseException) -> str:
    """The first line of *exc*'s message with object reprs folded to ``<…>``
    ("Task <…> got Future <…> attached to a different loop")."""
    text = str(exc.args[0]).splitlines()[0]
    for _ in range(8):  # nested reprs, innermost first
        folded = _INNER_REPR.sub("\x00", text)
        if folded == text:
            break
        text = folded
    text = text.replace("\x00", "<…>")
    return text if len(text) <= 160 else text[:159] + "…"


def _fix(kind: str, owner: asyncio.AbstractEventLoop | None, worker_ran: bool) -> str:
    """The fix that fits what is known of the object's loop."""
    if owner is not None and _loops.is_from_parent(owner):
        return (
            "a process cannot use the loops, connections or pools it inherited through "
            "fork(): create the object in the child. `loopbridge.loop_local(make_client)` "
            "does that by itself (the child's loop gets its own instance), or create it in a "
            "hook that runs in each child (`os.register_at_fork(after_in_child=...)`, "
            "Celery's worker_process_init)."
        )
    if kind == "closed":
        return (
            "create it on a loop that lives as long as the object, e.g. through "
            "loopbridge.run_sync (the persistent worker loop) instead of asyncio.run() or a "
            "new loop per call, or loopbridge.loop_local for one instance per loop."
        )
    role = _loops.role_of(owner) if owner is not None else None
    if role is not None and role.role.startswith(_IMPLICIT_ROLE):
        return (
            "the object was constructed outside a coroutine, so it took the loop that "
            "asyncio.get_event_loop() gives in the calling thread, not the worker's: "
            "`run_sync(asyncpg.create_pool(dsn))` builds the pool in the caller before the "
            "bridge awaits it. Construct it inside a coroutine: `async def make(): return "
            "await asyncpg.create_pool(dsn)`, then `pool = run_sync(make())` (or "
            "`syncify(asyncpg.create_pool)(dsn)`)."
        )
    owner_is_worker = role is not None and role.role.startswith(_WORKER_ROLE)
    if owner_is_worker and not worker_ran:
        return (
            "the object was made through the bridge, and async code on its own loop uses it "
            f"too: {_LOOP_LOCAL_FIX}. Or reach it only through run_sync / run_async."
        )
    if role is not None and role.role.startswith(_KERNEL_ROLE):
        return (
            "objects made with top-level `await` in a notebook cell live on the kernel's "
            "loop. If only sync code uses the object, create it through the bridge instead "
            "(`client = run_sync(make_client())`) so that it lives on the worker loop. If "
            f"cells `await` it too, {_LOOP_LOCAL_FIX}."
        )
    if owner is not None and not owner.is_closed() and owner.is_running():
        return (
            "that loop is still running, so async code there may well use the object too, "
            f"and moving it would break that: {_LOOP_LOCAL_FIX}. If only sync code uses "
            "it, create it through the bridge instead (`client = run_sync(make_client())`)."
        )
    if owner is not None and owner.is_closed():
        return (
            "its loop has ended, so nothing else can still use it: create it through the "
            "bridge (`client = run_sync(make_client())`) so that it lives on the persistent "
            f"worker loop, or {_LOOP_LOCAL_FIX}."
        )
    return (
        "if only sync code uses the object, create it through the bridge too (`client = "
        "run_sync(make_client())`) so that it lives on the worker loop. If async code on "
        f"its own loop uses it as well, {_LOOP_LOCAL_FIX}."
    )


def _note(
    exc: BaseException,
    where: str,
    caller: str | None,
    ran_on: asyncio.AbstractEventLoop | None = None,
    *,
    worker_ran: bool = False,
) -> str | None:
    """The note for *exc* if its chain holds a cross-loop failure.

    *where* says which loop the failing code ran on (*ran_on*, when known),
    *caller* the loop of the calling thread; *worker_ran* whether that was a worker.
    """
    found = _find_cross_loop(exc)
    if found is None:
        return None
    cause, kind = found
    via = (
        ""
        if cause is exc
        else f" (the cause, further down this exception's chain: {type(cause).__name__}: "
        f"{_short_message(cause)})"
    )
    if kind == "nested":
        return _nested_note(where, via, worker_ran)
    owners = _loops.loops_in_traceback(cause.__traceback__, besides=ran_on)
    owner = owners[0] if owners else None
    fix = _fix(kind, owner, worker_ran)
    if kind == "closed":
        closed = "whose event loop is already closed"
        if owner is not None:
            closed += f": {_loops.describe(owner)}"
        return (
            f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object {closed}"
            f"{via}. Objects cannot outlive their loop (asyncio.run() and loop-per-call "
            f"helpers close theirs when they return). Fix: {fix}"
        )
    if owner is not None:
        origin = f"on another event loop: {_loops.describe(owner)}"
    elif caller:
        origin = f"on another event loop, {caller}"
        if _in_kernel():
            origin += ": objects made with top-level `await` in a notebook cell live there"
    else:
        origin = "on another event loop, which loopbridge could not identify"
    return (
        f"{_NOTE_MARK} this code ran on {where}, but it used an asyncio object (a "
        f"future, lock, queue, client or pool) that was created {origin}{via}. asyncio "
        f"objects stay bound to the loop they were created on. Fix: {fix}"
    )


def _nested_note(where: str, via: str, worker_ran: bool) -> str:
    """asyncio.run() / run_until_complete() called where a loop already runs."""
    if worker_ran:
        return (
            f"{_NOTE_MARK} this code ran on {where}, where asyncio.run() or "
            f"loop.run_until_complete() cannot start a second loop{via}. The code already "
            "runs on an event loop: `await` the coroutine instead."
        )
    if _in_kernel():
        load = "" if _extension_loaded() else "`%load_ext loopbridge`, then "
        return (
            f"{_NOTE_MARK} notebook cells run inside the kernel's running event loop, so "
            f"asyncio.run() (or loop.run_until_complete()) cannot start another one here{via}. "
            f"Fix: {load}`%aio reroute on` sends such asyncio.run() calls, a library's "
            "included, to loopbridge's worker loop; or call `loopbridge.run_sync(coro)` "
            "instead; or simply `await coro` in the cell."
        )
    return (
        f"{_NOTE_MARK} asyncio.run() (or loop.run_until_complete()) was called by code that "
        f"was already running on an event loop{via}: a thread runs one loop at a time. "
        "Fix: in async code, `await` the coroutine; in sync code that async code calls (a "
        "library's sync API), `loopbridge.run_sync(coro)` runs it on the worker loop "
        "(blocking the caller meanwhile), and `await loopbridge.run_async(coro)` does so "
        "without blocking."
    )


def _extension_loaded() -> bool:
    ext = sys.modules.get("loopbridge.ipython")
    return bool(getattr(ext, "_state", None))


def _remember_implicit_loop() -> None:
    """Name the loop ``asyncio.get_event_loop()`` gives in this thread, if it made one:
    objects constructed outside a coroutine (``asyncpg.create_pool(...)`` evaluated
    in the caller before the bridge awaits it) bind themselves to it."""
    implicit = _loops._policy_loop()
    if implicit is not None and not implicit.is_running():
        thread = threading.current_thread().name
        _loops.remember(implicit, f"{_IMPLICIT_ROLE} {thread!r}", replace=False)


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
    if in_caller:
        _remember_implicit_loop()
    where = f"loopbridge's worker loop {worker.name!r} (thread {worker.thread_name!r})"
    gen = worker._gen
    note = _note(
        exc,
        where,
        _describe_caller_loop() if in_caller else None,
        gen.loop if gen is not None else None,
        worker_ran=True,
    )
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
    existing = _existing_note(exc)
    if existing is not None:
        return existing  # added where it crossed the bridge, when more was known
    _remember_implicit_loop()
    thread = threading.current_thread().name
    # Where the failing code ran: a loop whose run_until_complete() re-raised it (an
    # asyncio.run() in another thread, a loop per call) is in its traceback; else it
    # ran where it is being handled.
    ran = _loops.runner_in_traceback(exc)
    if ran is not None:
        loop: asyncio.AbstractEventLoop | None = ran
        where = (
            _loops.describe(ran)
            if _loops.role_of(ran) is not None
            else f"a loop of its own, run by asyncio.run() or run_until_complete() "
            f"({type(ran).__name__}, {_loops.state(ran)})"
        )
    else:
        loop = asyncio._get_running_loop()
        seen = _loops.role_of(loop) if loop is not None else None
        if seen is not None:
            where = f"{seen.role} (thread {thread!r})"
        elif loop is not None:
            where = f"the event loop running in thread {thread!r} ({type(loop).__name__})"
        else:
            where = f"thread {thread!r}, with no running event loop"
    seen = _loops.role_of(loop) if loop is not None else None
    worker_ran = seen is not None and seen.role.startswith(_WORKER_ROLE)
    return _note(exc, where, None, loop, worker_ran=worker_ran)
