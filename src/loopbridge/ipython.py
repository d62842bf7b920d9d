"""The IPython extension: ``%load_ext loopbridge``.

Loading it:

* prints one line: the loop the cells run on, the worker's state, and any
  warning that matters (asyncio patched by ``nest_asyncio``);
* adds the ``%aio`` magic (``loops``, ``tasks``, ``where``, ``cancel``,
  ``one-loop``, ``reroute``) and the ``%%aio run`` cell magic;
* records when, and in which cell, each task is created (a task factory on
  the kernel loop and the worker loops; set ``LoopBridge.track_tasks=False``
  to skip it);
* offers, opt-in: one loop for the whole notebook (``LoopBridge.one_loop``)
  and rerouting ``asyncio.run`` calls made while the kernel loop runs
  (``LoopBridge.reroute_asyncio_run``).

``%unload_ext loopbridge`` undoes all of it. Configure with ``%config
LoopBridge.one_loop = True`` or in ``ipython_config.py``::

    c.InteractiveShellApp.extensions = ["loopbridge"]
    c.LoopBridge.one_loop = True
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextvars
import inspect
import logging
import math
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, Int, observe
from traitlets.config import Configurable

from . import _inspect, _loops, _worker
from ._bridge import default_worker
from ._errors import _KERNEL_ROLE, _add_note, _has_note, _in_kernel, explain
from ._tools import SORT_KEYS, STATES, cancel_tasks, inspect_loops, inspect_tasks, where_task
from ._views import SettingView
from ._worker import _strip_wrappers

__all__ = [
    "LoopBridge",
    "load_ipython_extension",
    "unload_ipython_extension",
    "worker_runner",
]

T = TypeVar("T")
log = logging.getLogger("loopbridge")


def worker_runner(coro: Coroutine[Any, Any, T]) -> T:
    """An IPython ``loop_runner`` that runs a top-level-``await`` cell on the
    default worker loop (the one-loop mode). Ctrl-C / "Interrupt kernel"
    cancels the cell's task there.

    Example (what ``%aio one-loop on`` does)::

        %autoawait loopbridge.ipython.worker_runner
    """
    return default_worker().run_sync(coro)


def _nest_asyncio_warning() -> str | None:
    """Say so if asyncio was patched by nest_asyncio / nest_asyncio2."""
    patched = []
    run_mod = getattr(asyncio.run, "__module__", "") or ""
    if run_mod.startswith("nest_asyncio"):
        patched.append(run_mod.split(".")[0])
    loop = _inspect._running_loop()
    if loop is not None and getattr(loop, "_nest_patched", False) and not patched:
        patched.append("nest_asyncio")
    if not patched:
        return None
    return (
        f"asyncio is patched by {patched[0]}: it re-enters the running loop, so a blocking "
        "call inside freezes every other task on it, uvloop and anyio stop working, and Ctrl-C "
        "can leave work half done. loopbridge does not need it: remove the "
        f"{patched[0]}.apply() call and restart the kernel."
    )


class LoopBridge(Configurable):
    """Settings of the loopbridge IPython extension (``%config LoopBridge``)."""

    one_loop = Bool(
        False,
        help=(
            "Run cells that use top-level await on loopbridge's worker loop instead of the "
            "kernel's, so objects made with `await` and objects used through sync wrappers share "
            "one loop. Such a cell's body then runs in the worker thread."
        ),
    ).tag(config=True)
    reroute_asyncio_run = Bool(
        False,
        help=(
            "While the kernel loop runs, send asyncio.run(coro) calls (which would fail with "
            "'cannot be called from a running event loop') to the worker loop. asyncio.run is "
            "untouched in other threads and when no loop runs."
        ),
    ).tag(config=True)
    track_tasks = Bool(
        True,
        help="Record each task's creation time and cell (a chaining task factory).",
    ).tag(config=True)
    explain_errors = Bool(
        True,
        help=(
            "Add loopbridge's note to cross-loop errors raised in a cell ('attached to a "
            "different loop', 'Event loop is closed', 'asyncio.run() cannot be called from a "
            "running event loop'...). Done by a custom exception handler that passes every "
            "exception on to the handler set before it, or to IPython's own display."
        ),
    ).tag(config=True)
    banner = Bool(True, help="Print one status line when the extension loads.").tag(config=True)
    snapshot_timeout = Float(
        1.0, help="Seconds to wait for another loop's thread to answer a snapshot."
    ).tag(config=True)
    cancel_timeout = Float(
        2.0, help="Seconds %aio cancel waits for cancelled tasks to finish."
    ).tag(config=True)
    page_size = Int(50, help="Rows per page of %aio tasks.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Set before super().__init__: applying the config there fires the observers.
        self._active = False
        self.shell = shell
        self._previous_runner: Any = None
        self._previous_autoawait: bool | None = None
        self._original_run: Callable[..., Any] | None = None
        self._kernel_loop: asyncio.AbstractEventLoop | None = None
        self._tracked: list[Any] = []  # weakrefs to loops we put our factory on
        self._previous_custom: tuple[tuple[type[BaseException], ...], Any] | None = None
        self._installed_custom: Any = None
        self._watch_stop: threading.Event | None = None
        self._idle_sigint_before: Any = signal.SIG_IGN
        self._cell: int | None = None
        super().__init__(**kwargs)

    # -- one loop ---------------------------------------------------------------

    @observe("one_loop")
    def _one_loop_changed(self, change: Any) -> None:
        if self._active:
            self._apply_one_loop(change["new"])

    def _apply_one_loop(self, on: bool) -> None:
        shell = self.shell
        if on:
            if shell.loop_runner is worker_runner:
                return
            self._previous_runner = shell.loop_runner
            self._previous_autoawait = shell.autoawait
            shell.loop_runner = worker_runner
            shell.autoawait = True
        elif shell.loop_runner is worker_runner:
            shell.loop_runner = self._previous_runner or "asyncio"
            if self._previous_autoawait is not None:
                shell.autoawait = self._previous_autoawait
            self._previous_runner = None

    # -- asyncio.run reroute -------------------------------------------------------

    @observe("reroute_asyncio_run")
    def _reroute_changed(self, change: Any) -> None:
        if self._active:
            self._apply_reroute(change["new"])

    def _apply_reroute(self, on: bool) -> None:
        if on:
            if self._original_run is not None:
                return
            original: Callable[..., Any] = asyncio.run
            kernel_loop = self._kernel_loop

            def run(main: Any, *, debug: bool | None = None, **kwargs: Any) -> Any:
                running = _inspect._running_loop()
                if running is None or running is not kernel_loop or kwargs:
                    return original(main, debug=debug, **kwargs)
                if not asyncio.iscoroutine(main):
                    raise ValueError(f"a coroutine was expected, got {main!r}")
                worker = default_worker()
                return worker.run_sync(_like_asyncio_run(main, worker))

            run.__wrapped__ = original  # type: ignore[attr-defined]
            run.__doc__ = original.__doc__
            run.__loopbridge_reroute__ = True  # type: ignore[attr-defined]
            self._original_run = original
            asyncio.run = run
        else:
            previous = self._original_run
            if previous is None:
                return
            self._original_run = None
            if getattr(asyncio.run, "__loopbridge_reroute__", False):
                asyncio.run = previous
            else:
                print(
                    "loopbridge: asyncio.run was replaced by someone else after loopbridge "
                    "rerouted it; left as it is.",
                    file=sys.stderr,
                )

    # -- task tracking ---------------------------------------------------------------

    @observe("track_tasks")
    def _track_changed(self, change: Any) -> None:
        if self._active:
            self._apply_tracking(change["new"])

    def _apply_tracking(self, on: bool) -> None:
        if on:
            _inspect._current_cell = lambda: self._cell
            if self._kernel_loop is not None and not self._kernel_loop.is_closed():
                self._track(self._kernel_loop)
            for _w, loop in _inspect.worker_loops():
                self._track(loop)
            if self._track not in _worker._new_loop_hooks:
                _worker._new_loop_hooks.append(self._track)
        else:
            if self._track in _worker._new_loop_hooks:
                _worker._new_loop_hooks.remove(self._track)
            for ref in self._tracked:
                loop = ref()
                if loop is not None and not loop.is_closed():
                    _inspect.remove_tracking(loop)
            self._tracked.clear()
            _inspect._current_cell = lambda: None

    def _track(self, loop: asyncio.AbstractEventLoop) -> None:
        import weakref

        if _inspect.install_tracking(loop):
            self._tracked.append(weakref.ref(loop))

    def _pre_run_cell(self, info: Any) -> None:
        self._cell = self._cell_number(info)

    def _cell_number(self, info: Any) -> int | None:
        """The number of the cell about to run (None for one kept out of history)."""
        if not getattr(info, "store_history", True):
            return None
        count = self.shell.execution_count
        # IPython 9 counts the cell before pre_run_cell fires; IPython 8 after.
        return int(count - 1 if _COUNTS_FIRST else count)

    def _cell_of_file(self, filename: str) -> str | None:
        """'In[12]' for the file name IPython compiled cell 12 under."""
        number = getattr(self.shell.compile, "_filename_map", {}).get(filename)
        return f"In[{number}]" if isinstance(number, int) and number > 0 else None

    # -- %aio watch: one refreshing view at a time ----------------------------------

    def _start_watch(
        self, view: Callable[[], Any], handle: Any, every: float, duration: float
    ) -> None:
        stop = threading.Event()
        self._watch_stop = stop
        deadline = time.monotonic() + duration

        def refresh() -> None:
            while not stop.wait(every) and time.monotonic() < deadline:
                try:
                    handle.update(view())
                except Exception:  # a view that fails once just skips a beat
                    log.debug("%%aio watch: refresh failed", exc_info=True)

        # the cell's context (its parent message) goes with the thread, so that the
        # updates are routed to this cell's output
        ctx = contextvars.copy_context()
        threading.Thread(
            target=ctx.run, args=(refresh,), name="loopbridge-watch", daemon=True
        ).start()
        self._hook_idle_interrupt(True)

    def _stop_watch(self) -> None:
        stop, self._watch_stop = self._watch_stop, None
        if stop is not None:
            stop.set()
        self._hook_idle_interrupt(False)

    def _on_idle_interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT while the kernel is idle ("Interrupt kernel" after the cell that
        started a watch has ended): stop the watch. Otherwise ignored, as ipykernel
        ignores it when idle."""
        stop = self._watch_stop
        if stop is not None:
            stop.set()

    def _hook_idle_interrupt(self, on: bool) -> None:
        """ipykernel ignores SIGINT between cells: each message handler puts back the
        handler it found (``kernel.saved_sigint_handler``). While a watch runs, that
        handler is ours, so that "Interrupt kernel" reaches the watch."""
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None or not hasattr(kernel, "saved_sigint_handler"):
            return  # not ipykernel (a terminal: Ctrl-C there is the prompt's)
        mine = self._on_idle_interrupt
        if on:
            if kernel.saved_sigint_handler != mine:
                self._idle_sigint_before = kernel.saved_sigint_handler
                kernel.saved_sigint_handler = mine
        elif kernel.saved_sigint_handler == mine:
            kernel.saved_sigint_handler = self._idle_sigint_before
        elif threading.current_thread() is threading.main_thread():
            # restored between cells already (a watch from an earlier cell): undo that
            try:
                if signal.getsignal(signal.SIGINT) == mine:
                    signal.signal(signal.SIGINT, self._idle_sigint_before)
            except ValueError:
                pass

    # -- loop health: a sync cell holding the kernel's loop is not a stall ----------

    def _watch_cells(self, on: bool) -> None:
        from .health import _the_monitor as monitor

        events = self.shell.events
        if on:
            monitor.kernel_loop = self._kernel_loop
            if self._health_cell_start not in events.callbacks["pre_run_cell"]:
                events.register("pre_run_cell", self._health_cell_start)
                events.register("post_run_cell", self._health_cell_end)
        else:
            for name, cb in (
                ("pre_run_cell", self._health_cell_start),
                ("post_run_cell", self._health_cell_end),
            ):
                if cb in events.callbacks[name]:
                    events.unregister(name, cb)
            monitor.cell_finished()
            monitor.kernel_loop = None

    def _health_cell_start(self, info: Any = None) -> None:
        from .health import _the_monitor as monitor

        monitor.cell_started(self._cell_number(info))

    def _health_cell_end(self, result: Any = None) -> None:
        from .health import _the_monitor as monitor

        monitor.cell_finished()

    # -- explaining errors raised in cells -------------------------------------------

    @observe("explain_errors")
    def _explain_changed(self, change: dict[str, Any]) -> None:
        if self._active:
            self._apply_explain(change["new"])

    def _apply_explain(self, on: bool) -> None:
        """Install (or remove) the cell exception handler, chained to the one before it."""
        shell = self.shell
        if shell is None or not hasattr(shell, "set_custom_exc"):
            return
        if on and self._previous_custom is None:
            self._previous_custom = (tuple(shell.custom_exceptions), shell.CustomTB)
            handled = tuple({Exception, *shell.custom_exceptions})
            shell.set_custom_exc(handled, self._explain_cell_error)
            self._installed_custom = shell.CustomTB
        elif not on and self._previous_custom is not None:
            excs, handler = self._previous_custom
            self._previous_custom = None
            if shell.CustomTB is self._installed_custom:
                # Put back what was there (set_custom_exc would wrap it a second time).
                # A handler installed after ours stays: it may be chained to ours.
                shell.custom_exceptions = excs
                shell.CustomTB = handler
            self._installed_custom = None

    def _explain_cell_error(
        self,
        shell: Any,
        etype: type[BaseException],
        value: BaseException,
        tb: Any,
        tb_offset: int | None = None,
    ) -> Any:
        """Note a cross-loop error, then show it as before: the previous custom
        handler if it takes this type, else IPython's own traceback."""
        try:
            if not _has_note(value):
                note = explain(value)
                if note is not None:
                    _add_note(value, note)
        except Exception:
            log.debug("could not explain %r", value, exc_info=True)
        previous = self._previous_custom
        if previous is not None and previous[0] and issubclass(etype, previous[0]):
            return previous[1](etype, value, tb, tb_offset=tb_offset)
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        return None

    # -- load / unload -------------------------------------------------------------

    def load(self) -> None:
        shell = self.shell
        self._kernel_loop = _inspect._running_loop()
        if self._kernel_loop is not None:
            kind = _KERNEL_ROLE if _in_kernel() else "IPython's loop"
            _loops.remember(self._kernel_loop, f"{kind} (the cells run on it)")
        self._active = True
        shell.events.register("pre_run_cell", self._pre_run_cell)
        _inspect._cell_of_file = self._cell_of_file
        self._apply_tracking(self.track_tasks)
        self._apply_one_loop(self.one_loop)
        self._apply_reroute(self.reroute_asyncio_run)
        self._apply_explain(self.explain_errors)

    def unload(self) -> None:
        shell = self.shell
        self._stop_watch()
        if "loopbridge.health" in sys.modules:  # started from here or not: stop it with us
            from . import health

            health.stop()
            self._watch_cells(False)
        self._apply_explain(False)
        self._apply_one_loop(False)
        self._apply_reroute(False)
        self._active = False
        try:
            shell.events.unregister("pre_run_cell", self._pre_run_cell)
        except ValueError:
            pass
        self._apply_tracking(False)
        _inspect._cell_of_file = lambda filename: None

    def status_line(self) -> str:
        from . import __version__

        if self._kernel_loop is not None:
            cls = _inspect._loop_class(self._kernel_loop)
            where = f"cells run on the {cls} loop in {threading.current_thread().name}"
        else:
            where = "no loop runs in this thread (terminal IPython)"
        w = default_worker()
        worker = f"worker {w.thread_name}: {'running' if w.is_running else 'starts on first use'}"
        modes = []
        if self.one_loop:
            modes.append("one-loop mode on")
        if self.reroute_asyncio_run:
            modes.append("asyncio.run rerouted")
        line = f"loopbridge {__version__}: {where}; {worker}"
        if modes:
            line += "; " + ", ".join(modes)
        return line + ". %aio? for help."


