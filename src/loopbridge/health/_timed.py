"""Exact task-step timing (``steps=True``), from the task factory health installs.

A task runs its coroutine in *steps*: each ``send()``/``throw()`` the task makes is
one uninterrupted run on the loop, from one ``await`` that suspended to the next.
:class:`TimedCoroutine` wraps a task's coroutine and times each of those calls with
``time.perf_counter``; it is a public ``collections.abc.Coroutine``, so ``Task``
drives it like any coroutine, on asyncio's loops and on uvloop alike (no private
loop attribute is read). Everything a debugger or ``%aio where`` reads
(``cr_frame``, ``cr_await``, ``cr_code``, ``__qualname__``...) is passed through to
the wrapped coroutine, which stays reachable as ``__wrapped__``.

Records are plain numbers and strings per (loop, coroutine): count, total, longest,
and the lines the longest step ran between.
"""

from __future__ import annotations

import collections.abc
import threading
import time
from typing import Any

__all__ = ["StepTimer", "TimedCoroutine"]

_perf = time.perf_counter
_MAX_KEYS = 500  # distinct (loop, coroutine) rows kept; the least used go first


class _Timed:
    """The exact steps of one coroutine function on one loop."""

    __slots__ = ("count", "longest", "span", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.longest = 0.0
        self.span: str | None = None  # "file:A-B in function" of the longest step


class StepTimer:
    """The per-(loop, coroutine) step statistics of every timed task.

    Example::

        timer = StepTimer()
        for row in timer.rows():
            print(row["what"], row["steps"], row["longest"])
    """

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], _Timed] = {}
        self._lock = threading.Lock()  # only to add or drop a key; never per step
        self.generation = 0  # grows when entries are dropped: caches of them go stale

    def entry(self, loop: str, what: str) -> _Timed:
        key = (loop, what)
        found = self.stats.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self.stats.get(key)
            if found is None:
                if len(self.stats) >= _MAX_KEYS:
                    rare = min(self.stats, key=lambda k: self.stats[k].count)
                    del self.stats[rare]
                    self.generation += 1
                found = self.stats[key] = _Timed()
            return found

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self.stats.items())
        return [
            {
                "loop": loop,
                "what": what,
                "steps": t.count,
                "total": t.total,
                "longest": t.longest,
                "span": t.span,
            }
            for (loop, what), t in items
            if t.count
        ]

    def clear(self) -> None:
        with self._lock:
            self.stats.clear()
            self.generation += 1


def _line(coro: Any) -> int | None:
    frame = coro.cr_frame
    return None if frame is None else frame.f_lineno


class TimedCoroutine(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A task's coroutine, with each step timed into a :class:`StepTimer` entry.

    Example::

        task = loop.create_task(TimedCoroutine(main(), timer.entry("main", "task main()")))
    """

    __slots__ = ("__wrapped__", "_entry")

    def __init__(self, coro: Any, entry: _Timed) -> None:
        self.__wrapped__ = coro
        self._entry = entry

    def _done(self, coro: Any, began: float, start: int | None) -> None:
        took = _perf() - began
        e = self._entry
        e.count += 1
        e.total += took
        if took > e.longest:
            e.longest = took
            code = coro.cr_code
            end = _line(coro)
            first = start if start is not None else code.co_firstlineno
            last = end if end is not None else "end"
            name = getattr(code, "co_qualname", code.co_name)
            e.span = f"{code.co_filename}:{first}-{last} in {name}"

    def send(self, value: Any) -> Any:
        coro = self.__wrapped__
        start = _line(coro)
        began = _perf()
        try:
            return coro.send(value)
        finally:
            self._done(coro, began, start)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        coro = self.__wrapped__
        start = _line(coro)
        began = _perf()
        try:
            if val is None and tb is None:
                return coro.throw(typ)
            return coro.throw(typ, val, tb)  # the old three-argument form
        finally:
            self._done(coro, began, start)

    def close(self) -> None:
        self.__wrapped__.close()

    def __await__(self) -> Any:
        return self.__wrapped__.__await__()

    def __getattr__(self, name: str) -> Any:
        if name == "__wrapped__":  # not set yet: no recursion through the slot
            raise AttributeError(name)
        # cr_frame, cr_await, cr_code, cr_running, cr_suspended, cr_origin, __name__,
        # __qualname__: whatever inspects a task's coroutine sees the real one.
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)
