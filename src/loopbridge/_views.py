"""What the ``%aio`` magics return: text for terminals, HTML for notebooks, data.

Every view holds plain records (strings and numbers), never a task or a frame.
HTML is escaped and uses ``<details>`` for stacks, so it needs no JavaScript.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ._inspect import (
    CancelOutcome,
    FrameInfo,
    LoopSnapshot,
    Snapshot,
    TaskSnapshot,
    TaskTrace,
    _short_path,
)

__all__ = ["CancelView", "LoopsView", "SettingView", "TasksView", "WhereView"]

_CELL_MAX = 60


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _age(value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) if value else "-"
    return str(value)


def _age(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _clip(text: str, width: int = _CELL_MAX) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [[_clip(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out.extend(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )
    return "\n".join(out)


# The widest a clipped column may get, in characters ("ch"): longer text ends in an
# ellipsis, and the full text shows on hover (the cell's title). Sized so that the
# task table's key columns (id to "waits on") stay in view in JupyterLab at 1,280 px
# with its file browser open (tests/test_browser.py); the rest may scroll.
_CLIP_CH: dict[str, int] = {
    "name": 16,
    "loop": 18,
    "coroutine": 18,
    "suspended at": 22,
    "waits on": 28,
    "awaited by": 12,
    "example": 22,
    "outcome": 48,
    "thread": 24,
}


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], foot: Sequence[str] = ()
) -> str:
    """An escaped HTML table whose cells never wrap.

    Every cell stays on one line (ids, states, ages, loop labels, "gather (2
    children, 0 done)"); long columns are clipped with an ellipsis and carry the
    full text in ``title``. *foot* lines go in the table's own footer, so they
    stay with the table when it scrolls.
    """
    esc = html.escape
    cell = "text-align:left;white-space:nowrap;padding:1px 6px;vertical-align:top"
    styles = []
    for h in headers:
        clip = _CLIP_CH.get(h)
        styles.append(
            f"{cell};max-width:{clip}ch;overflow:hidden;text-overflow:ellipsis" if clip else cell
        )
    head = "".join(f"<th style='{cell}'>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='{st}' title='{esc(c, quote=True)}'>{esc(c)}</td>"
            if len(c) > 8
            else f"<td style='{st}'>{esc(c)}</td>"
            for c, st in zip(r, styles, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    tfoot = ""
    if foot:
        lines = "<br>".join(esc(f) for f in foot)
        tfoot = (
            f"<tfoot><tr><td colspan='{len(headers)}' style='text-align:left;"
            f"white-space:normal;padding:2px 6px'>{lines}</td></tr></tfoot>"
        )
    return (
        "<table class='loopbridge' style='border-collapse:collapse;table-layout:auto'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{tfoot}</table>"
    )


def _stack_text(frames: Sequence[FrameInfo]) -> str:
    lines = []
    for f in frames:
        lines.append(f'  File "{_short_path(f.filename)}", line {f.lineno}, in {f.function}')
        if f.line:
            lines.append(f"    {f.line}")
    return "\n".join(lines)


def _stack_html(title: str, frames: Sequence[FrameInfo]) -> str:
    return (
        f"<details><summary>{html.escape(title)}</summary>"
        f"<pre>{html.escape(_stack_text(frames))}</pre></details>"
    )


class _View:
    """Shared behaviour: ``repr`` is the text view; data via records/DataFrame."""

    def to_records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def to_dataframe(self) -> Any:
        """The records as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "to_dataframe() needs pandas: pip install pandas (or use .to_records())"
            ) from None
        return pd.DataFrame(self.to_records())

    def to_frame(self) -> Any:
        """Another name for :meth:`to_dataframe` (pandas' own word for it).

        Example::

            df = loopbridge.health.report().to_frame()
        """
        return self.to_dataframe()

    def text(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())


_LOOP_HEADERS = ("loop", "role", "class", "thread", "running", "debug", "tasks")


