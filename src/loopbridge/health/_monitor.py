"""Heartbeats on watched loops, and one watchdog thread that catches stalls as they happen.

A *beat* is a ``call_later`` chain on a loop: each tick records how late it ran (the
scheduling lag) in a :class:`LagHistogram` and schedules the next. The *watchdog* is
one daemon thread for the process. It never touches a loop: it reads, without
locks, when each loop's next tick is due; a tick overdue by more than the threshold
is a stall in progress, and the watchdog samples the loop thread's stack with
``sys._current_frames()`` at 1x, 4x and 16x the threshold, and the thread's own CPU
clock. When the tick finally runs, the record is closed with a cause read from that
evidence. Records are plain data (strings and numbers) in a bounded ring: nothing
here keeps a task, a frame or a coroutine alive.
"""

from __future__ import annotations

import asyncio
import collections
import dis
import gc
import linecache
import math
import os
import selectors
import sys
import threading
import time
import types
import warnings
import weakref
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .. import _inspect, _loops, _worker
from .._inspect import ChainingFactory
from ._histogram import LagHistogram
from ._timed import StepTimer, TimedCoroutine

__all__ = ["Monitor", "PendingTask", "StallRecord"]

_WRAPPER_CODE = _worker._run_capturing_context.__code__
_CALL_OPS = frozenset(
    op
    for name, op in dis.opmap.items()
    if name.startswith(("CALL", "PRECALL")) or name in ("CALL_FUNCTION_EX",)
)
_STACK_DEPTH = 12  # frames kept per sample, innermost first
_SAMPLES_AT = (1, 4, 16)  # stack samples, in multiples of the threshold


@dataclass
class StallRecord:
    """One stall of one loop: plain data only (nothing in it keeps a frame alive).

    ``cause`` is one of ``computing`` (the loop thread's CPU time grew by about the
    stall), ``blocked`` (it did not, and the thread sat in a call: ``time.sleep``, a
    socket, a lock), ``GIL-starved`` (it did not, and the thread was at Python code,
    waiting to run), ``gc`` (a garbage collection filled most of it), or
    ``unknown`` (no per-thread CPU clock here). ``cell_held`` marks a notebook cell
    that held the kernel's loop while it ran: the kernel doing its job.

    Example::

        for s in loopbridge.health.stalls():
            print(s.cause, s.coroutine, s.where, s.code)
    """

    loop: str
    thread: str
    started: float  # time.time() when the stall began
    duration: float  # seconds
    cause: str
    cpu: float | None  # CPU seconds of the loop thread during the stall
    gc_pause: float  # seconds of garbage collection inside the stall
    task: str | None  # the task running on the loop when sampled
    coroutine: str | None
    where: str | None  # innermost user line: "file:line in function"
    code: str | None  # that line's source text
    submitted_by: str | None = None  # for bridge work: the sync caller's line
    samples: list[list[str]] = field(default_factory=list)  # stacks, innermost first
    sampled_at: list[float] = field(default_factory=list)  # seconds into the stall
    cell_held: bool = False

    def summary(self) -> str:
        what = (
            f"the cell held the kernel's loop for {_ms(self.duration)}"
            if self.cell_held
            else f"{self.loop} stalled {_ms(self.duration)} ({self.cause})"
        )
        if self.coroutine and not self.cell_held:
            what += f" in {self.coroutine}"
        if self.where:
            what += f" at {self.where}"
        if self.submitted_by:
            what += f", handed to the bridge at {self.submitted_by}"
        return what


@dataclass
class LostError:
    """An error nobody will see: a task destroyed while pending, an exception never
    retrieved, a coroutine never awaited. Plain data, like the stall records.

    Example::

        for e in loopbridge.health.leaks().lost:
            print(e.kind, e.where)
    """

    kind: str  # "task destroyed pending" | "exception never retrieved" | "never awaited"
    message: str
    where: str | None  # the coroutine's line, or the creation site when known
    loop: str | None
    at: float  # time.time()

    def summary(self) -> str:
        where = f" ({self.where})" if self.where else ""
        on = f" on {self.loop}" if self.loop else ""
        return f"{self.kind}{on}: {self.message}{where}"


