"""Loop health: scheduling lag per loop, and stalls caught while they happen.

``start()`` puts a heartbeat on the loops to watch (every worker loop, the loop
running in the calling thread, e.g. a notebook kernel's, and any loop given to
:func:`watch`) and starts one watchdog thread. Each heartbeat measures how late
its ticks run (the loop's scheduling lag, kept in a log-bucket histogram); the
watchdog notices a loop whose tick is overdue by more than ``threshold`` and
samples that loop thread's stack *during* the stall (at 1x, 4x and 16x the
threshold) and its CPU clock, so each stall record says where it started, where
it still was, and why: ``computing``, ``blocked`` (in a sync call), ``GIL-starved``
or ``gc``. ``stop()`` removes every heartbeat, the thread and the gc hook.

Usable without IPython; ``%aio health`` is the notebook face of it.

Example::

    import loopbridge.health as health

    health.start(every=0.05, threshold=0.1)
    ...                                   # run the program
    print(health.report())                # lag per loop, and the stalls with stacks
    health.stop()
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import _inspect, _worker
from ._histogram import LagHistogram
from ._monitor import (
    LostError,
    Monitor,
    PendingTask,
    StallRecord,
    TaskEnd,
    is_finite_positive,
    label_for,
)
from ._view import DoctorView, HealthView, LostView, StepsView

__all__ = [
    "DoctorView",
    "HealthView",
    "LagHistogram",
    "LostError",
    "LostView",
    "PendingTask",
    "StallRecord",
    "StepsView",
    "TaskEnd",
    "clear",
    "doctor",
    "is_running",
    "leaks",
    "report",
    "slow_steps",
    "stalls",
    "start",
    "stop",
    "unwatch",
    "watch",
]

_the_monitor = Monitor()
_STEP_PERIOD = 0.01  # seconds between samples of what each loop runs (steps=True)


def _check_seconds(value: object, name: str) -> float:
    if not is_finite_positive(value):
        raise ValueError(
            f"{name} must be a positive number of seconds (e.g. 0.05 for 50 ms), got {value!r}."
        )
    return float(value)  # type: ignore[arg-type]


def _check_loop(loop: object) -> asyncio.AbstractEventLoop:
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(
            f"watch() expects an asyncio event loop (e.g. asyncio.get_running_loop() or "
            f"a WorkerLoop's .loop), got {loop!r}."
        )
    if loop.is_closed():
        raise ValueError(f"watch() got a closed event loop ({loop!r}): it can never tick again.")
    return loop


def start(
    *,
    every: float = 0.05,
    threshold: float = 0.1,
    loops: list[Any] | None = None,
    tasks: bool = False,
    steps: bool = False,
) -> list[str]:
    """Start watching; return the labels of the loops now watched.

    Args:
        every: seconds between heartbeats on each loop (default 50 ms).
        threshold: a tick this much overdue is a stall (default 100 ms).
        loops: the loops to watch; default: every loopbridge worker loop (also
            those started later) and the loop running in the calling thread.
        tasks: also note each new task's creation site (a chained task factory on
            the watched loops), for the termination log (tasks that ended cancelled
            or failed) and the tasks still pending long after they were made. It
            costs each task creation a few microseconds (``benchmarks/health.py``).
        steps: for :func:`slow_steps`, where each loop's time goes: every task
            step (one uninterrupted run of a task on its loop) is timed exactly
            through the task factory (count, total, longest, and the lines the
            longest ran between), and the watchdog samples each loop thread every
            10 ms for the callbacks and the hot line. No private loop attribute is
            read, so uvloop is covered too. Costs each task step about a
            microsecond (``benchmarks/health.py``).

    Example::

        loopbridge.health.start(every=0.02, threshold=0.05)
    """
    every = _check_seconds(every, "every")
    threshold = _check_seconds(threshold, "threshold")
    chosen = [_check_loop(lp) for lp in loops] if loops is not None else None
    for flag, value in (("tasks", tasks), ("steps", steps)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}.")
    _the_monitor.start(every, threshold, tasks, _STEP_PERIOD if steps else None)
    _worker._record_sites = True  # bridge calls note their caller's line while this runs
    if chosen is None:
        chosen = [loop for _worker_loop, loop in _inspect.worker_loops()]
        running = asyncio._get_running_loop()
        if running is not None:
            chosen.append(running)
        if _on_new_loop not in _worker._new_loop_hooks:
            _worker._new_loop_hooks.append(_on_new_loop)
    for loop in chosen:
        _the_monitor.watch(loop, label_for(loop))
    return sorted(b.label or "worker" for b in _the_monitor.beats.values())


def stop() -> None:
    """Stop every heartbeat and the watchdog thread; remove the gc and new-loop hooks.

    The records taken so far stay readable through :func:`report`/:func:`stalls`.

    Example::

        loopbridge.health.stop()
    """
    if _on_new_loop in _worker._new_loop_hooks:
        _worker._new_loop_hooks.remove(_on_new_loop)
    _worker._record_sites = False
    _the_monitor.stop()


def is_running() -> bool:
    """Whether the watchdog runs (between :func:`start` and :func:`stop`).

    Example::

        if not loopbridge.health.is_running():
            loopbridge.health.start()
    """
    return _the_monitor.active


def watch(loop: asyncio.AbstractEventLoop, *, label: str | None = None) -> bool:
    """Add *loop* to the watched loops (starting the watchdog if needed).

    Returns False if it was watched already.

    Example::

        loopbridge.health.watch(asyncio.get_running_loop(), label="app")
    """
    loop = _check_loop(loop)
    if not _the_monitor.active:
        _the_monitor.start(_the_monitor.every, _the_monitor.threshold)
        _worker._record_sites = True
    return _the_monitor.watch(loop, label or label_for(loop))


def unwatch(loop: asyncio.AbstractEventLoop) -> bool:
    """Stop the heartbeat on *loop*; False if it was not watched.

    Example::

        loopbridge.health.unwatch(loop)
    """
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"unwatch() expects an asyncio event loop, got {loop!r}.")
    return _the_monitor.unwatch(loop)


def stalls() -> list[StallRecord]:
    """The stall records taken so far (the last 200), oldest first.

    Example::

        for s in loopbridge.health.stalls():
            print(s.summary())
    """
    return list(_the_monitor.records)


def report() -> HealthView:
    """Lag per watched loop, and the stalls, as a view (text, HTML, records, DataFrame).

    Example::

        view = loopbridge.health.report()
        print(view)
        view.to_records()
    """
    return HealthView.from_monitor(_the_monitor)


def slow_steps() -> StepsView:
    """Where each watched loop's time went (with ``start(steps=True)``): per task
    coroutine or callback line, the sampled time on the loop and the longest
    uninterrupted run, largest first. Readable after :func:`stop` too.

    Example::

        loopbridge.health.start(steps=True)
        ...
        print(loopbridge.health.slow_steps())
    """
    m = _the_monitor
    sampler, timer = m.sampler, m.timer
    sampled = sampler.rows() if sampler is not None else list(m.step_rows)
    timed = timer.rows() if timer is not None else list(m.timer_rows)
    rows = _merge_steps(sampled, timed)
    period = sampler.period if sampler is not None else _STEP_PERIOD
    return StepsView(rows, sampling=sampler is not None or bool(rows), period=period)


def _merge_steps(
    sampled: list[dict[str, Any]], timed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (loop, task coroutine or callback line): a task's steps exactly as
    timed, with the line the samples saw most; a callback as sampled."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sampled:
        rows[(r["loop"], r["what"])] = {
            "loop": r["loop"],
            "what": r["what"],
            "steps": None,
            "total": r["total"],
            "longest": r["longest"],
            "samples": r["samples"],
            "where": r["where"],
            "span": None,
            "timed": False,
        }
    for t in timed:
        row = rows.get((t["loop"], t["what"]))
        samples = row["samples"] if row else 0
        where = row["where"] if row else None
        rows[(t["loop"], t["what"])] = {
            "loop": t["loop"],
            "what": t["what"],
            "steps": t["steps"],
            "total": t["total"],
            "longest": t["longest"],
            "samples": samples,
            "where": where or t["span"],
            "span": t["span"],
            "timed": True,
        }
    return sorted(rows.values(), key=lambda r: r["total"], reverse=True)


def clear() -> None:
    """Forget the stall records and lost errors taken so far (the lag histograms stay).

    Example::

        loopbridge.health.clear()   # start a fresh investigation
    """
    _the_monitor.records.clear()
    _the_monitor.lost.clear()
    _the_monitor.ended.clear()
    _the_monitor.step_rows = []
    _the_monitor.timer_rows = []
    if _the_monitor.sampler is not None:
        _the_monitor.sampler.stats.clear()
    if _the_monitor.timer is not None:
        _the_monitor.timer.clear()


def leaks(*, older_than: float = 10.0) -> LostView:
    """What was left behind, caught while health runs:

    * errors nobody would have seen: tasks destroyed while pending, exceptions never
      retrieved (a chained loop exception handler on each watched loop), coroutines
      never awaited (a chained ``warnings.showwarning``);
    * with ``start(tasks=True)``: tasks still pending *older_than* seconds after the
      notebook cell or the task that made them ended (a task started by a
      ``run_sync`` call and left running when it returned, one started by a cell and
      forgotten), or, without such an owner, *older_than* seconds after they were
      made; each with its creation site. And the termination log: the last 1,000
      tasks that ended cancelled or with an exception.

    Example::

        print(loopbridge.health.leaks(older_than=30))
    """
    older_than = _check_seconds(older_than, "older_than")
    m = _the_monitor
    return LostView(
        list(m.lost),
        m.active,
        pending=m.still_pending(older_than),
        ended=list(m.ended),
        older_than=older_than,
        tracking=m.track_tasks,
    )


def doctor() -> DoctorView:
    """One screen: the worst stalls with their stacks, the lost errors, and what to do.

    Example::

        print(loopbridge.health.doctor())
    """
    return DoctorView(report(), list(_the_monitor.lost), slow_steps())


def _on_new_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Called in a new worker's thread before its loop runs and is named: the beat
    # reads its label at its first tick.
    if _the_monitor.active:
        _the_monitor.watch(loop, None)
