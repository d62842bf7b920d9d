"""Loops loopbridge has seen, so that a cross-loop note can say whose loop an object is on.

An asyncio object does not say which loop made it in its error message, but the
failing frames still hold it (``self`` of ``loop._check_closed``, a future
awaited in a client's coroutine, an object's ``_loop``). This module finds those
loops in a traceback and names them from what was learnt along the way: worker
loops, the Jupyter kernel's loop, loops that ran ``loop_local`` objects, loops
that called into the bridge, and loops alive when the process forked.

Nothing here runs on the success path except :func:`remember`, a dict lookup.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import types
import weakref
from types import FrameType, TracebackType
from typing import Any

__all__ = ["describe", "forked_from", "loops_in_traceback", "remember", "role_of"]


class _Seen:
    __slots__ = ("pid", "ref", "role", "thread")

    def __init__(self, ref: weakref.ref[Any], role: str, thread: str, pid: int) -> None:
        self.ref = ref
        self.role = role
        self.thread = thread
        self.pid = pid


_seen: dict[int, _Seen] = {}
_lock = threading.Lock()
_forked_from: int | None = None  # the parent's pid, in a child forked after import
_FRAMES_LIMIT = 200  # frames looked at in one traceback
_prune_at = 64


def remember(loop: asyncio.AbstractEventLoop, role: str, *, replace: bool = True) -> None:
    """Record what *loop* is (e.g. ``"loopbridge's worker loop 'db'"``).

    *replace* False keeps an earlier, more specific role. Loops that cannot be
    weakly referenced (some compiled loops) are not recorded. No weakref
    callback is used (a Ctrl-C landing in one would be swallowed): dead entries
    are pruned here, as the table grows.
    """
    old = _seen.get(id(loop))
    if old is not None and old.ref() is loop and (not replace or old.role == role):
        return
    try:
        ref = weakref.ref(loop)
    except TypeError:
        return
    global _prune_at
    with _lock:
        _seen[id(loop)] = _Seen(ref, role, threading.current_thread().name, os.getpid())
        if len(_seen) >= _prune_at:
            for key in [k for k, v in _seen.items() if v.ref() is None]:
                del _seen[key]
            _prune_at = max(64, 2 * len(_seen))


def role_of(loop: asyncio.AbstractEventLoop) -> _Seen | None:
    seen = _seen.get(id(loop))
    return seen if seen is not None and seen.ref() is loop else None


def forked_from() -> int | None:
    """The parent's pid if this process was forked after loopbridge was imported."""
    return _forked_from


def _thread_name(ident: int | None) -> str | None:
    if ident is None:
        return None
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread.name if thread is not None else None


def state(loop: asyncio.AbstractEventLoop) -> str:
    """``closed``, ``running in thread 'X'``, ``not running``, or inherited through fork()."""
    if loop.is_closed():
        return "closed"
    ident = getattr(loop, "_thread_id", None)
    if not loop.is_running() or ident is None:
        return "not running"
    seen = role_of(loop)
    # A forked child copies the loop's "running" flag and thread id, not the thread:
    # thread ids are reused, so the id alone could name a thread of the child.
    if (seen is not None and seen.pid != os.getpid()) or (
        _forked_from is not None and not _runs_in(loop, ident)
    ):
        return "inherited through fork(): it was running in the parent, nothing runs it here"
    name = _thread_name(ident)
    if name is None:
        return "running in a thread that does not exist in this process"
    return f"running in thread {name!r}"


def _runs_in(loop: asyncio.AbstractEventLoop, ident: int) -> bool:
    """Whether thread *ident* is inside *loop*'s run_forever (pure-Python loops only;
    a compiled loop shows no frame, and is then taken at its word)."""
    frame = sys._current_frames().get(ident)
    python_loop = isinstance(loop, asyncio.BaseEventLoop)
    while frame is not None:
        if frame.f_code.co_name in ("run_forever", "_run_once", "run_until_complete"):
            try:
                if frame.f_locals.get("self") is loop:
                    return True
            except Exception:  # noqa: BLE001 - unreadable locals: keep looking
                pass
        frame = frame.f_back
    return not python_loop