@dataclass
class TaskEnd:
    """A task that ended cancelled or with an exception (the termination log).

    Example::

        loopbridge.health.start(tasks=True)
        ...
        for t in loopbridge.health.leaks().ended:
            print(t.outcome, t.created_at)
    """

    loop: str | None
    task: str
    coroutine: str
    outcome: str  # "cancelled" or "ExceptionType: message"
    created_at: str | None  # the creation site, "file:line in function"
    lived: float  # seconds from creation to the end
    at: float  # time.time() of the end

    def summary(self) -> str:
        made = f", created at {self.created_at}" if self.created_at else ""
        return f"{self.task} {self.coroutine} {self.outcome} after {_ms(self.lived)}{made}"


class _Made:
    """A tracked task: plain data, the task itself only by weak reference. ``owner``
    is the entry of the tracked task that made it, or the number of the cell that
    did. An entry names itself the first time it owns another (while its task runs:
    on 3.10 a finished task's coroutine can no longer be told), so that reports can
    name it after it is gone."""

    __slots__ = ("coro", "ended", "label", "made", "name", "owner", "owns", "ref", "site")

    def __init__(
        self, ref: Any, made: float, site: str | None, label: str | None, owner: Any
    ) -> None:
        self.ref = ref
        self.made = made  # time.time()
        self.site = site
        self.label = label
        self.owner: _Made | int | None = owner
        self.owns = False
        self.ended: float | None = None
        self.name: str | None = None  # filled when needed: naming costs
        self.coro: str | None = None

    def describe(self, task: Any) -> tuple[str, str]:
        if task is not None:
            self.name = task.get_name() if hasattr(task, "get_name") else "?"
            self.coro = _worker._coro_name(task)
        return self.name or "?", self.coro or "?"


@dataclass
class PendingTask:
    """A task still pending long after it was made, or after what made it ended.

    ``owner`` is the cell (``cell In[5]``) or the task that made it, when that one
    has ended (``overdue`` then counts from its end), else None (``overdue`` is
    then its age).

    Example::

        for p in loopbridge.health.leaks().pending:
            print(p.summary())
    """

    task: str
    coroutine: str
    age: float
    created_at: str | None
    loop: str | None
    owner: str | None
    overdue: float

    def summary(self) -> str:
        made = f", created at {self.created_at}" if self.created_at else ""
        if self.owner:
            when = f"still pending {_ms(self.overdue)} after {self.owner} that made it ended"
        else:
            when = f"pending for {_ms(self.age)}"
        return f"{self.task} {self.coroutine} on {self.loop}: {when}{made}"


class _StepStats:
    """Samples of what one loop was running: per task coroutine or callback line."""

    __slots__ = ("longest", "run", "samples", "where")

    def __init__(self) -> None:
        self.samples = 0
        self.run = 0  # consecutive samples of the same running task or callback
        self.longest = 0
        self.where: collections.Counter[str] = collections.Counter()


class _StepSampler:
    """``steps=True``: the watchdog also samples, every ``period`` seconds, what each
    watched loop is running (its current task, or the callback's line), from the
    loop thread's stack. A statistical profile, the way py-spy works: it needs no
    hook in the loop, so it serves uvloop as well as asyncio's own loops."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.next = 0.0
        # (loop label, what) -> stats; what = "task coroutine()" or "callback at file:line"
        self.stats: dict[tuple[str, str], _StepStats] = {}
        self.running: dict[int, tuple[tuple[str, str], tuple[int, int]] | None] = {}

    def sample(self, beats: list[_Beat]) -> None:
        frames = sys._current_frames()
        for beat in beats:
            ident = beat.thread_id
            frame = frames.get(ident) if ident is not None else None
            if frame is None or beat.loop.is_closed():
                continue
            key, runner, where = _what_runs(beat.loop, frame)
            # A heartbeat between two samples means the loop got round in between:
            # the run was broken even if the same task runs again (runs are told
            # apart to the heartbeat's resolution).
            marker = (runner, beat.hist.count)
            previous = self.running.get(id(beat))
            if key is None:  # idle: waiting in select()
                self.running[id(beat)] = None
                continue
            full = (beat.label or "?", key)
            stats = self.stats.get(full)
            if stats is None:
                if len(self.stats) >= 500:  # bounded: the rarely seen go first
                    rare = min(self.stats, key=lambda k: self.stats[k].samples)
                    del self.stats[rare]
                stats = self.stats[full] = _StepStats()
            stats.samples += 1
            if where:
                stats.where[where] += 1
            same = previous is not None and previous[0] == full and previous[1] == marker
            stats.run = stats.run + 1 if same else 1
            stats.longest = max(stats.longest, stats.run)
            self.running[id(beat)] = (full, marker)
        del frames

    def rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for (loop, what), st in self.stats.items():
            where = st.where.most_common(1)[0][0] if st.where else None
            out.append(
                {
                    "loop": loop,
                    "what": what,
                    "samples": st.samples,
                    "total": st.samples * self.period,
                    "longest": st.longest * self.period,
                    "where": where,
                }
            )
        out.sort(key=lambda r: r["total"], reverse=True)
        return out


def _what_runs(loop: asyncio.AbstractEventLoop, frame: Any) -> tuple[str | None, int, str | None]:
    """What *loop*'s thread runs now: (key, a marker for "the same run", user line)."""
    innermost = frame
    where = None
    f = frame
    depth = 0
    while f is not None and depth < 40:
        co = f.f_code
        if where is None and not co.co_filename.startswith((_HERE, _ASYNCIO, _SELECTORS)):
            name = getattr(co, "co_qualname", co.co_name)
            where = f"{co.co_filename}:{f.f_lineno} in {name}"
        f = f.f_back
        depth += 1
    code = innermost.f_code
    if code.co_filename.startswith(_SELECTORS) or (
        code.co_filename.startswith(_HERE) and code.co_name == "_thread_main"
    ):
        # waiting in select() (asyncio), or inside a compiled loop's run_forever with
        # no Python frame above the worker's thread function (uvloop): idle
        return None, 0, None
    task = None
    try:
        task = asyncio.tasks._current_tasks.get(loop)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - another interpreter's layout
        pass
    if task is not None:
        return f"task {_worker._coro_name(task)}", id(task), where
    if where is None:
        return None, 0, None  # loop machinery only
    return f"callback at {where}", 0, where