def _counts_first() -> bool:
    try:
        import IPython

        return tuple(IPython.version_info[:1]) >= (9,)
    except (ImportError, AttributeError):  # pragma: no cover - IPython has version_info
        return False


_COUNTS_FIRST = _counts_first()


# -- what a rerouted asyncio.run does around the coroutine -----------------------------

# Set in the rerouted call's own task: every task it creates (transitively) inherits it.
_run_scope: contextvars.ContextVar[object] = contextvars.ContextVar("loopbridge_run_scope")


async def _like_asyncio_run(main: Coroutine[Any, Any, T], worker: Any) -> T:
    """Run *main* as ``asyncio.run`` would, on the persistent worker loop.

    ``asyncio.run`` cancels the tasks its coroutine left behind and finalises its
    async generators when it returns. The worker loop lives on, so only what this
    call started is cleaned up: tasks created in its context (3.12+: read from
    each task's context; before, tasks that appeared during the call and are not
    other bridge calls) and async generators first iterated during it.
    """
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    scope = object()
    _run_scope.set(scope)
    tasks_before = set(asyncio.all_tasks(loop))
    gens_before = set(getattr(loop, "_asyncgens", ()))
    try:
        return await main
    finally:
        bridge_calls = {c.task for c in list(worker._inflight)}

        def ours(task: asyncio.Task[Any]) -> bool:
            if task is me or task.done():
                return False
            get_context = getattr(task, "get_context", None)  # 3.12+
            if get_context is not None:
                return get_context().get(_run_scope, None) is scope
            return task not in tasks_before and task not in bridge_calls

        left = [t for t in asyncio.all_tasks(loop) if ours(t)]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=worker.cancel_timeout)
        for gen in [g for g in getattr(loop, "_asyncgens", ()) if g not in gens_before]:
            try:
                await gen.aclose()
            except Exception:  # noqa: BLE001 - asyncio.run reports these the same way
                loop.call_exception_handler(
                    {
                        "message": "an error occurred during closing of an asynchronous generator",
                        "asyncgen": gen,
                    }
                )