def describe(loop: asyncio.AbstractEventLoop) -> str:
    """What is known of *loop*: its role, where it came from, and its state now."""
    seen = role_of(loop)
    now = state(loop)
    if seen is None:
        return f"an event loop loopbridge has not seen before ({type(loop).__name__}, {now})"
    where = ""
    if seen.pid != os.getpid():
        where = f", made in process {seen.pid} before it forked this process ({os.getpid()})"
    return f"{seen.role}{where} ({type(loop).__name__}, {now})"


def is_from_parent(loop: asyncio.AbstractEventLoop) -> bool:
    """True if *loop* was seen in another process, or runs in a thread this process lacks."""
    seen = role_of(loop)
    if seen is not None and seen.pid != os.getpid():
        return True
    return _forked_from is not None and state(loop).startswith("inherited through fork()")


def _loop_of(value: object) -> asyncio.AbstractEventLoop | None:
    """The loop *value* is bound to, found without running any of its code."""
    if isinstance(value, asyncio.AbstractEventLoop):
        return value
    if isinstance(value, asyncio.Future):
        try:
            return value.get_loop()
        except Exception:  # noqa: BLE001 - a future subclass that misbehaves: not ours to report
            return None
    loop: object = None
    try:
        attrs = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        attrs = None
    if isinstance(attrs, dict):
        loop = attrs.get("_loop")
    if loop is None:
        # A slot (asyncpg's Connection and Pool have them): its descriptor reads the
        # value without running any of the object's own code.
        slot = getattr(type(value), "_loop", None)
        if isinstance(slot, types.MemberDescriptorType):
            try:
                loop = slot.__get__(value, type(value))
            except AttributeError:  # the slot is empty
                return None
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def loops_in_traceback(
    tb: TracebackType | None, *, besides: asyncio.AbstractEventLoop | None
) -> list[asyncio.AbstractEventLoop]:
    """The loops the failing frames' locals are bound to, innermost frame first,
    leaving out *besides* (the loop the code ran on)."""
    frames: list[FrameType] = []
    while tb is not None and len(frames) < _FRAMES_LIMIT:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    found: list[asyncio.AbstractEventLoop] = []
    for frame in reversed(frames):
        try:
            values = list(frame.f_locals.values())
        except Exception:  # noqa: BLE001 - a frame's locals could not be read: skip it
            continue
        for value in values:
            loop = _loop_of(value)
            if loop is not None and loop is not besides and loop not in found:
                found.append(loop)
    return found


_RUNNERS = ("run_until_complete", "run_forever")


def runner_in_traceback(exc: BaseException) -> asyncio.AbstractEventLoop | None:
    """The loop whose ``run_until_complete()`` re-raised *exc* (innermost), if any."""
    tb = exc.__traceback__
    found = None
    for _ in range(_FRAMES_LIMIT):
        if tb is None:
            break
        frame = tb.tb_frame
        if frame.f_code.co_name in _RUNNERS:
            try:
                owner = frame.f_locals.get("self")
            except Exception:  # noqa: BLE001 - unreadable locals: not a runner we can name
                owner = None
            if isinstance(owner, asyncio.AbstractEventLoop):
                found = owner
        tb = tb.tb_next
    return found


def _before_fork() -> None:
    """Record the loops alive in the forking thread, so the child can name them."""
    for loop in (asyncio._get_running_loop(), _policy_loop()):
        if loop is not None and role_of(loop) is None:
            remember(loop, f"the event loop of thread {threading.current_thread().name!r}")


def _policy_loop() -> asyncio.AbstractEventLoop | None:
    # The policy as set, not get_event_loop_policy(): that would make one (and warns on 3.14).
    local = getattr(getattr(asyncio.events, "_event_loop_policy", None), "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def _after_fork_in_child(parent: list[int]) -> None:
    global _forked_from, _lock
    _lock = threading.Lock()
    _forked_from = parent[0]


if hasattr(os, "register_at_fork"):
    _parent = [os.getpid()]

    def _note_parent() -> None:
        _parent[0] = os.getpid()
        _before_fork()

    os.register_at_fork(before=_note_parent, after_in_child=lambda: _after_fork_in_child(_parent))