class _TaskFactory(ChainingFactory):
    """While health runs with ``tasks=True``: note each task's creation site, and its
    end if it was cancelled or failed. Chains to the factory that was there."""

    def __init__(self, monitor: Monitor, previous: Any, label: str | None) -> None:
        super().__init__(previous)
        self.monitor = monitor
        self.label = label
        # steps=True: the timer entry of each coroutine function (naming one costs)
        self.timer: StepTimer | None = None
        self.generation = 0
        self.entries: dict[types.CodeType, Any] = {}

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        monitor = self.monitor  # a factory left chained after stop() records nothing
        timer = monitor.timer
        if timer is not None and type(coro) is types.CoroutineType:
            code = coro.cr_code
            fresh = timer is self.timer and timer.generation == self.generation
            entry = self.entries.get(code) if fresh else None
            if entry is None:
                what = f"task {_worker._coro_name(coro)}"
                entry = timer.entry(self.label or "?", what)
                if code is not _WRAPPER_CODE:  # 3.10's wrapper runs every coroutine
                    if not fresh:  # a new timer, or entries cleared or dropped since
                        self.timer, self.generation, self.entries = timer, timer.generation, {}
                    self.entries[code] = entry
            coro = TimedCoroutine(coro, entry)
        if not monitor.track_tasks:
            return self.make(loop, coro, **kwargs)  # type: ignore[no-any-return]
        # Noted before make(): an eager task (3.12+) runs its first step inside it,
        # and what that step starts must find its maker.
        entry = monitor.task_begun(_creation_site(), self.label, asyncio.current_task(loop))
        try:
            task = self.make(loop, coro, **kwargs)
        finally:
            monitor.making().pop()
        try:
            monitor.task_made(task, entry)
        except Exception:  # noqa: BLE001 - noting must never break task creation
            pass
        return task  # type: ignore[no-any-return]


def _creation_site() -> str | None:
    frame: FrameType | None = sys._getframe(2)
    for _ in range(16):
        if frame is None:
            return None
        code = frame.f_code
        if not code.co_filename.startswith((_HERE, _ASYNCIO)):
            name = getattr(code, "co_qualname", code.co_name)
            return f"{_place(code.co_filename)}:{frame.f_lineno} in {name}"
        frame = frame.f_back
    return None


def _place(filename: str) -> str:
    """A notebook cell is named as such ("In[3]"), not by its temporary file."""
    try:
        return _inspect._cell_of_file(filename) or filename
    except Exception:  # noqa: BLE001 - a name is never worth an error
        return filename


def _ms(seconds: float) -> str:
    """A duration for people: ``0.3 ms``, ``498 ms``, ``12.5 s``."""
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.0995:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.1f} ms"