class LoopsView(_View):
    """The event loops of the process (``%aio loops``).

    Example::

        view = loopbridge.inspect_loops()
        view.to_records()[0]["thread"]       # 'MainThread'
    """

    def __init__(
        self, loops: Sequence[LoopSnapshot], hidden: int = 0, include_internal: bool = False
    ) -> None:
        self.loops = tuple(loops)
        self.hidden = hidden
        self.include_internal = include_internal

    def _count(self, lp: LoopSnapshot) -> str:
        # Without --all, the kernel's own tasks are left out, as in %aio tasks.
        if lp.internal or not lp.internal_tasks:
            return str(lp.tasks)
        if self.include_internal:
            return f"{lp.tasks} ({lp.internal_tasks} internal)"
        return str(lp.tasks - lp.internal_tasks)

    def _rows(self) -> list[list[str]]:
        return [
            [
                lp.label + (" (this cell)" if lp.current else ""),
                lp.role,
                lp.cls,
                lp.thread,
                "closed" if lp.closed else _fmt(lp.running),
                _fmt(lp.debug),
                self._count(lp),
            ]
            for lp in self.loops
        ]

    def _footer(self) -> str:
        if not self.hidden:
            return ""
        return f"{self.hidden} kernel-internal loop(s) hidden; %aio loops --all shows them"

    def text(self) -> str:
        if not self.loops:
            return "no event loops found"
        foot = self._footer()
        return text_table(_LOOP_HEADERS, self._rows()) + (f"\n{foot}" if foot else "")

    def _repr_html_(self) -> str:
        foot = self._footer()
        return html_table(_LOOP_HEADERS, self._rows()) + (
            f"<p>{html.escape(foot)}</p>" if foot else ""
        )

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {
                "loop": lp.label,
                "role": lp.role,
                "class": lp.cls,
                "thread": lp.thread,
                "running": lp.running,
                "closed": lp.closed,
                "debug": lp.debug,
                "tasks": lp.tasks,
                "internal_tasks": lp.internal_tasks,
                "current": lp.current,
            }
            for lp in self.loops
        ]


# "waits on" comes before the long columns: the question a reader has first, kept
# in view in a narrow notebook (JupyterLab with its file browser open at 1,280 px).
_TASK_HEADERS = (
    "id",
    "name",
    "loop",
    "state",
    "age",
    "cell",
    "waits on",
    "coroutine",
    "suspended at",
    "awaited by",
)
_GROUP_HEADERS = ("coroutine", "tasks", "states", "loops", "example", "suspended at", "waits on")