# -- the magics ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise UsageError(f"{self.prog}: {message}\n\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            raise UsageError(message)
        raise _HelpShown


class _HelpShown(Exception):
    pass


def _seconds_arg(text: str) -> float:
    """``--timeout``: a number of seconds >= 0, or inf for no bound."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds >= 0 (or inf for no bound), got {text!r}"
        )
    return value


def _duration_arg(text: str) -> float:
    """``--every`` / ``--threshold``: ``50ms``, ``0.05``, ``0.05s`` or ``1s``, above zero."""
    raw = text.strip().lower()
    scale = 1.0
    if raw.endswith("ms"):
        raw, scale = raw[:-2], 1e-3
    elif raw.endswith("s"):
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration above zero such as 50ms, 0.05 or 1s, got {text!r}"
        )
    return value


def _positive_int(text: str) -> int:
    """``--limit`` / ``--page``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="%aio", description="Inspect and control event loops and tasks.", add_help=False
    )
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    lp = sub.add_parser("loops", help="every event loop in the process", add_help=True)
    lp.add_argument("--all", action="store_true", help="include the kernel's own loops")
    tp = sub.add_parser("tasks", help="a table of tasks across loops")
    tp.add_argument(
        "--loop",
        help="only loops whose label contains this, or of this role "
        "(main, worker, other, internal; e.g. --loop worker)",
    )
    tp.add_argument("--state", choices=STATES, help="only tasks in this state")
    tp.add_argument("--name", help="regex over task names")
    tp.add_argument("--coro", help="regex over coroutine names")
    tp.add_argument("--sort", choices=SORT_KEYS, default="age", help="sort key (default: age)")
    tp.add_argument("--reverse", action="store_true", help="reverse the sort")
    tp.add_argument(
        "--limit", type=_positive_int, help="rows per page (default: LoopBridge.page_size)"
    )
    tp.add_argument("--page", type=_positive_int, default=1, help="which page (default 1)")
    tp.add_argument("--group", action="store_true", help="one row per coroutine")
    tp.add_argument("--all", action="store_true", help="include kernel-internal tasks")
    tp.add_argument("--full", action="store_true", help="detail every row, not only the page")
    wp = sub.add_parser("where", help="the await chain of one task")
    wp.add_argument("task", help="task id (from %%aio tasks) or name")
    cp = sub.add_parser("cancel", help="cancel tasks, thread-safely")
    cp.add_argument("tasks", nargs="*", help="task ids or names")
    cp.add_argument("--match", help="regex over task names and coroutine names")
    cp.add_argument("--dry-run", action="store_true", help="say what would be cancelled")
    cp.add_argument(
        "--all", action="store_true", help="let --match see kernel-internal tasks (listed, refused)"
    )
    cp.add_argument(
        "--force", action="store_true", help="cancel kernel-internal tasks named or --all matched"
    )
    cp.add_argument(
        "--timeout", type=_seconds_arg, help="seconds to wait for them to finish (inf: no bound)"
    )
    op = sub.add_parser("one-loop", help="top-level await on the worker loop")
    op.add_argument("switch", choices=("on", "off", "status"), nargs="?", default="status")
    rp = sub.add_parser("reroute", help="asyncio.run in cells goes to the worker")
    rp.add_argument("switch", choices=("on", "off", "status"), nargs="?", default="status")
    hp = sub.add_parser("health", help="scheduling lag per loop, and stalls with their stacks")
    hp.add_argument(
        "action", choices=("start", "stop", "status", "steps"), nargs="?", default="status"
    )
    hp.add_argument(
        "--every", type=_duration_arg, default=0.05, help="heartbeat period (default 50ms)"
    )
    hp.add_argument(
        "--threshold",
        type=_duration_arg,
        default=0.1,
        help="a heartbeat this late is a stall (default 100ms)",
    )
    hp.add_argument(
        "--loop", help="with start: watch only loops whose label contains this (default: all)"
    )
    hp.add_argument(
        "--tasks",
        action="store_true",
        help="with start: note task creation sites (termination log, tasks left pending)",
    )
    hp.add_argument(
        "--steps",
        action="store_true",
        help="with start: time task steps, sample callbacks (%%aio health steps)",
    )
    wt = sub.add_parser("watch", help="a view that updates itself in place (tasks, loops, health)")
    wt.add_argument("what", choices=("tasks", "loops", "health", "stop"))
    wt.add_argument("--every", type=_duration_arg, default=1.0, help="refresh period (default 1s)")
    wt.add_argument(
        "--for", dest="duration", type=_duration_arg, default=60.0, help="stop after (default 60s)"
    )
    kp = sub.add_parser("leaks", help="errors nobody saw, tasks left pending, the termination log")
    kp.add_argument(
        "--older",
        type=_duration_arg,
        default=10.0,
        help="list tasks pending longer than this (default 10s; needs start --tasks)",
    )
    sub.add_parser("doctor", help="the worst stalls, the lost errors, and what to do")
    ap = sub.add_parser(
        "audit", help="find loop-affinity bugs in files, folders or notebooks (static)"
    )
    ap.add_argument("paths", nargs="*", help="files or folders (default: .)")
    ap.add_argument(
        "--session",
        action="store_true",
        help="check the cells run in this kernel so far (as In[N]), not files",
    )
    ap.add_argument("--select", help="rule codes or prefixes, e.g. LB001,LB002")
    ap.add_argument("--ignore", help="rule codes or prefixes to leave out")
    run = sub.add_parser("run", help="(cell magic) run this cell on the worker loop")
    run.add_argument(
        "--timeout", type=_seconds_arg, help="cancel the cell after this many seconds (inf: none)"
    )
    return p