class _Beat:
    """The heartbeat of one loop; its fields are read by the watchdog without locks."""

    __slots__ = (
        "due",
        "every",
        "factory",
        "handle",
        "handler",
        "hist",
        "label",
        "loop",
        "monitor",
        "previous_handler",
        "running",
        "stall",
        "thread_id",
        "thread_name",
    )

    def __init__(
        self,
        monitor: Monitor,
        loop: asyncio.AbstractEventLoop,
        label: str | None,
        every: float,
    ) -> None:
        self.monitor = monitor
        self.handler: Any = None
        self.previous_handler: Any = None
        self.factory: _TaskFactory | None = None
        self.loop = loop
        self.label: str | None = label
        self.every = every
        self.hist = LagHistogram()
        self.handle: asyncio.TimerHandle | None = None
        self.running = True
        self.due: float | None = None  # perf_counter time the next tick is due
        self.thread_id: int | None = None
        self.thread_name = "?"
        self.stall: _OpenStall | None = None

    def first(self) -> None:
        """On the loop: the first tick; the chained exception handler goes in."""
        self.thread_id = threading.get_ident()
        self.thread_name = threading.current_thread().name
        if self.label is None:  # a worker that started while watching: named by now
            self.label = label_for(self.loop)
        if self.running and self.handler is None:
            self.previous_handler = self.loop.get_exception_handler()
            self.handler = self._on_exception
            self.loop.set_exception_handler(self.handler)
        self.install_factory()
        self._schedule()

    def install_factory(self) -> None:
        """On the loop: chain health's task factory, if tasks or steps want it."""
        wants = self.monitor.track_tasks or self.monitor.timer is not None
        if self.running and wants and self.factory is None:
            self.factory = _TaskFactory(self.monitor, self.loop.get_task_factory(), self.label)
            self.loop.set_task_factory(self.factory)

    def _on_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Note the errors nobody would see, then hand over as before (never replace)."""
        try:
            lost = _lost_from_context(context, self.label)
            if lost is not None:
                self.monitor.lost.append(lost)
        except Exception:  # noqa: BLE001 - noting must never hide the error itself
            pass
        previous = self.previous_handler
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _schedule(self) -> None:
        if not self.running:
            return
        self.due = time.perf_counter() + self.every
        self.handle = self.loop.call_later(self.every, self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        due = self.due
        if due is not None:
            self.hist.add(now - due)
        stall = self.stall
        if stall is not None and stall.due == due:
            self.stall = None
            stall.close(now)
        elif due is not None and now - due >= 1.5 * self.monitor.threshold:
            # A stall the watchdog never saw, though it was due to look at 1x the
            # threshold: it could not run at all (a garbage collection or C code held
            # the GIL the whole time). Recorded here, after the fact, with the
            # evidence there is.
            self.stall = None
            self.monitor.add_record(_unseen_stall(self, due, now))
        self._schedule()

    def stop(self) -> None:
        """On the loop: no more ticks; the previous exception handler back."""
        self.running = False
        self.due = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.handler is not None:
            if self.loop.get_exception_handler() is self.handler:  # not replaced since
                self.loop.set_exception_handler(self.previous_handler)
            self.handler = None
            self.previous_handler = None
        factory, self.factory = self.factory, None
        if factory is not None:
            previous = factory.previous
            if self.loop.get_task_factory() is factory:  # not replaced since
                self.loop.set_task_factory(previous)


class _OpenStall:
    """A stall in progress, filled by the watchdog thread."""

    __slots__ = (
        "at_call",
        "beat",
        "cell",
        "cpu_clock",
        "cpu_start",
        "due",
        "gc_start",
        "monitor",
        "record",
        "wall_start",
    )

    def __init__(self, monitor: Monitor, beat: _Beat, due: float) -> None:
        self.monitor = monitor
        self.beat = beat
        self.due = due
        self.wall_start = time.time() - (time.perf_counter() - due)
        self.cpu_clock = _cpu_clock(beat.thread_id)
        self.cpu_start = _read_clock(self.cpu_clock)
        self.gc_start = monitor.gc_total(due)
        self.cell = monitor.cell_running and beat.loop is monitor.kernel_loop
        self.at_call = True
        self.record = StallRecord(
            loop=beat.label or "?",
            thread=beat.thread_name,
            started=self.wall_start,
            duration=0.0,
            cause="unknown",
            cpu=None,
            gc_pause=0.0,
            task=None,
            coroutine=None,
            where=None,
            code=None,
        )

    def sample(self, now: float) -> None:
        beat = self.beat
        frame = sys._current_frames().get(beat.thread_id or -1)
        stack, where, code, at_call = _read_stack(frame)
        del frame
        rec = self.record
        rec.samples.append(stack)
        rec.sampled_at.append(now - self.due)
        if rec.where is None:
            rec.where, rec.code = where, code
        self.at_call = at_call
        if rec.task is None:
            rec.task, rec.coroutine, rec.submitted_by = _current_task(beat.loop)

    def close(self, now: float) -> None:
        """On the loop thread, from the tick that ends the stall."""
        rec = self.record
        wall = now - self.due
        rec.duration = wall
        cpu_end = _read_clock(self.cpu_clock)
        rec.cpu = None if cpu_end is None or self.cpu_start is None else cpu_end - self.cpu_start
        rec.gc_pause = self.monitor.gc_total(now) - self.gc_start
        at_call = self.at_call
        rec.cell_held = self.cell or (
            self.monitor.cell_running and self.beat.loop is self.monitor.kernel_loop
        )
        rec.cause = _cause(wall, rec.cpu, rec.gc_pause, at_call)
        self.monitor.add_record(rec)


def _lost_from_context(context: dict[str, Any], label: str | None) -> LostError | None:
    """Read a loop exception handler's context: the errors no caller will ever see."""
    message = str(context.get("message", ""))
    low = message.lower()
    if "destroyed but it is pending" in low:
        kind = "task destroyed pending"
    elif "never retrieved" in low:
        kind = "exception never retrieved"
    else:
        return None
    future = context.get("task") or context.get("future")
    exc = context.get("exception")
    detail = message
    if exc is not None:
        detail = f"{message}: {type(exc).__name__}: {exc}"
    where = None
    coro = getattr(future, "get_coro", lambda: None)()
    if coro is not None:
        code = getattr(coro, "cr_code", None)
        frame = getattr(coro, "cr_frame", None)
        if code is not None:
            line = frame.f_lineno if frame is not None else code.co_firstlineno
            name = getattr(code, "co_qualname", code.co_name)
            where = f"{code.co_filename}:{line} in {name}"
    created = context.get("source_traceback") or getattr(future, "_source_traceback", None)
    if created:
        outside = [f for f in created if not f.filename.startswith((_HERE, _ASYNCIO))]
        if outside:
            made = outside[-1]
            where = f"created at {made.filename}:{made.lineno}" + (f"; {where}" if where else "")
    return LostError(kind, detail, where, label, time.time())