class TasksView(_View):
    """A table of tasks across loops (``%aio tasks``), one page at a time.

    ``rows`` are every task that matched; the page shown is ``page`` of
    ``per_page`` rows. ``.page(n)`` gives another page; ``.to_records()`` gives
    every matched row (rows off the page have no location/waits-on/awaited-by
    unless the snapshot was taken with full details).

    Example::

        view = loopbridge.inspect_tasks(name="fetch")
        view.to_records()[0]["state"]         # 'pending'
    """

    def __init__(
        self,
        snapshot: Snapshot,
        rows: Sequence[TaskSnapshot],
        *,
        page: int = 1,
        per_page: int = 50,
        group: bool = False,
        hidden: int = 0,
        groups: Sequence[tuple[str, list[TaskSnapshot], TaskSnapshot]] = (),
    ) -> None:
        self.snapshot = snapshot
        self.rows = tuple(rows)
        self.per_page = max(1, per_page)
        self.pages = max(1, -(-len(self.rows) // self.per_page)) if not group else 1
        self.page_no = min(max(1, page), self.pages)
        self.asked_page = page  # a page past the end shows the last one, and says so
        self.group = group
        self.hidden = hidden
        self.groups = tuple(groups)

    def page(self, n: int) -> TasksView:
        """The same rows, page *n*."""
        return TasksView(
            self.snapshot,
            self.rows,
            page=n,
            per_page=self.per_page,
            group=self.group,
            hidden=self.hidden,
            groups=self.groups,
        )

    @property
    def shown(self) -> tuple[TaskSnapshot, ...]:
        start = (self.page_no - 1) * self.per_page
        return self.rows[start : start + self.per_page]

    def _task_rows(self) -> list[list[str]]:
        return [
            [
                t.id,
                t.name,
                t.loop,
                t.state,
                _fmt(t.age) if t.age is not None else "?",
                f"In[{t.cell}]" if t.cell is not None else "-",
                _fmt(t.waits_on),
                t.coro,
                _fmt(t.location),
                _fmt(t.awaited_by),
            ]
            for t in self.shown
        ]

    def _group_rows(self) -> list[list[str]]:
        out = []
        for coro, members, example in self.groups:
            states: dict[str, int] = {}
            loops: dict[str, int] = {}
            for m in members:
                states[m.state] = states.get(m.state, 0) + 1
                loops[m.loop] = loops.get(m.loop, 0) + 1
            out.append(
                [
                    coro,
                    str(len(members)),
                    ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
                    ", ".join(sorted(loops)),
                    f"{example.id} {example.name}",
                    _fmt(example.location),
                    _fmt(example.waits_on),
                ]
            )
        return out

    def _notes(self) -> list[str]:
        notes = []
        n = len(self.rows)
        if self.group:
            notes.append(f"{n} task(s) in {len(self.groups)} group(s)")
        elif n > self.per_page:
            start = (self.page_no - 1) * self.per_page
            notes.append(
                f"rows {start + 1}-{start + len(self.shown)} of {n} (page {self.page_no}/"
                f"{self.pages}): --page N or view.page(N) for more, --group to summarise"
            )
        else:
            notes.append(f"{n} task(s)")
        if not self.group and self.asked_page > self.pages:
            notes.append(
                f"page {self.asked_page} is past the end ({self.pages} page(s) of "
                f"{self.per_page}): page {self.page_no} is shown"
            )
        if self.hidden:
            notes.append(f"{self.hidden} kernel-internal task(s) hidden (--all shows them)")
        for label in self.snapshot.best_effort:
            notes.append(
                f"loop {label} did not answer in time (blocked?): its rows are a best-effort "
                "read from another thread; its thread's stack is below"
            )
        return notes

    def _table(self) -> tuple[Sequence[str], list[list[str]]] | None:
        if self.group:
            return _GROUP_HEADERS, self._group_rows()
        if self.rows:
            return _TASK_HEADERS, self._task_rows()
        return None

    def text(self) -> str:
        table = self._table()
        parts = [text_table(*table) if table else "no tasks match", *self._notes()]
        for label, frames in self.snapshot.best_effort.items():
            parts.append(f"stack of blocked loop {label}:\n{_stack_text(frames)}")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        table = self._table()
        if table:
            body = html_table(*table, foot=self._notes())
        else:
            body = "<p>no tasks match</p>" + "".join(
                f"<p>{html.escape(n)}</p>" for n in self._notes()
            )
        stacks = "".join(
            _stack_html(f"stack of blocked loop {label}", frames)
            for label, frames in self.snapshot.best_effort.items()
        )
        return body + stacks

    def to_records(self) -> list[dict[str, Any]]:
        return [t._asdict() for t in self.rows]


class WhereView(_View):
    """The await chain of one task (``%aio where``): down, then awaited-by up.

    Example::

        view = loopbridge.where_task("Task-12")
        [r["function"] for r in view.to_records()]    # outermost frame first
    """

    def __init__(self, trace: TaskTrace) -> None:
        self.trace = trace

    def _up_lines(self, tree: Sequence[Any], depth: int = 1) -> list[str]:
        out = []
        for sid, name, parents in tree:
            out.append("  " * depth + f"<- {sid} {name}")
            out.extend(self._up_lines(parents, depth + 1))
        return out

    def text(self) -> str:
        t = self.trace.task
        parts = [f"task {t.id} {t.name} on {t.loop}: {t.state}, coroutine {t.coro}"]
        for title, frames, what in self.trace.chain:
            parts.append(f"{title}:")
            parts.append(_stack_text(frames) or "  (no frames: not started, or not Python)")
            parts.append(f"  waits on: {what}")
        up = self._up_lines(self.trace.awaited_by)
        parts.append("awaited by:" if up else "awaited by: no task is known to await it")
        parts.extend(up)
        parts.extend(self.trace.notes)
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        esc = html.escape
        t = self.trace.task
        out = [f"<p><b>task {esc(t.id)} {esc(t.name)}</b> on {esc(t.loop)}: {esc(t.state)}</p>"]
        for i, (title, frames, what) in enumerate(self.trace.chain):
            out.append(
                _stack_html(f"{title} - waits on {what}", frames).replace(
                    "<details>", "<details open>" if i == 0 else "<details>", 1
                )
            )
        up = self._up_lines(self.trace.awaited_by)
        if up:
            out.append(f"<p>awaited by:</p><pre>{esc(chr(10).join(up))}</pre>")
        else:  # a sentence, not a frame: not in the indented <pre> of the chain
            out.append("<p>awaited by: no task is known to await it</p>")
        out.extend(f"<p>{esc(n)}</p>" for n in self.trace.notes)
        return "".join(out)

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {
                "task": title,
                "filename": f.filename,
                "lineno": f.lineno,
                "function": f.function,
                "line": f.line,
                "waits_on": what,
            }
            for title, frames, what in self.trace.chain
            for f in frames
        ]


class CancelView(_View):
    """What ``%aio cancel`` did to each task.

    Example::

        report = loopbridge.cancel_tasks(match="poller", timeout=2)
        [r["outcome"] for r in report.to_records()]   # ['cancelled', ...]
    """

    def __init__(self, outcomes: Sequence[CancelOutcome], dry_run: bool) -> None:
        self.outcomes = tuple(outcomes)
        self.dry_run = dry_run

    def _rows(self) -> list[list[str]]:
        return [[o.id, o.name, o.loop, o.outcome] for o in self.outcomes]

    def summary(self) -> str:
        """One line: how many tasks got which outcome, e.g. "3 task(s): 2 cancelled,
        1 refused"."""
        counts: dict[str, int] = {}
        for o in self.outcomes:
            key = o.outcome.split(" (")[0].split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in counts.items())
        prefix = "dry run, " if self.dry_run else ""
        return f"{prefix}{len(self.outcomes)} task(s): {parts}"

    def text(self) -> str:
        if not self.outcomes:
            return "no task matched: nothing cancelled"
        return text_table(("id", "name", "loop", "outcome"), self._rows()) + "\n" + self.summary()

    def _repr_html_(self) -> str:
        if not self.outcomes:
            return "<p>no task matched: nothing cancelled</p>"
        return html_table(("id", "name", "loop", "outcome"), self._rows(), foot=[self.summary()])

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {"id": o.id, "name": o.name, "loop": o.loop, "outcome": o.outcome}
            for o in self.outcomes
        ]


class SettingView(_View):
    """The state of a switch after ``%aio one-loop`` / ``%aio reroute``.

    Example::

        %aio one-loop on       # one-loop mode is on: cells with top-level await run ...
    """

    def __init__(self, name: str, on: bool, detail: str) -> None:
        self.name = name
        self.on = on
        self.detail = detail

    def text(self) -> str:
        return f"{self.name} is {'on' if self.on else 'off'}: {self.detail}"

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.text())}</p>"

    def to_records(self) -> list[dict[str, Any]]:
        return [{"setting": self.name, "on": self.on}]