_PARSER = _build_parser()
_SUBPARSERS: dict[str, argparse.ArgumentParser] = next(
    a for a in _PARSER._actions if isinstance(a, argparse._SubParsersAction)
).choices


def _help_text() -> str:
    parts = [_PARSER.format_help()]
    for parser in _SUBPARSERS.values():
        # each subcommand's whole help, its own (wrapped) usage lines included
        parts.append("\n" + parser.format_help())
    parts.append(
        "\nCell magic:\n  %%aio run [--timeout S]   run the cell (it may use await) on the "
        "worker loop;\n                            its last expression is the result."
    )
    return "".join(parts)


# %aio one-loop / %aio reroute: the setting each switches, its name, what on and off mean.
_SWITCHES = {
    "one-loop": (
        "one_loop",
        "one-loop mode",
        "cells with top-level await run on the worker loop",
        "top-level await runs on the kernel's loop",
    ),
    "reroute": (
        "reroute_asyncio_run",
        "asyncio.run reroute",
        "asyncio.run() in a cell runs on the worker loop",
        "asyncio.run() is asyncio's own",
    ),
}


@magics_class
class AioMagics(Magics):
    """The ``%aio`` magics. Each returns an object: text in a terminal, HTML in a
    notebook, and data through ``.to_records()`` / ``.to_dataframe()``."""

    def __init__(self, shell: Any, settings: LoopBridge) -> None:
        super().__init__(shell)
        self.settings = settings

    @line_cell_magic
    def aio(self, line: str, cell: str | None = None) -> Any:
        if line.strip() in ("", "-h", "--help", "help"):
            print(_help_text())
            return None
        try:
            args, extra = _PARSER.parse_known_args(shlex.split(line))
        except _HelpShown:  # a subcommand's --help, already printed
            return None
        except ValueError as exc:  # shlex: unbalanced quotes
            raise UsageError(f"%aio: {exc}") from None
        if extra:  # answered with the subcommand's usage, not the top level's
            _SUBPARSERS[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        if cell is not None:
            if args.command != "run":
                raise UsageError(
                    f"%%aio takes 'run' as a cell magic (got {args.command!r}); "
                    "the other subcommands are line magics: %aio tasks, %aio where ..."
                )
            try:
                return self._run_cell(cell, args.timeout)
            except BaseException as err:  # noqa: BLE001 - re-raised, with the user's frames only
                raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        s = self.settings
        try:
            if args.command == "loops":
                return inspect_loops(include_internal=args.all)
            if args.command == "tasks":
                return inspect_tasks(
                    loop=args.loop,
                    state=args.state,
                    name=args.name,
                    coro=args.coro,
                    sort=args.sort,
                    reverse=args.reverse,
                    per_page=args.limit or s.page_size,
                    page=args.page,
                    group=args.group,
                    include_internal=args.all,
                    full=args.full,
                    timeout=s.snapshot_timeout,
                )
            if args.command == "where":
                return where_task(args.task, timeout=s.snapshot_timeout)
            if args.command == "cancel":
                if not args.tasks and args.match is None:
                    raise UsageError("%aio cancel: give task ids/names, or --match REGEX")
                return cancel_tasks(
                    args.tasks,
                    match=args.match,
                    dry_run=args.dry_run,
                    force=args.force,
                    include_internal=args.all,
                    timeout=args.timeout if args.timeout is not None else s.cancel_timeout,
                )
            if args.command in _SWITCHES:
                attr, label, on_text, off_text = _SWITCHES[args.command]
                if args.switch != "status":
                    setattr(s, attr, args.switch == "on")
                on = getattr(s, attr)
                return SettingView(label, on, on_text if on else off_text)
            if args.command == "health":
                return self._health(args)
            if args.command == "watch":
                return self._watch(args)
            if args.command in ("leaks", "doctor"):
                from . import health

                if args.command == "leaks":
                    return health.leaks(older_than=args.older)
                return health.doctor()
            if args.command == "audit":
                return self._audit(args)
            if args.command == "run":
                raise UsageError("%aio run is a cell magic: put %%aio run on a cell's first line")
        except (ValueError, LookupError) as exc:
            raise UsageError(str(exc)) from None
        print(_help_text())
        return None

    def _audit(self, args: argparse.Namespace) -> Any:
        """%aio audit: the static audit, as a table view."""
        import os

        from .audit import ConfigError, check
        from .audit._output import AuditView

        if args.session:
            if args.paths:
                raise UsageError(
                    "%aio audit: give paths or --session, not both "
                    f"(got --session and {' '.join(args.paths)})"
                )
            return self._audit_session(args)
        paths = args.paths or ["."]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise UsageError(
                f"%aio audit: no such file or folder: {', '.join(missing)} "
                f"(paths are relative to {os.getcwd()})"
            )
        try:
            report = check(
                paths,
                select=args.select.split(",") if args.select else None,
                ignore=args.ignore.split(",") if args.ignore else None,
            )
        except ConfigError as exc:
            raise UsageError(f"%aio audit: {exc}") from None
        return AuditView(report.findings, report.files)

    def _audit_session(self, args: argparse.Namespace) -> Any:
        """%aio audit --session: the cells run so far, read from IPython's input
        history as typed (magics and all), checked as one notebook whose code cell N is
        In[N], and reported as In[N]:line."""
        import json
        import re
        import tempfile
        from pathlib import Path

        from .audit import ConfigError, check
        from .audit._config import find_pyproject, load_config
        from .audit._output import AuditView

        history = getattr(self.shell, "history_manager", None)
        raw = list(getattr(history, "input_hist_raw", None) or [""])
        cells = [
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": n,
                "source": src,
            }
            for n, src in enumerate(raw[1:], start=1)
        ]
        nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
        with tempfile.TemporaryDirectory(prefix="loopbridge-audit-") as folder:
            path = Path(folder) / "__main__.ipynb"  # cells run in __main__
            path.write_text(json.dumps(nb), encoding="utf-8")
            try:
                config = load_config(find_pyproject(Path.cwd()))
                report = check(
                    [path],
                    select=args.select.split(",") if args.select else None,
                    ignore=args.ignore.split(",") if args.ignore else None,
                    config=config,
                )
            except ConfigError as exc:
                raise UsageError(f"%aio audit: {exc}") from None
            shown = {f.path for f in report.findings}
        where = re.compile(
            "(?:" + "|".join(re.escape(p) for p in shown or {"\0"}) + r"):cell (\d+):"
        )

        def rename(text: str) -> str:
            text = where.sub(lambda m: f"In[{m.group(1)}]:", text)
            return re.sub(r"\bcell (\d+)\b", r"In[\1]", text)

        for f in report.findings:
            if f.cell is not None:
                f.path = f"In[{f.cell}]"
                f.cell = None
            f.message = rename(f.message)
            f.chain = tuple(rename(c) for c in f.chain)
            f.fix = None  # edits of a temporary file: nothing to apply them to
        return AuditView(report.findings, len(raw) - 1, unit="cell(s) of this session")

    def _health(self, args: argparse.Namespace) -> Any:
        from . import health

        if args.action == "start":
            loops = None
            if args.loop is not None:
                loops = [
                    lp
                    for snap, lp in _inspect._find_loops()
                    if args.loop in snap.label or args.loop == snap.role
                ]
                if not loops:
                    raise UsageError(
                        f"%aio health start --loop {args.loop}: no loop's label or role "
                        "matches; %aio loops lists them"
                    )
            health.start(
                every=args.every,
                threshold=args.threshold,
                loops=loops,
                tasks=args.tasks,
                steps=args.steps,
            )
            self.settings._watch_cells(True)
        elif args.action == "stop":
            health.stop()
            self.settings._watch_cells(False)
        elif args.action == "steps":
            return health.slow_steps()
        return health.report()

    def _watch(self, args: argparse.Namespace) -> Any:
        """Show a view, then refresh it in place from a daemon thread: the kernel stays
        free; it stops after --for, at %aio watch stop (or a new %aio watch), at
        "Interrupt kernel" pressed while no cell runs, or at unload."""
        self.settings._stop_watch()
        if args.what == "stop":
            return None
        s = self.settings
        if args.what == "tasks":

            def view() -> Any:
                return inspect_tasks(per_page=s.page_size, timeout=s.snapshot_timeout)

        elif args.what == "loops":

            def view() -> Any:
                return inspect_loops()

        else:
            from . import health

            def view() -> Any:
                return health.report()

        from IPython.display import display

        handle = display(view(), display_id=True)  # type: ignore[no-untyped-call]
        print(
            f"refreshing every {args.every:g}s for {args.duration:g}s; %aio watch stop "
            "(or Interrupt kernel) stops it"
        )
        s._start_watch(view, handle, args.every, args.duration)
        return None

    def _run_cell(self, cell: str, timeout: float | None) -> Any:
        shell: Any = self.shell
        source = shell.transform_cell(cell)
        # so that tracebacks and %aio show the cell as In[n]
        filename = shell.compile.cache(source, self.settings._cell or 0)
        tree = ast.parse(source, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        body = compile(tree, filename, "exec", flags=flags)
        tail = compile(last, filename, "eval", flags=flags) if last is not None else None
        ns = shell.user_ns

        async def cell_body() -> Any:
            value = eval(body, ns)
            if body.co_flags & inspect.CO_COROUTINE:
                await value
            if tail is None:
                return None
            value = eval(tail, ns)
            if tail.co_flags & inspect.CO_COROUTINE:
                value = await value
            return value

        coro: Any = cell_body()
        # errors and timeouts name the cell, not this method's inner function
        coro.__qualname__ = coro.__name__ = f"In[{self.settings._cell or '?'}]"
        return default_worker().run_sync(coro, timeout=timeout)


AioMagics.aio.__doc__ = _help_text()

_state: dict[int, tuple[LoopBridge, AioMagics]] = {}


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext loopbridge``: add the magics and apply the configuration.

    Example::

        %load_ext loopbridge
        %aio tasks
    """
    if id(ip) in _state:
        return
    settings = LoopBridge(shell=ip, parent=ip)
    ip.configurables.append(settings)
    magics = AioMagics(ip, settings)
    ip.register_magics(magics)
    settings.load()
    _state[id(ip)] = (settings, magics)
    warning = _nest_asyncio_warning()
    if settings.banner:
        print(settings.status_line())
    if warning:
        print(f"loopbridge warning: {warning}", file=sys.stderr)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext loopbridge``: undo everything loading changed.

    Example::

        %unload_ext loopbridge
    """
    entry = _state.pop(id(ip), None)
    if entry is None:
        return
    settings, magics = entry
    settings.unload()
    mm = ip.magics_manager
    for kind in ("line", "cell"):
        if mm.magics[kind].get("aio") == getattr(magics, "aio", None):
            del mm.magics[kind]["aio"]
    mm.registry.pop(type(magics).__name__, None)
    for obj in (settings, magics):
        if obj in ip.configurables:
            ip.configurables.remove(obj)