def _unseen_stall(beat: _Beat, due: float, now: float) -> StallRecord:
    monitor = beat.monitor
    wall = now - due
    gc_pause = monitor.gc_total(now) - monitor.gc_total(due)
    cell = monitor.cell_running and beat.loop is monitor.kernel_loop
    return StallRecord(
        loop=beat.label or "?",
        thread=beat.thread_name,
        started=time.time() - wall,
        duration=wall,
        cause="gc" if gc_pause >= 0.5 * wall else "unknown (the GIL was held throughout)",
        cpu=None,
        gc_pause=gc_pause,
        task=None,
        coroutine=None,
        where=None,
        code=None,
        cell_held=cell,
    )


def _cause(wall: float, cpu: float | None, gc_pause: float, at_call: bool) -> str:
    if gc_pause >= 0.5 * wall:
        return "gc"
    if cpu is None:
        return "unknown"
    if cpu >= 0.5 * wall:
        return "computing" if gc_pause < 0.2 * wall else "computing, with gc"
    return "blocked" if at_call else "GIL-starved"


def _cpu_clock(thread_id: int | None) -> int | None:
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None or thread_id is None:
        return None
    try:
        return int(getter(thread_id))
    except (OSError, OverflowError, ValueError):
        return None


def _read_clock(clock: int | None) -> float | None:
    if clock is None:
        return None
    try:
        return time.clock_gettime(clock)
    except OSError:
        return None


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the loopbridge package
_ASYNCIO = os.path.dirname(os.path.abspath(asyncio.__file__))
_SELECTORS = os.path.abspath(selectors.__file__)


