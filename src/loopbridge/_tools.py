"""The inspection API behind the ``%aio`` magics, usable without IPython."""

from __future__ import annotations

import asyncio
import operator
import re
import threading
from collections.abc import Iterable
from typing import Any

from . import _inspect as ins
from ._views import CancelView, LoopsView, TasksView, WhereView
from ._worker import _check_seconds

__all__ = ["cancel_tasks", "inspect_loops", "inspect_tasks", "where_task"]

SORT_KEYS = ("age", "name", "state", "loop", "coro", "cell", "id")
STATES = ("pending", "cancelling")


def inspect_loops(*, include_internal: bool = False) -> LoopsView:
    """Every event loop in the process: the main (kernel) loop, loopbridge's
    worker loops, other threads' loops and, with *include_internal*, the
    kernel's own service loops (IOPub, Control, Shell channel).

    Example::

        print(loopbridge.inspect_loops())
    """
    loops = ins.find_loops()
    shown = [lp for lp in loops if include_internal or not lp.internal]
    return LoopsView(shown, hidden=len(loops) - len(shown), include_internal=include_internal)


def _compile(pattern: str | None, option: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None


def inspect_tasks(
    *,
    loop: str | None = None,
    state: str | None = None,
    name: str | None = None,
    coro: str | None = None,
    sort: str = "age",
    reverse: bool = False,
    per_page: int = 50,
    page: int = 1,
    group: bool = False,
    include_internal: bool = False,
    full: bool = False,
    timeout: float = 1.0,
) -> TasksView:
    """A table of the pending tasks of every loop, read on each loop's thread.

    Args:
        loop: only loops whose label contains this (``main``, ``loopbridge-default``).
        state: ``pending`` or ``cancelling``.
        name, coro: regular expressions matched against the task name / coroutine.
        sort: one of ``age`` (oldest first), ``name``, ``state``, ``loop``,
            ``coro``, ``cell``, ``id``; *reverse* flips it.
        per_page, page: which rows get shown (and fully detailed).
        group: one row per coroutine, for thousands of tasks.
        include_internal: also ipykernel's own tasks and loops.
        full: detail every row, not only the page shown (slower on many tasks).

    Example::

        view = loopbridge.inspect_tasks(coro="fetch", sort="age")
        view.to_records()
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}; got {sort!r}")
    if state is not None and state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}; got {state!r}")
    if not isinstance(per_page, int) or per_page < 1:
        raise ValueError(f"per_page must be a positive int, got {per_page!r}")
    if not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a positive int (the first page is 1), got {page!r}")
    name_rx = _compile(name, "name")
    coro_rx = _compile(coro, "coro")
    picked: dict[str, object] = {}

    def select(rows: list[ins.TaskSnapshot]) -> Iterable[str]:
        chosen = [
            r
            for r in rows
            if (include_internal or not r.internal)
            and (state is None or r.state == state)
            and (name_rx is None or name_rx.search(r.name))
            and (coro_rx is None or coro_rx.search(r.coro))
        ]
        _sort(chosen, sort, reverse)
        picked["rows"] = chosen
        if full:
            return [r.id for r in chosen]
        if group:
            groups = _group(chosen)
            picked["groups"] = groups
            return [example.id for _, _, example in groups]
        # past the end: the last page, detailed like any page (the view says so)
        shown = min(page, max(1, -(-len(chosen) // per_page)))
        start = (shown - 1) * per_page
        return [r.id for r in chosen[start : start + per_page]]

    timeout = _seconds(timeout, "inspect_tasks")
    snap = ins.snapshot_tasks(loop=loop, include_internal=True, timeout=timeout, details=select)
    by_id = {r.id: r for r in snap.tasks}
    rows = [by_id.get(r.id, r) for r in picked.get("rows", [])]  # type: ignore[attr-defined]
    hidden = 0 if include_internal else sum(1 for r in snap.tasks if r.internal)
    groups = [
        (c, members, by_id.get(ex.id, ex))
        for c, members, ex in picked.get("groups", [])  # type: ignore[attr-defined]
    ]
    return TasksView(
        snap, rows, page=page, per_page=per_page, group=group, hidden=hidden, groups=groups
    )


def _sort(rows: list[ins.TaskSnapshot], key: str, reverse: bool) -> None:
    """Sort in place. Ties fall back to the natural order of names, which is
    computed only where it can matter (it is the costly part on 10,000 rows)."""
    if key == "age":  # oldest first; tasks of unknown age last, by name
        known = [r for r in rows if r.age is not None]
        unknown = [r for r in rows if r.age is None]
        known.sort(key=lambda r: -r.age)  # type: ignore[operator]
        unknown.sort(key=lambda r: _natural(r.name))
        rows[:] = known + unknown
    elif key == "name":
        rows.sort(key=lambda r: _natural(r.name))
    elif key == "cell":
        rows.sort(key=lambda r: _natural(r.name))
        rows.sort(key=lambda r: (r.cell is None, r.cell or 0))
    else:
        index = ins.TaskSnapshot._fields.index(key)
        rows.sort(key=lambda r: _natural(r.name))
        rows.sort(key=operator.itemgetter(index))
    if reverse:
        rows.reverse()


def _natural(name: str) -> tuple[str, int]:
    """Task-9 before Task-10."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


def _group(
    rows: list[ins.TaskSnapshot],
) -> list[tuple[str, list[ins.TaskSnapshot], ins.TaskSnapshot]]:
    groups: dict[str, list[ins.TaskSnapshot]] = {}
    for r in rows:
        groups.setdefault(r.coro, []).append(r)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return [(c, members, members[0]) for c, members in ordered]


def _seconds(timeout: object, api: str) -> float:
    """A checked timeout; math.inf (no bound) becomes the longest wait threads accept."""
    seconds = _check_seconds(timeout, f"{api}(timeout=...)", allow_none=False)
    assert seconds is not None
    return min(seconds, threading.TIMEOUT_MAX)


def where_task(task: str | asyncio.Future[Any], *, timeout: float = 1.0) -> WhereView:
    """The await chain of one task (by id or name), down to what it waits on,
    and the tasks that await it, up.

    Example::

        print(loopbridge.where_task("Task-12"))
    """
    if not isinstance(task, (str, asyncio.Future)):
        raise TypeError(
            f"where_task() expects a task id or name (a str, as %aio tasks shows them) "
            f"or an asyncio.Task, got {type(task).__name__}: {task!r}"
        )
    return WhereView(ins.trace_task(task, timeout=_seconds(timeout, "where_task")))


def cancel_tasks(
    tasks: Iterable[str] = (),
    *,
    match: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    timeout: float = 2.0,
    msg: str | None = None,
    include_internal: bool = False,
) -> CancelView:
    """Cancel tasks by id/name or by a regular expression over names and
    coroutines, each on its own loop's thread; wait up to *timeout* seconds for
    them to finish and report what happened. *match* sees what ``inspect_tasks``
    shows: kernel-internal tasks only with *include_internal*, and those (like
    internal tasks named by id) are refused unless *force*.

    Example::

        loopbridge.cancel_tasks(match="poller", dry_run=True)
    """
    timeout = _seconds(timeout, "cancel_tasks")
    refs = [tasks] if isinstance(tasks, str) else list(tasks)
    if not refs and match is None:
        raise ValueError("say which tasks to cancel: task ids/names, or match='regex'")
    targets: list[tuple[object, bool]] = []
    seen: set[int] = set()
    if refs:  # found once, not once per task
        dirs, internal_loops = ins._internal_dirs(), ins._internal_loop_ids()
    for ref in refs:
        t = ins.find_task(ref)
        if id(t) not in seen:
            seen.add(id(t))
            targets.append((t, ins.is_internal(t, dirs, internal_loops)))
    if match is not None:
        for t, internal in ins.match_tasks(match):
            if internal and not include_internal:
                continue  # hidden in %aio tasks: hidden here too
            if id(t) not in seen:
                seen.add(id(t))
                targets.append((t, internal))
    targets.sort(key=lambda p: _natural(getattr(p[0], "get_name", lambda: "")()))
    outcomes = ins.cancel_tasks(
        targets,  # type: ignore[arg-type]
        dry_run=dry_run,
        force=force,
        timeout=timeout,
        msg=msg,
    )
    outcomes.sort(key=lambda o: o.loop)  # stable: by loop, then by name within it
    return CancelView(outcomes, dry_run)
