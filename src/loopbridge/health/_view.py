"""What ``loopbridge.health.report()`` and ``%aio health`` show: lag per loop, and stalls."""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .._inspect import _short_path
from .._views import _View, html_table, text_table
from ._monitor import LostError, PendingTask, StallRecord, TaskEnd, _ms

if TYPE_CHECKING:
    from ._monitor import Monitor

__all__ = ["DoctorView", "HealthView", "LostView", "StepsView"]

_BARS = "▁▂▃▄▅▆▇█"
_HEADERS = ("loop", "thread", "beats", "p50", "p90", "p99", "max", "recent")
_STALLS_SHOWN = 10


def sparkline(values: list[float]) -> str:
    """Unicode bars, one per sample, scaled to the largest."""
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in values)


def sparkline_svg(values: list[float], width: int = 120, height: int = 16) -> str:
    """An inline SVG polyline (no plotting library needed)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )
    return (
        f"<svg width='{width}' height='{height}' style='vertical-align:middle'>"
        f"<polyline fill='none' stroke='currentColor' stroke-width='1' points='{points}'/>"
        "</svg>"
    )


class HealthView(_View):
    """Lag per watched loop (percentiles, max, recent samples), then the stall records.

    Example::

        view = loopbridge.health.report()
        view.to_records()          # one row per loop
        view.stall_records()       # one row per stall
    """

    def __init__(
        self,
        loops: list[dict[str, Any]],
        stalls: list[StallRecord],
        active: bool,
        lost: int = 0,
    ) -> None:
        self.loops = loops
        self.stalls = stalls
        self.active = active
        self.lost = lost

    @classmethod
    def from_monitor(cls, monitor: Monitor) -> HealthView:
        loops = []
        for beat in list(monitor.beats.values()):
            h = beat.hist
            loops.append(
                {
                    "loop": beat.label or "?",
                    "thread": beat.thread_name,
                    "beats": h.count,
                    "p50": h.percentile(50),
                    "p90": h.percentile(90),
                    "p99": h.percentile(99),
                    "max": h.max,
                    "recent": list(h.recent),
                }
            )
        loops.sort(key=lambda r: str(r["loop"]))
        return cls(loops, list(monitor.records), monitor.active, len(monitor.lost))

    def _rows(self) -> list[list[str]]:
        return [
            [
                str(r["loop"]),
                str(r["thread"]),
                str(r["beats"]),
                _ms(r["p50"]),
                _ms(r["p90"]),
                _ms(r["p99"]),
                _ms(r["max"]),
                sparkline(r["recent"][-40:]),
            ]
            for r in self.loops
        ]

    def _head(self) -> str:
        if not self.active and not self.loops:
            return "loop health is off: loopbridge.health.start() or %aio health start"
        state = "on" if self.active else "stopped"
        return f"loop health ({state}): scheduling lag per loop"

    def _stall_lines(self, stall: StallRecord) -> list[str]:
        lines = [stall.summary()]
        if stall.code:
            lines.append(f"    {stall.code}")
        if stall.samples:
            first, last = stall.samples[0], stall.samples[-1]
            lines.append(f"    stack at {_ms(stall.sampled_at[0])}:")
            lines.extend(f"      {_short_where(f)}" for f in first[:6])
            if len(stall.samples) > 1 and last != first:
                lines.append(f"    stack at {_ms(stall.sampled_at[-1])}:")
                lines.extend(f"      {_short_where(f)}" for f in last[:6])
        return lines

    def text(self) -> str:
        out = [self._head()]
        if self.loops:
            out.append(text_table(_HEADERS, self._rows()))
        shown = self.stalls[-_STALLS_SHOWN:]
        if shown:
            out.append(f"\nstalls ({len(self.stalls)}, the last {len(shown)} shown):")
            for stall in shown:
                out.extend(self._stall_lines(stall))
        elif self.loops:
            out.append("\nno stalls")
        if self.lost:
            out.append(f"\n{self.lost} lost error(s): %aio leaks, or loopbridge.health.leaks()")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p>{esc(self._head())}</p>"]
        if self.loops:
            rows = self._rows()
            table = html_table(_HEADERS, rows)
            # the sparkline column as SVG instead of text bars
            for r, record in zip(rows, self.loops, strict=True):
                bars = r[-1]
                if bars:
                    svg = sparkline_svg(record["recent"][-40:])
                    table = table.replace(f">{esc(bars)}</td>", f">{svg}</td>", 1)
            parts.append(table)
        for stall in self.stalls[-_STALLS_SHOWN:]:
            lines = self._stall_lines(stall)
            parts.append(
                f"<details><summary>{esc(lines[0])}</summary>"
                f"<pre>{esc(chr(10).join(lines[1:]))}</pre></details>"
            )
        return "".join(parts)

    def to_records(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "recent"} for r in self.loops]

    def stall_records(self) -> list[dict[str, Any]]:
        """One plain dict per stall (every field of :class:`StallRecord`)."""
        return [asdict(s) for s in self.stalls]


def _short_where(entry: str) -> str:
    path, _, rest = entry.partition(":")
    return f"{_short_path(path)}:{rest}"


class LostView(_View):
    """The errors nobody would have seen (``%aio leaks``, ``loopbridge.health.leaks()``).

    Example::

        for row in loopbridge.health.leaks().to_records():
            print(row["kind"], row["where"])
    """

    def __init__(
        self,
        lost: list[LostError],
        active: bool,
        *,
        pending: list[PendingTask] | None = None,
        ended: list[TaskEnd] | None = None,
        older_than: float = 10.0,
        tracking: bool = False,
    ) -> None:
        self.lost = lost
        self.active = active
        self.pending = pending or []
        self.ended = ended or []
        self.older_than = older_than
        self.tracking = tracking

    def text(self) -> str:
        lines: list[str] = []
        if self.lost:
            lines.append(f"lost errors ({len(self.lost)}):")
            lines.extend(f"  {e.summary()}" for e in self.lost[-20:])
        else:
            state = "" if self.active else " (loop health is off: %aio health start)"
            lines.append(f"no lost errors recorded{state}")
        if not self.tracking:
            lines.append(
                "tasks are not tracked: %aio health start --tasks for the tasks still pending "
                "and the termination log"
            )
            return "\n".join(lines)
        if self.pending:
            lines.append(
                f"tasks left pending ({len(self.pending)}; {_ms(self.older_than)} after the "
                "cell or task that made them ended, or as old as that):"
            )
            lines.extend(f"  {p.summary()}" for p in self.pending[:20])
        else:
            lines.append(
                f"no task left pending (none {_ms(self.older_than)} past the cell or task "
                "that made it, or that old)"
            )
        if self.ended:
            lines.append(f"termination log ({len(self.ended)}, the last 20):")
            lines.extend(f"  {t.summary()}" for t in self.ended[-20:])
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.lost]

    def pending_records(self) -> list[dict[str, Any]]:
        """One dict per task left pending (every field of PendingTask)."""
        return [asdict(p) for p in self.pending]

    def termination_records(self) -> list[dict[str, Any]]:
        """One dict per task that ended cancelled or failed (every field of TaskEnd)."""
        return [asdict(t) for t in self.ended]


_ADVICE = {
    "blocked": (
        "a synchronous call blocks the loop (time.sleep, a sync client, a lock, file I/O): "
        "await its async version (asyncio.sleep, the async client), or move it off the "
        "loop with `await asyncio.to_thread(...)`."
    ),
    "computing": (
        "CPU work runs on the loop: move it to a thread or process (`await "
        "asyncio.to_thread(f)`, `loop.run_in_executor(...)`), or cut it into pieces with "
        "`await asyncio.sleep(0)` between them."
    ),
    "GIL-starved": (
        "the loop thread was ready to run but another thread held the GIL: look for "
        "CPU-bound pure-Python threads (numpy and I/O release the GIL; Python loops do not)."
    ),
    "gc": (
        "garbage collection paused the loop: make fewer reference cycles, `gc.freeze()` "
        "after start-up, or raise the thresholds (`gc.set_threshold`)."
    ),
    "unknown": "no per-thread CPU clock here: the stacks are the evidence.",
    "cell": (
        "a sync cell holds the kernel's loop while it runs, which is expected; if other "
        "tasks must keep running, `await` in the cell or hand the work to the worker."
    ),
    "task destroyed pending": (
        "keep a reference to every task you start (a set, or asyncio.TaskGroup), and await "
        "or cancel it before its loop ends."
    ),
    "exception never retrieved": (
        "await the task or future (or read .exception()), so that its error is seen."
    ),
    "never awaited": (
        "a coroutine was made but never awaited: add `await`, or schedule it with "
        "asyncio.create_task / loopbridge.submit."
    ),
}


_STEP_HEADERS = ("loop", "running", "steps", "time", "longest run", "mostly at")


class StepsView(_View):
    """Where each loop's time went: task steps timed, callbacks sampled (``slow_steps()``).

    Example::

        for row in loopbridge.health.slow_steps().to_records():
            print(row["what"], row["total"], row["longest"])
    """

    def __init__(self, rows: list[dict[str, Any]], *, sampling: bool, period: float) -> None:
        self.rows = rows
        self.sampling = sampling
        self.period = period

    def _table_rows(self, limit: int = 15) -> list[list[str]]:
        return [
            [
                str(r["loop"]),
                str(r["what"]),
                str(r["steps"]) if r.get("steps") is not None else "sampled",
                _ms(r["total"]),
                _ms(r["longest"]),
                _short_where(r["where"]) if r["where"] else "",
            ]
            for r in self.rows[:limit]
        ]

    def text(self) -> str:
        if not self.sampling:
            return "steps are not sampled: loopbridge.health.start(steps=True) or --steps"
        if not self.rows:
            return "no loop has run anything yet"
        head = (
            "where the loops' time went (task steps timed exactly; callbacks sampled "
            f"every {_ms(self.period)}, their times estimates: samples x period)"
        )
        return "\n".join([head, text_table(_STEP_HEADERS, self._table_rows())])

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<pre>{html.escape(self.text())}</pre>"
        return f"<p>{html.escape(self.text().splitlines()[0])}</p>" + html_table(
            _STEP_HEADERS, self._table_rows()
        )

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]


class DoctorView(_View):
    """One screen: the worst stalls with their stacks, the lost errors, what to do.

    Example::

        print(loopbridge.health.doctor())
    """

    def __init__(
        self, health: HealthView, lost: list[LostError], steps: StepsView | None = None
    ) -> None:
        self.health = health
        self.lost = lost
        self.steps = steps

    def _lines(self) -> list[str]:
        out: list[str] = []
        if not self.health.active and not self.health.loops:
            return ["loop health is off: loopbridge.health.start() or %aio health start"]
        worst = sorted(
            (s for s in self.health.stalls if not s.cell_held),
            key=lambda s: s.duration,
            reverse=True,
        )[:3]
        for row in self.health.loops:
            if row["p99"] >= 0.05:
                out.append(
                    f"lag: {row['loop']} p99 {_ms(row['p99'])}, max {_ms(row['max'])} over "
                    f"{row['beats']} heartbeats"
                )
        for stall in worst:
            out.append("")
            out.extend(self.health._stall_lines(stall))
            out.append(f"  what to do: {_ADVICE.get(stall.cause.split(',')[0], '')}")
        if self.steps is not None and self.steps.rows:
            busy = [r for r in self.steps.rows if r["longest"] >= 0.02][:3]
            if busy:
                out.append("")
                out.append("slowest steps (sampled):")
                out.extend(
                    f"  {r['what']} on {r['loop']}: runs up to {_ms(r['longest'])}, "
                    f"{_ms(r['total'])} in all"
                    + (f", mostly at {_short_where(r['where'])}" if r["where"] else "")
                    for r in busy
                )
                out.append(
                    "  what to do: a step that runs long without awaiting delays every other "
                    "task on its loop: await more often, or move its work off the loop."
                )
        held = [s for s in self.health.stalls if s.cell_held]
        if held:
            longest = max(s.duration for s in held)
            out.append("")
            out.append(f"{len(held)} cell(s) held the kernel's loop, the longest {_ms(longest)}")
            out.append(f"  what to do: {_ADVICE['cell']}")
        kinds: dict[str, list[LostError]] = {}
        for e in self.lost:
            kinds.setdefault(e.kind, []).append(e)
        for kind, errors in kinds.items():
            out.append("")
            out.append(f"{len(errors)} x {kind}, e.g. {errors[-1].summary()}")
            out.append(f"  what to do: {_ADVICE[kind]}")
        if not out:
            out.append("healthy: no stalls, no lost errors, lag p99 under 50 ms on every loop")
        return out

    def text(self) -> str:
        return "\n".join(["loop doctor", *self._lines()])

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def to_records(self) -> list[dict[str, Any]]:
        return self.health.stall_records() + [asdict(e) for e in self.lost]