def _read_stack(frame: Any) -> tuple[list[str], str | None, str | None, bool]:
    """The stack as strings (innermost first), the innermost frame outside asyncio and
    loopbridge, its source line, and whether the innermost frame sits in a call."""
    lines: list[str] = []
    where = code = None
    at_call = True
    first = True
    while frame is not None and len(lines) < _STACK_DEPTH:
        co = frame.f_code
        lineno = frame.f_lineno or co.co_firstlineno
        name = getattr(co, "co_qualname", co.co_name)
        place = _place(co.co_filename)
        lines.append(f"{place}:{lineno} in {name}")
        if first:
            at_call = _at_call(co.co_code, frame.f_lasti)
            first = False
        if where is None and not co.co_filename.startswith((_HERE, _ASYNCIO)):
            where = f"{place}:{lineno} in {name}"
            code = linecache.getline(co.co_filename, lineno).strip() or None
        frame = frame.f_back
    return lines, where, code, at_call


def _at_call(code: bytes, lasti: int) -> bool:
    if lasti < 0 or lasti >= len(code):
        return True
    return code[lasti] in _CALL_OPS


def _current_task(
    loop: asyncio.AbstractEventLoop,
) -> tuple[str | None, str | None, str | None]:
    """The task running on *loop*: its name, its coroutine, and who submitted it."""
    try:
        task = asyncio.tasks._current_tasks.get(loop)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - another interpreter's layout: just say unknown
        return None, None, None
    if task is None:
        return None, None, None
    # the user's coroutine, even on 3.10; and the sync caller, for bridge work
    site = _worker.call_site_of(loop, task)
    if site is not None:
        head, _, tail = site.rpartition(" in ")
        file, _, line = head.rpartition(":")
        site = f"{_place(file)}:{line} in {tail}"
    return task.get_name(), _worker._coro_name(task), site


class Monitor:
    """The process's heartbeats and watchdog (one instance: ``loopbridge.health``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.beats: dict[int, _Beat] = {}
        self.every = 0.05
        self.threshold = 0.1
        self.records: collections.deque[StallRecord] = collections.deque(maxlen=200)
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.gc_pauses: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self.gc_started: float | None = None
        self.cell_running = False
        self.kernel_loop: asyncio.AbstractEventLoop | None = None
        self.active = False
        self.lost: collections.deque[LostError] = collections.deque(maxlen=200)
        self.previous_showwarning: Any = None
        self.track_tasks = False
        self.sampler: _StepSampler | None = None
        self.step_rows: list[dict[str, Any]] = []
        # id(task) -> _Made: the tasks made while tasks=True runs, still pending
        self.pending: dict[int, _Made] = {}
        self._making = threading.local()
        self.ended: collections.deque[TaskEnd] = collections.deque(maxlen=1000)
        # cells (set by the IPython extension): the running one, and when each ended
        self.cell_number: int | None = None
        self.cell_began = 0.0
        self.cells_ended: collections.OrderedDict[int, float] = collections.OrderedDict()
        self.timer: StepTimer | None = None
        self.timer_rows: list[dict[str, Any]] = []

    # -- tasks (tasks=True) ---------------------------------------------------------------

    def making(self) -> list[_Made]:
        """The tasks this thread is making right now (an eager one's first step may
        make more), innermost last."""
        stack: list[_Made] | None = getattr(self._making, "stack", None)
        if stack is None:
            stack = self._making.stack = []
        return stack

    def task_begun(
        self, site: str | None, label: str | None, parent: asyncio.Future[Any] | None
    ) -> _Made:
        """A task is about to be made: its entry, with its owner (pushed on making())."""
        made_by = self.pending.get(id(parent)) if parent is not None else None
        if made_by is not None and made_by.ref() is not parent:
            made_by = None
        stack = self.making()
        if made_by is None and parent is not None and stack:
            made_by = stack[-1]  # the parent is an eager task still being made
        in_cell = self.cell_running and self.cell_number is not None
        owner: _Made | int | None = None
        if made_by is not None and not (in_cell and made_by.made < self.cell_began):
            owner = made_by  # made inside a tracked task: it should not outlive it
            if not made_by.owns:  # named while it runs (3.10: its frame shows the coroutine)
                made_by.owns = True
                made_by.describe(parent)
        elif in_cell:
            # made by the cell's own code (the task running it is the kernel's, made
            # before the cell began): the cell owns it
            owner = self.cell_number
        entry = _Made(None, time.time(), site, label, owner)
        stack.append(entry)
        return entry

    def task_made(self, task: asyncio.Future[Any], entry: _Made) -> None:
        entry.ref = weakref.ref(task)
        self.pending[id(task)] = entry
        task.add_done_callback(self.task_done)

    def task_done(self, task: asyncio.Future[Any]) -> None:
        entry = self.pending.pop(id(task), None)
        if entry is None or entry.ref() is not task:
            return
        entry.ended = time.time()
        if task.cancelled():
            outcome = "cancelled"
        else:
            # _exception, not exception(): reading must not mark it retrieved, or
            # asyncio would no longer report an exception nobody awaited.
            exc = getattr(task, "_exception", None)
            if exc is None:
                return
            outcome = f"{type(exc).__name__}: {exc}"
        name, coro = entry.describe(task)
        self.ended.append(
            TaskEnd(
                entry.label, name, coro, outcome, entry.site, entry.ended - entry.made, entry.ended
            )
        )

    def cell_started(self, number: int | None) -> None:
        self.cell_began = time.time()
        self.cell_number = number
        self.cell_running = True

    def cell_finished(self) -> None:
        number, self.cell_number = self.cell_number, None
        self.cell_running = False
        if number is not None:
            self.cells_ended[number] = time.time()
            if len(self.cells_ended) > 1000:
                self.cells_ended.popitem(last=False)

    def owner_state(self, owner: _Made | int | None) -> float | bool | None:
        """When the cell or task that made a task ended; True while it still runs;
        None when there is no owner or its end is no longer known."""
        if owner is None:
            return None
        if isinstance(owner, int):
            ended = self.cells_ended.get(owner)
            if ended is None and self.cell_running and self.cell_number == owner:
                return True
            return ended
        if owner.ended is not None:
            return owner.ended
        if owner.ref is None:
            return True  # still being made
        parent = owner.ref()
        return True if parent is not None and not parent.done() else None

    def still_pending(self, older_than: float) -> list[PendingTask]:
        """Tasks made while tasks=True ran and still pending: those that outlived the
        cell or task that made them by *older_than* s, and those without a known
        owner that are *older_than* s old (a task whose maker still runs is its
        business, not a leak; the kernel's own tasks are not listed). Longest
        overdue first."""
        now = time.time()
        out = []
        kernel_dirs = _inspect._internal_dirs()
        for made in list(self.pending.values()):
            task = made.ref()
            if task is None or task.done():
                continue
            if _inspect._internal_code(_inspect._coro_code(_inspect._user_coro(task)), kernel_dirs):
                continue  # the kernel's own (the task running the current cell, say)
            state = self.owner_state(made.owner)
            if state is True:
                continue
            owner = None
            overdue = now - made.made
            if isinstance(state, float):
                overdue = now - state
                if isinstance(made.owner, int):
                    owner = f"cell In[{made.owner}]"
                elif made.owner is not None:
                    owner = " ".join(made.owner.describe(None))
            if overdue < older_than:
                continue
            name, coro = made.describe(task)
            out.append(
                PendingTask(name, coro, now - made.made, made.site, made.label, owner, overdue)
            )
        out.sort(key=lambda p: p.overdue, reverse=True)
        return out

    # -- "coroutine ... was never awaited" --------------------------------------------

    def showwarning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        try:
            text = str(message)
            if issubclass(category, RuntimeWarning) and "was never awaited" in text:
                where = f"{filename}:{lineno}" if filename and filename != "sys" else None
                self.lost.append(LostError("never awaited", text, where, None, time.time()))
        except Exception:  # noqa: BLE001 - noting must never hide the warning itself
            pass
        previous = self.previous_showwarning or warnings._showwarning_orig  # type: ignore[attr-defined]
        previous(message, category, filename, lineno, file, line)

    # -- gc pauses ----------------------------------------------------------------------

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.gc_started = now
        elif self.gc_started is not None:
            self.gc_pauses.append((self.gc_started, now))
            self.gc_started = None

    def gc_total(self, until: float) -> float:
        """Seconds of GC pause before *until* (a running cumulative sum, ring-bounded)."""
        total = 0.0
        for start, end in list(self.gc_pauses):
            if start < until:
                total += min(end, until) - start
        return total

    # -- records ------------------------------------------------------------------------

    def add_record(self, record: StallRecord) -> None:
        self.records.append(record)

    # -- life cycle ------------------------------------------------------------------------

    def start(
        self, every: float, threshold: float, tasks: bool = False, steps: float | None = None
    ) -> None:
        with self.lock:
            self.every, self.threshold = every, threshold
            self.track_tasks = self.track_tasks or tasks
            if steps is not None and self.sampler is None:
                self.sampler = _StepSampler(steps)
                self.timer = StepTimer()
            if self.active:
                for beat in self.beats.values():  # tasks/steps asked for on a second start
                    if beat.thread_id is not None:
                        _call_on(beat.loop, beat.install_factory)
                return
            self.active = True
            self.stopping.clear()
            gc.callbacks.append(self.on_gc)
            self.previous_showwarning = warnings.showwarning
            warnings.showwarning = self.showwarning
            self.thread = threading.Thread(
                target=self.watchdog, name="loopbridge-health", daemon=True
            )
            self.thread.start()

    def stop(self) -> None:
        with self.lock:
            if not self.active:
                return
            self.active = False
            self.track_tasks = False
            if self.sampler is not None:
                self.step_rows = self.sampler.rows()  # kept for reading after stop
                self.sampler = None
            if self.timer is not None:
                self.timer_rows = self.timer.rows()
                self.timer = None
            beats = list(self.beats.values())
            self.beats.clear()
            thread, self.thread = self.thread, None
            self.stopping.set()
            if self.on_gc in gc.callbacks:
                gc.callbacks.remove(self.on_gc)
            if warnings.showwarning == self.showwarning:  # not replaced since: put back
                warnings.showwarning = self.previous_showwarning
            self.previous_showwarning = None
        for beat in beats:
            _stop_beat(beat)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def watch(self, loop: asyncio.AbstractEventLoop, label: str | None) -> bool:
        with self.lock:
            if id(loop) in self.beats and self.beats[id(loop)].loop is loop:
                return False
            beat = _Beat(self, loop, label, self.every)
            self.beats[id(loop)] = beat
        loop.call_soon_threadsafe(beat.first)
        return True

    def unwatch(self, loop: asyncio.AbstractEventLoop) -> bool:
        with self.lock:
            beat = self.beats.pop(id(loop), None)
        if beat is None or beat.loop is not loop:
            return False
        _stop_beat(beat)
        return True

    # -- the watchdog thread ----------------------------------------------------------------

    def watchdog(self) -> None:
        """Sleep until the next moment a check could find something: a tick's deadline
        (due + threshold) or an open stall's next sample. Loops that tick on time keep
        moving their deadline, so an idle process wakes about once per heartbeat."""
        pause = self.threshold
        while not self.stopping.wait(pause):
            now = time.perf_counter()
            wake = now + self.threshold
            beats = list(self.beats.values())
            for beat in beats:
                try:
                    wake = min(wake, self.check(beat, now))
                except Exception:  # noqa: BLE001 - the watchdog must outlive any one loop
                    pass
            sampler = self.sampler
            if sampler is not None:
                if now >= sampler.next:
                    try:
                        sampler.sample(beats)
                    except Exception:  # noqa: BLE001 - a failed sample is just skipped
                        pass
                    sampler.next = now + sampler.period
                wake = min(wake, sampler.next)
            pause = min(max(wake - time.perf_counter(), 0.001), self.threshold)

    def check(self, beat: _Beat, now: float) -> float:
        """Look at one beat; return when it next needs a look."""
        due = beat.due
        never = now + self.threshold
        if due is None or not beat.running:
            return never
        if beat.loop.is_closed():
            beat.running = False
            return never
        late = now - due
        stall = beat.stall
        if stall is None or stall.due != due:
            if late < self.threshold:
                return due + self.threshold
            stall = beat.stall = _OpenStall(self, beat, due)
        taken = len(stall.record.samples)
        if taken < len(_SAMPLES_AT) and late >= _SAMPLES_AT[taken] * self.threshold:
            stall.sample(now)
            taken += 1
        if taken < len(_SAMPLES_AT):
            return due + _SAMPLES_AT[taken] * self.threshold
        return never


def _stop_beat(beat: _Beat) -> None:
    beat.running = False
    beat.due = None
    _call_on(beat.loop, beat.stop)


def _call_on(loop: asyncio.AbstractEventLoop, callback: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass  # closed: nothing left to do there


def label_for(loop: asyncio.AbstractEventLoop) -> str:
    for worker in list(_worker._all_workers):
        gen = worker._gen
        if gen is not None and gen.loop is loop:
            return worker.thread_name
    seen = _loops.role_of(loop)
    if seen is not None and seen.role.startswith("the Jupyter kernel's loop"):
        return "main (kernel)"
    ident = getattr(loop, "_thread_id", None)
    if ident is not None and ident == threading.main_thread().ident:
        return "main"
    if ident is not None:
        thread = threading._active.get(ident)  # type: ignore[attr-defined]
        if thread is not None:
            return str(thread.name)
    return f"loop-{id(loop):x}"


def is_finite_positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
