"""Snapshots of event loops and their tasks, as plain data.

Everything here returns frozen records of strings and numbers: no record keeps
a task, a frame or a loop alive. A loop's tasks are read on that loop's own
thread (inline when it is the caller's loop, through ``call_soon_threadsafe``
with a timeout otherwise); a loop that does not answer in time is read from the
calling thread instead and the result is labelled best-effort, together with
the blocked thread's current stack.

Works on the standard library alone; the IPython extension renders these
records (``_views``) and adds cell numbers through the task factory below.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import linecache
import operator
import os
import re
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._worker import _WRAPPER_CODES, _all_workers

_GatheringFuture: Any = getattr(asyncio.tasks, "_GatheringFuture", None)
_HAS_CANCELLING = sys.version_info >= (3, 11)
# 3.14+ records awaited-by edges itself; used when present (not on 3.10-3.13).
_capture_call_graph: Any = getattr(asyncio, "capture_call_graph", None)
# 3.14 keeps native tasks in per-thread lists, not in the registries read below.
_PER_THREAD_TASKS = sys.version_info >= (3, 14)
_get_loop = operator.methodcaller("get_loop")
_running_loop = asyncio.events._get_running_loop  # None where no loop runs (as in _faces)

__all__ = [
    "FrameInfo",
    "LoopSnapshot",
    "TaskSnapshot",
    "TaskTrace",
    "find_loops",
    "snapshot_tasks",
]

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_PKG_DIR = os.path.dirname(__file__) + os.sep
# Packages whose tasks and loops belong to the kernel, not to the user.
_INTERNAL_PACKAGES = ("ipykernel", "IPython", "tornado", "zmq", "jupyter_client", "comm", "debugpy")
_INTERNAL_THREADS = ("IOPub", "Control", "Shell channel", "Heartbeat")

# -- creation records (filled by the task factory the extension installs) -------

# id(task) -> (weakref to the task, creation time, cell). A plain dict keyed by id
# with a weakref that removes the entry when the task dies: 5x cheaper to read
# than a WeakKeyDictionary, which matters when a snapshot reads 10,000 of them.
_created: dict[int, tuple[weakref.ref[Any], float, int | None]] = {}


def _forget(key: int) -> Callable[[Any], None]:
    def forget(_ref: Any) -> None:
        _created.pop(key, None)

    return forget


_current_cell: Callable[[], int | None] = lambda: None  # noqa: E731 - replaced by the extension
# Maps a compiled cell's file name to "In[12]" (set by the extension); None otherwise.
_cell_of_file: Callable[[str], str | None] = lambda filename: None  # noqa: E731


class ChainingFactory:
    """A task factory that makes the task the way the loop did before it was installed.

    Chains to the factory that was there, so a user's factory (or
    ``asyncio.eager_task_factory``) keeps working; ``eager_start`` and ``context``
    are passed through, which lets the worker keep its eager start. Subclasses
    note what they need in ``__call__`` after :meth:`make`.
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        # The worker passes eager_start=True only to a factory that says it takes it;
        # a user's factory underneath may not.
        self.__loopbridge_eager__ = previous is None or bool(
            getattr(previous, "__loopbridge_eager__", False)
        )

    def make(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        if self.previous is not None:
            return self.previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)


class _TrackingFactory(ChainingFactory):
    """A task factory that records when (and in which cell) each task was made."""

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        task = self.make(loop, coro, **kwargs)
        try:
            key = id(task)
            _created[key] = (weakref.ref(task, _forget(key)), time.time(), _current_cell())
        except TypeError:  # a factory that returns something not weak-referenceable
            pass
        return task  # type: ignore[no-any-return]


def install_tracking(loop: asyncio.AbstractEventLoop) -> bool:
    """Install the recording task factory on *loop* (idempotent). Thread-safe enough:
    ``set_task_factory`` only stores an attribute read at the next ``create_task``."""
    current = loop.get_task_factory()
    if isinstance(current, _TrackingFactory):
        return False
    loop.set_task_factory(_TrackingFactory(current))
    return True


def remove_tracking(loop: asyncio.AbstractEventLoop) -> bool:
    """Put back the factory that was there before :func:`install_tracking`.

    Leaves a factory someone installed after ours alone (returns False)."""
    current = loop.get_task_factory()
    if isinstance(current, _TrackingFactory):
        loop.set_task_factory(current.previous)
        return True
    return False


# -- loops -------------------------------------------------------------------


@dataclass(frozen=True)
class LoopSnapshot:
    """One event loop of the process, as seen at one moment.

    ``role`` is ``main`` (the loop of the main thread, e.g. the kernel's),
    ``worker`` (a loopbridge :class:`WorkerLoop`), ``internal`` (a kernel
    service loop: IOPub, Control, Shell channel) or ``other``.

    Example::

        main = loopbridge.inspect_loops().loops[0]
        print(main.label, main.thread, main.tasks - main.internal_tasks)
    """

    label: str
    role: str
    cls: str
    thread: str
    thread_id: int | None
    running: bool
    closed: bool
    debug: bool
    tasks: int
    current: bool
    loop_id: int = field(repr=False)
    internal_tasks: int = 0  # of ``tasks``: the kernel's own (ipykernel, tornado, ...)

    @property
    def internal(self) -> bool:
        return self.role == "internal"


def _loop_class(loop: asyncio.AbstractEventLoop) -> str:
    mod = type(loop).__module__.split(".")[0]
    flavour = "uvloop" if mod == "uvloop" else "asyncio" if mod == "asyncio" else mod
    return f"{flavour} ({type(loop).__name__})"


def _live_tasks() -> list[asyncio.Future[Any]]:
    """Every pending task of every loop, read from asyncio's global registries
    (3.10/3.11: ``_all_tasks``; 3.12+: ``_scheduled_tasks`` and ``_eager_tasks``)."""
    import asyncio.tasks as at

    out: list[asyncio.Future[Any]] = []
    if _PER_THREAD_TASKS:
        for lp in _known_loops():
            for _ in range(100):
                try:
                    out.extend(asyncio.all_tasks(lp))
                    break
                except RuntimeError:
                    continue
    for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
        s = getattr(at, name, None)
        if s is None:
            continue
        # A WeakSet's own iterator is slow; copy its set of references instead
        # (retrying if another thread adds a task while we copy).
        data = getattr(s, "data", None)
        for _ in range(100):
            try:
                items = list(data) if data is not None else list(s)
                break
            except RuntimeError:
                continue
        else:  # pragma: no cover - a registry that never holds still
            items = []
        if data is not None:
            deref = weakref.ref.__call__
            out.extend(t for t in map(deref, items) if t is not None and not t.done())
        else:
            out.extend(t for t in items if not t.done())
    if _PER_THREAD_TASKS:  # the two sources overlap
        out = list({id(t): t for t in out if not t.done()}.values())
    return out


def worker_loops() -> list[tuple[Any, asyncio.AbstractEventLoop]]:
    """Every loopbridge worker with a live (not closed) loop, and that loop."""
    out = []
    for w in list(_all_workers):
        gen = w._gen
        if gen is not None and not gen.loop.is_closed():
            out.append((w, gen.loop))
    return out


def _known_loops() -> list[asyncio.AbstractEventLoop]:
    """Loops found without the task registries (the 3.14 path of _live_tasks)."""
    found: dict[int, asyncio.AbstractEventLoop] = {}
    here = _running_loop()
    if here is not None:
        found[id(here)] = here
    for _w, lp in worker_loops():
        found[id(lp)] = lp
    for lp in _running_loop_of_threads().values():
        found[id(lp)] = lp
    return list(found.values())


def _running_loop_of_threads() -> dict[int, asyncio.AbstractEventLoop]:
    """Loops found running in other threads, by walking each thread's stack to
    ``BaseEventLoop.run_forever``. uvloop runs in C and is found other ways."""
    from asyncio.base_events import BaseEventLoop

    target = BaseEventLoop.run_forever.__code__
    found: dict[int, asyncio.AbstractEventLoop] = {}
    for tid, frame in sys._current_frames().items():
        f: Any = frame
        depth = 0
        while f is not None and depth < 200:
            if f.f_code is target:
                loop = f.f_locals.get("self")
                if isinstance(loop, asyncio.AbstractEventLoop):
                    found[tid] = loop
                break
            f = f.f_back
            depth += 1
    return found


def _count_internal(tasks: list[asyncio.Future[Any]]) -> dict[int, int]:
    """id(loop) -> how many of its tasks are the kernel's own (by coroutine file)."""
    dirs = _internal_dirs()
    if not dirs:
        return {}
    per_code: dict[Any, bool] = {}
    out: dict[int, int] = {}
    for t in tasks:
        get_coro = getattr(t, "get_coro", None)
        code = getattr(get_coro(), "cr_code", None) if get_coro is not None else None
        internal = per_code.get(code)
        if internal is None:
            internal = per_code[code] = _internal_code(code, dirs)
        if internal:
            key = id(t.get_loop())
            out[key] = out.get(key, 0) + 1
    return out


def _thread_of(loop: asyncio.AbstractEventLoop, by_thread: dict[int, Any]) -> int | None:
    tid = getattr(loop, "_thread_id", None)  # set by BaseEventLoop while it runs
    if isinstance(tid, int):
        return tid
    for t, lp in by_thread.items():
        if lp is loop:
            return t
    return None


def find_loops(tasks: list[asyncio.Future[Any]] | None = None) -> list[LoopSnapshot]:
    """Every event loop this process can see, with its thread and task count.

    Found from: the caller's running loop, loopbridge's worker loops, loops
    running in other threads (their stacks), and the loops of all live tasks.

    Example::

        for lp in loopbridge.inspect_loops():
            print(lp.label, lp.thread, lp.tasks)
    """
    return [snap for snap, _ in _find_loops(tasks)]


def _find_loops(
    tasks: list[asyncio.Future[Any]] | None = None,
) -> list[tuple[LoopSnapshot, asyncio.AbstractEventLoop]]:
    if tasks is None:
        tasks = _live_tasks()
    here = _running_loop()
    by_thread = _running_loop_of_threads()
    loops: dict[int, asyncio.AbstractEventLoop] = {}
    workers: dict[int, str] = {}
    for w, lp in worker_loops():
        loops[id(lp)] = lp
        workers[id(lp)] = w.thread_name
    if here is not None:
        loops[id(here)] = here
    for lp in by_thread.values():
        loops.setdefault(id(lp), lp)
    per_loop = collections.Counter(map(_get_loop, tasks))
    counts: dict[int, int] = {}
    for lp, n in per_loop.items():
        counts[id(lp)] = n
        loops.setdefault(id(lp), lp)
    internal_counts = _count_internal(tasks)
    threads = {t.ident: t for t in threading.enumerate()}
    main_id = threading.main_thread().ident
    out = []
    for key, lp in loops.items():
        tid = _thread_of(lp, by_thread)
        if lp is here:
            tid = threading.get_ident()
        th = threads.get(tid) if tid is not None else None
        tname = th.name if th is not None else ("-" if tid is None else f"thread {tid}")
        if key in workers:
            role, label = "worker", workers[key]
        elif tid is not None and tid == main_id:
            role, label = "main", "main"
        elif th is not None and (
            th.name in _INTERNAL_THREADS or type(th).__module__.startswith("ipykernel")
        ):
            role, label = "internal", th.name
        else:
            role, label = "other", f"loop-{key:x}"[-10:] if th is None else th.name
        out.append(
            (
                LoopSnapshot(
                    label=label,
                    role=role,
                    cls=_loop_class(lp),
                    thread=tname,
                    thread_id=tid,
                    running=lp.is_running(),
                    closed=lp.is_closed(),
                    debug=lp.get_debug(),
                    tasks=counts.get(key, 0),
                    internal_tasks=internal_counts.get(key, 0),
                    current=lp is here,
                    loop_id=key,
                ),
                lp,
            )
        )
    order = {"main": 0, "worker": 1, "other": 2, "internal": 3}
    out.sort(key=lambda p: (order[p[0].role], p[0].label))
    return out


# -- tasks ---------------------------------------------------------------------


class TaskSnapshot(NamedTuple):
    """One task, as plain data (no reference to the task or its frames).

    ``id`` is a short handle for ``%aio where`` / ``%aio cancel``; ``age`` and
    ``cell`` are known for tasks created while the extension was loaded.
    ``location``, ``waits_on`` and ``awaited_by`` are None on rows that were not
    detailed (see ``inspect_tasks(full=True)``).

    Example::

        row = loopbridge.inspect_tasks(name="poller").rows[0]
        print(row.id, row.state, row.waits_on)     # 4c1a20 pending Event.wait()
    """

    id: str
    name: str
    loop: str
    state: str
    age: float | None
    coro: str
    location: str | None
    waits_on: str | None
    cell: int | None
    awaited_by: tuple[str, ...] | None
    internal: bool


@dataclass(frozen=True)
class FrameInfo:
    """One frame of an await chain: where it is, and the line's source text."""

    filename: str
    lineno: int
    function: str
    line: str

    def __str__(self) -> str:
        return f'File "{self.filename}", line {self.lineno}, in {self.function}'


@dataclass(frozen=True)
class TaskTrace:
    """The await chain of one task (``%aio where``).

    ``chain`` lists segments from the task down: each is a task's frames,
    outermost first, then what its innermost frame waits on. ``awaited_by``
    goes up: a tree of ``(task id, task name, [parents...])``; an edge that
    cannot be known is said to be unknown, never guessed.
    """

    task: TaskSnapshot
    chain: tuple[tuple[str, tuple[FrameInfo, ...], str], ...]
    awaited_by: tuple[Any, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The tasks of every loop looked at, plus how each loop was read."""

    tasks: tuple[TaskSnapshot, ...]
    loops: tuple[LoopSnapshot, ...]
    best_effort: dict[str, tuple[FrameInfo, ...]]  # loop label -> its thread's stack
    taken_at: float


def short_id(task: object) -> str:
    """A short handle for a task: six hex digits of its address."""
    return "%06x" % ((id(task) >> 4) & 0xFFFFFF)


def _internal_code(code: Any, dirs: tuple[str, ...]) -> bool:
    """Is this coroutine's code the kernel's own (defined under ipykernel & co)?"""
    return bool(code is not None and dirs and code.co_filename.startswith(dirs))


def _coro_code(coro: Any) -> Any:
    return getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)


def _internal_loop_ids() -> set[int]:
    return {s.loop_id for s, _ in _find_loops() if s.internal}


def _internal_dirs() -> tuple[str, ...]:
    dirs = []
    for name in _INTERNAL_PACKAGES:
        mod = sys.modules.get(name)
        f = getattr(mod, "__file__", None)
        if f:
            dirs.append(os.path.dirname(f) + os.sep)
    return tuple(dirs)


# For each kind of suspendable object: where its frame is, and what it awaits.
_LINKS = {
    types.CoroutineType: ("cr_frame", "cr_await"),
    types.GeneratorType: ("gi_frame", "gi_yieldfrom"),
    types.AsyncGeneratorType: ("ag_frame", "ag_await"),
}
_COMPILED = ("cr_frame", "cr_await")  # Cython/compiled coroutines may offer these


def _frame_of(obj: Any) -> Any:
    return getattr(obj, _LINKS.get(type(obj), _COMPILED)[0], None)


def _next_await(obj: Any) -> Any:
    return getattr(obj, _LINKS.get(type(obj), _COMPILED)[1], None)


def _walk(coro: Any) -> tuple[list[Any], Any]:
    """The frames of a coroutine chain (outermost first) and the leaf it awaits."""
    frames = []
    obj = coro
    for _ in range(200):
        fr = _frame_of(obj)
        if fr is None:
            break
        frames.append(fr)
        nxt = _next_await(obj)
        if nxt is None:
            return frames, None
        if _frame_of(nxt) is None:
            return frames, nxt
        obj = nxt
    return frames, None


def _user_coro(task: asyncio.Future[Any]) -> Any:
    """The coroutine to show for *task*; looks through loopbridge's own 3.10
    context-capturing wrapper to the user's coroutine."""
    get_coro = getattr(task, "get_coro", None)
    coro = get_coro() if get_coro else None
    code = getattr(coro, "cr_code", None)
    if code is not None and code in _WRAPPER_CODES:
        inner = getattr(coro, "cr_await", None)
        if inner is not None and _frame_of(inner) is not None:
            return inner
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:  # not started yet: the user's coroutine is an argument
            inner = frame.f_locals.get("coro")
            if inner is not None:
                return inner
    return coro


def _qualname(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None)
    if name:
        return str(name)
    return type(coro).__name__ if coro is not None else "?"


def _state(task: asyncio.Future[Any]) -> str:
    if task.done():
        if task.cancelled():
            return "cancelled"
        return "failed" if task.exception() is not None else "finished"
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None:
        if cancelling():
            return "cancelling"
    elif getattr(task, "_must_cancel", False):
        return "cancelling"
    return "pending"


@functools.lru_cache(maxsize=4096)
def _short_path(path: str) -> str:
    if path.startswith(_ASYNCIO_DIR):
        return "asyncio/" + path[len(_ASYNCIO_DIR) :]
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def _describe_leaf(leaf: Any, innermost: Any, loop: asyncio.AbstractEventLoop) -> str:
    """What the innermost frame waits on, in the user's words."""
    if innermost is not None:
        code = innermost.f_code
        name = code.co_name
        if code.co_filename.startswith(_ASYNCIO_DIR):
            owner = innermost.f_locals.get("self")
            kind = type(owner).__name__ if owner is not None else ""
            if name == "sleep":
                h = innermost.f_locals.get("h")
                delay = innermost.f_locals.get("delay")
                if h is not None and hasattr(h, "when"):
                    left = max(h.when() - loop.time(), 0.0)
                    return f"sleep({delay:g}s, {_seconds(left)} left)"
                return f"sleep({delay})"
            if name == "__sleep0":
                return "sleep(0)"
            if kind == "Event" and name == "wait":
                return "Event.wait()"
            if kind in ("Queue", "PriorityQueue", "LifoQueue") and name == "get":
                return f"{kind}.get() (empty)"
            if kind in ("Queue", "PriorityQueue", "LifoQueue") and name == "put":
                return f"{kind}.put() (full)"
            if kind in ("Lock", "Semaphore", "BoundedSemaphore") and name == "acquire":
                return f"{kind}.acquire() (held)"
            if kind == "Condition" and name in ("wait", "wait_for"):
                return "Condition.wait()"
            if kind == "TaskGroup" and name in ("__aexit__", "_aexit"):
                children = getattr(owner, "_tasks", ())
                return f"TaskGroup ({len(children)} children)"
            if kind == "StreamReader":
                transport = getattr(owner, "_transport", None)
                peer = transport.get_extra_info("peername") if transport is not None else None
                return f"socket read ({_peer(peer)})"
            if name.startswith("sock_") or name in ("_sock_connect", "sock_connect"):
                sock = innermost.f_locals.get("sock")
                peer = None
                try:
                    peer = sock.getpeername() if sock is not None else None
                except OSError:
                    pass
                return f"socket {name}({_peer(peer)})"
            if name in ("wait_for", "wait", "as_completed", "shield", "timeout"):
                return f"asyncio.{name}()"
    if leaf is None:
        return "-"
    if isinstance(leaf, asyncio.Task):
        return f"task {short_id(leaf)} {leaf.get_name()}"
    if type(leaf) is _GatheringFuture:
        children = leaf._children
        done = sum(1 for c in children if c.done())
        return f"gather ({len(children)} children, {done} done)"
    if isinstance(leaf, asyncio.Future):
        return _describe_future(innermost)
    return f"{type(leaf).__name__} (unknown awaitable)"


def _describe_future(innermost: Any) -> str:
    """A bare Future awaited by library code: say whose, and on which socket.

    An aiohttp response being read waits on a Future in its ResponseHandler
    (the connection's protocol), whose transport names the peer.
    """
    if innermost is None:
        return "Future"
    owner = innermost.f_locals.get("self")
    name = innermost.f_code.co_name
    where = f"{type(owner).__name__}.{name}" if owner is not None else f"{name}()"
    transport = None
    for attr in ("transport", "_transport"):
        candidate = getattr(owner, attr, None) if owner is not None else None
        if candidate is not None and hasattr(candidate, "get_extra_info"):
            transport = candidate
            break
    if transport is not None:
        try:
            peer = transport.get_extra_info("peername")
        except Exception:  # noqa: BLE001 - a closed or foreign transport: no peer
            peer = None
        return f"Future in {where} (socket {_peer(peer)})"
    return f"Future in {where}"


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f}s"
    return f"{value:.1f}s" if value < 100 else f"{value:.0f}s"


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else "unconnected"


def _location(frames: list[Any]) -> str:
    """The innermost frame that is not asyncio's (nor loopbridge's) own."""
    chosen = None
    for fr in frames:
        fn = fr.f_code.co_filename
        if fn.startswith((_ASYNCIO_DIR, _PKG_DIR)):
            continue
        chosen = fr
    if chosen is None and frames:
        chosen = frames[-1]
    if chosen is None:
        return "(not started)"
    filename = chosen.f_code.co_filename
    where = _cell_of_file(filename) or _short_path(filename)
    return f"{where}:{chosen.f_lineno} in {chosen.f_code.co_name}"


def _waiter(task: asyncio.Future[Any]) -> Any:
    return getattr(task, "_fut_waiter", None)


def _waiter_index(tasks: Iterable[asyncio.Future[Any]]) -> dict[int, list[asyncio.Future[Any]]]:
    """child id -> tasks awaiting it directly or through gather(). One cheap pass."""
    up: dict[int, list[asyncio.Future[Any]]] = {}
    for t in tasks:
        w = getattr(t, "_fut_waiter", None)
        if w is None:
            continue
        tw = type(w)
        if tw is _GatheringFuture:
            for c in w._children:
                up.setdefault(id(c), []).append(t)
        elif isinstance(w, asyncio.Task):
            up.setdefault(id(w), []).append(t)
    return up


def _parents(task: asyncio.Future[Any], up: dict[int, list[asyncio.Future[Any]]]) -> list[Any]:
    """Tasks known to await *task*: direct, gather, and its TaskGroup's owner
    (found through the group's done-callback on the child)."""
    parents = list(up.get(id(task), ()))
    if _capture_call_graph is not None:  # 3.14+: asyncio keeps the edges itself
        try:
            graph = _capture_call_graph(task, depth=1)
            for edge in getattr(graph, "awaited_by", ()) or ():
                fut = getattr(edge, "future", None)
                if fut is not None and fut not in parents:
                    parents.append(fut)
        except Exception:  # noqa: BLE001 - fall back to our own bookkeeping below
            pass
    for cb, *_ in getattr(task, "_callbacks", None) or ():
        owner = getattr(cb, "__self__", None)
        if type(owner).__name__ == "TaskGroup":
            parent = getattr(owner, "_parent_task", None)
            if parent is not None and parent not in parents:
                parents.append(parent)
    return parents


def _walk_task(task: asyncio.Future[Any]) -> tuple[Any, list[Any], Any]:
    coro = _user_coro(task)
    frames, leaf = _walk(coro)
    if leaf is None or type(leaf).__name__ == "FutureIter":
        # The C future's iterator hides its future; the task knows which it is.
        leaf = _waiter(task) or leaf
    return coro, frames, leaf


def _cheap_rows(
    tasks: Iterable[asyncio.Future[Any]],
    loop_label: str,
    internal_dirs: tuple[str, ...],
    internal_loop: bool,
) -> list[tuple[TaskSnapshot, asyncio.Future[Any]]]:
    """The columns that cost little, for many tasks: enough to filter, sort,
    group and count. Written as one flat loop with per-code caches and without
    NamedTuple's Python-level constructor, because it runs for every task of a
    loop (10,000 in the benchmark)."""
    now = time.time()
    created = _created
    new = tuple.__new__
    cls = TaskSnapshot
    task_type = asyncio.Task
    per_code: dict[Any, tuple[str, bool]] = {}
    out = []
    for task in tasks:
        is_task = isinstance(task, task_type)
        coro = task.get_coro() if is_task else None  # type: ignore[attr-defined]
        code = getattr(coro, "cr_code", None)
        if code is not None and code in _WRAPPER_CODES:
            coro = _user_coro(task)
            code = getattr(coro, "cr_code", None)
        known = per_code.get(code)
        if known is None:
            known = per_code[code] = (_qualname(coro), _internal_code(code, internal_dirs))
        key = id(task)
        entry = created.get(key) if created else None
        if entry is not None and entry[0]() is not task:
            entry = None
        if task.done():
            state = _state(task)
        elif is_task and _HAS_CANCELLING:
            state = "cancelling" if task.cancelling() else "pending"  # type: ignore[attr-defined]
        else:
            state = "cancelling" if getattr(task, "_must_cancel", False) else "pending"
        row = new(
            cls,
            (
                "%06x" % ((key >> 4) & 0xFFFFFF),
                task.get_name() if is_task else type(task).__name__,  # type: ignore[attr-defined]
                loop_label,
                state,
                (now - entry[1]) if entry else None,
                known[0] if coro is not None else type(task).__name__,
                None,
                None,
                # the cell that created it; the kernel's own tasks belong to no cell
                entry[2] if entry and not (internal_loop or known[1]) else None,
                None,
                internal_loop or known[1],
            ),
        )
        out.append((row, task))
    return out


def _detailed(
    row: TaskSnapshot,
    task: asyncio.Future[Any],
    loop: asyncio.AbstractEventLoop,
    up: dict[int, list[asyncio.Future[Any]]],
) -> TaskSnapshot:
    """Add the costly columns: where it is suspended, what it waits on, who awaits it."""
    _coro, frames, leaf = _walk_task(task)
    return row._replace(
        state=_state(task),
        location=_location(frames),
        waits_on=_describe_leaf(leaf, frames[-1] if frames else None, loop),
        awaited_by=tuple(short_id(p) for p in _parents(task, up)),
    )


def _frames_of_thread(tid: int | None) -> tuple[FrameInfo, ...]:
    if tid is None:
        return ()
    frame = sys._current_frames().get(tid)
    stack = []
    while frame is not None:
        stack.append(_frame_info(frame))
        frame = frame.f_back
    return tuple(reversed(stack))


def _frame_info(frame: Any) -> FrameInfo:
    code = frame.f_code
    lineno = frame.f_lineno or code.co_firstlineno
    return FrameInfo(
        filename=_cell_of_file(code.co_filename) or code.co_filename,
        lineno=lineno,
        function=code.co_name,
        line=linecache.getline(code.co_filename, lineno).strip(),
    )


def on_loop_thread(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[], Any],
    timeout: float,
) -> tuple[bool, Any]:
    """Run *fn* on *loop*'s thread and return ``(True, result)``; ``(False, None)``
    when the loop did not answer within *timeout* (it is blocked).

    Inline when *loop* is the caller's own loop or is not running (nothing else
    touches it then)."""
    if loop is _running_loop() or not loop.is_running():
        return True, fn()
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller, not the loop
            box.append((False, exc))
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # closed meanwhile
        return True, fn()
    if not done.wait(timeout):
        return False, None
    ok, value = box[0]
    if not ok:
        raise value
    return True, value


def snapshot_tasks(*args: Any, **kwargs: Any) -> Snapshot:
    """See :func:`_snapshot_tasks`. The cyclic GC is paused while the snapshot is
    taken: it makes tens of thousands of short-lived tuples, none in a cycle, and
    with 10,000 live tasks each full collection they would trigger costs more than
    the snapshot itself (it is restored at once, and only paused if it was on)."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _snapshot_tasks(*args, **kwargs)
    finally:
        if paused:
            gc.enable()


def _snapshot_tasks(
    *,
    loop: str | None = None,
    include_internal: bool = False,
    timeout: float = 1.0,
    details: bool | Callable[[list[TaskSnapshot]], Iterable[str]] = True,
) -> Snapshot:
    """Snapshot the pending tasks of every loop (or of the loops whose label
    contains *loop*, or whose role is *loop*: main, worker, other, internal),
    each loop read on its own thread.

    *details* says which rows get the costly columns (``location``,
    ``waits_on``, ``awaited_by``): all (True), none (False), or the ids a
    callable picks from the cheap rows (how ``%aio tasks`` details only the
    page it shows, so that 10,000 tasks stay fast). Undetailed columns are None.

    Example::

        snap = loopbridge.inspect_tasks()
        for t in snap.tasks:
            print(t.id, t.name, t.state, t.waits_on)
    """
    all_tasks = _live_tasks()
    found = _find_loops(all_tasks)
    dirs = _internal_dirs()
    best: dict[str, tuple[FrameInfo, ...]] = {}
    seen: list[LoopSnapshot] = []
    per_loop: list[tuple[LoopSnapshot, asyncio.AbstractEventLoop, list[Any], list[Any]]] = []
    for snap, lp in found:
        if loop is not None and loop not in snap.label and loop != snap.role:
            continue  # by label ("loopbridge-default") or by role ("worker", "main")
        if snap.internal and not include_internal and loop is None:
            continue
        seen.append(snap)
        if snap.tasks == 0:
            continue

        def read(lp: asyncio.AbstractEventLoop = lp, snap: LoopSnapshot = snap) -> Any:
            # On the loop's own thread: the moment the snapshot describes. The list
            # read above is reused when that moment is now (the caller's own loop,
            # or a loop that is not running); another loop's thread reads afresh.
            here = lp is _running_loop() or not lp.is_running()
            mine = [t for t in (all_tasks if here else _live_tasks()) if t.get_loop() is lp]
            return _cheap_rows(mine, snap.label, dirs, snap.internal), mine

        pairs, mine = _read_on(lp, snap, read, timeout, best)
        if not include_internal:
            pairs = [p for p in pairs if not p[0].internal]
        per_loop.append((snap, lp, pairs, mine))
    rows = [row for _, _, pairs, _ in per_loop for row, _ in pairs]
    if details is True:
        wanted: set[str] | None = None
    elif details is False:
        wanted = set()
    else:
        wanted = set(details(rows))
    if wanted is None or wanted:
        out: dict[str, TaskSnapshot] = {}
        for snap, lp, pairs, mine in per_loop:
            todo = [(r, t) for r, t in pairs if wanted is None or r.id in wanted]
            if not todo:
                continue

            def detail(
                lp: asyncio.AbstractEventLoop = lp, todo: list[Any] = todo, mine: Any = mine
            ) -> list[TaskSnapshot]:
                up = _waiter_index(mine)
                return [_detailed(r, t, lp, up) for r, t in todo]

            for r in _read_on(lp, snap, detail, timeout, best):
                out[r.id] = r
        rows = [out.get(r.id, r) for r in rows]
    return Snapshot(tuple(rows), tuple(seen), best, time.time())


def _read_on(
    lp: asyncio.AbstractEventLoop,
    snap: LoopSnapshot,
    fn: Callable[[], Any],
    timeout: float,
    best: dict[str, tuple[FrameInfo, ...]],
) -> Any:
    ok, value = on_loop_thread(lp, fn, timeout)
    if ok:
        return value
    # The loop is blocked (a callback never returns), so it cannot answer. Its
    # tasks cannot advance while it is blocked, so reading them from here is
    # close to right, but it is a guess: the view labels it and shows what the
    # blocked thread is doing.
    best[snap.label] = _frames_of_thread(snap.thread_id)
    return fn()


# -- finding one task again -------------------------------------------------------


class TaskLookupError(LookupError):
    """No task, or more than one, matches what was asked for."""


def find_task(ref: str) -> asyncio.Future[Any]:
    """The live task whose short id, full hex id or name is *ref*."""
    if not isinstance(ref, str) or not ref.strip():
        raise TaskLookupError(f"expected a task id or name (see %aio tasks), got {ref!r}")
    ref = ref.strip()
    live = _live_tasks()
    exact = [t for t in live if short_id(t) == ref or f"{id(t):x}" == ref.lower()]
    if not exact:
        exact = [t for t in live if isinstance(t, asyncio.Task) and t.get_name() == ref]
    if not exact:
        exact = [t for t in live if short_id(t).startswith(ref)] if len(ref) >= 3 else []
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise TaskLookupError(
            f"no pending task has the id or name {ref!r}; it may have finished. "
            "List the live ones with %aio tasks (or loopbridge.inspect_tasks())."
        )
    names = ", ".join(f"{short_id(t)} ({_name(t)})" for t in exact[:10])
    raise TaskLookupError(f"{ref!r} matches {len(exact)} tasks: {names}; use the full id")


def match_tasks(pattern: str) -> list[tuple[asyncio.Future[Any], bool]]:
    """Live tasks whose name or coroutine name matches the regular expression
    *pattern*, each with whether it is kernel-internal (cancel refuses those
    unless forced, and says so)."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise TaskLookupError(
            f"--match {pattern!r} is not a valid regular expression: {exc}"
        ) from None
    dirs = _internal_dirs()
    internal_loops = _internal_loop_ids()
    out = []
    for t in _live_tasks():
        coro = _user_coro(t)
        name = t.get_name() if isinstance(t, asyncio.Task) else ""
        if not (rx.search(name) or rx.search(_qualname(coro))):
            continue
        out.append((t, is_internal(t, dirs, internal_loops)))
    return out


def is_internal(
    task: asyncio.Future[Any],
    dirs: tuple[str, ...] | None = None,
    internal_loops: set[int] | None = None,
) -> bool:
    if dirs is None:
        dirs = _internal_dirs()
    if internal_loops is None:
        internal_loops = _internal_loop_ids()
    if id(task.get_loop()) in internal_loops:
        return True
    return _internal_code(_coro_code(_user_coro(task)), dirs)


def loop_label(loop: asyncio.AbstractEventLoop) -> str:
    for snap, lp in _find_loops():
        if lp is loop:
            return snap.label
    return f"loop-{id(loop):x}"


# -- where: the await chain of one task ---------------------------------------------


def trace_task(ref: str | asyncio.Future[Any], *, timeout: float = 1.0) -> TaskTrace:
    """The await chain of one task, read on its loop's thread.

    Example::

        tr = loopbridge.where_task("Task-12")
        print(tr.chain[0][1][-1])          # the innermost frame
    """
    task = ref if isinstance(ref, asyncio.Future) else find_task(ref)
    loop = task.get_loop()
    label = loop_label(loop)

    def read() -> TaskTrace:
        return _trace(task, label)

    ok, value = on_loop_thread(loop, read, timeout)
    if ok:
        return value  # type: ignore[no-any-return]
    tr = read()
    return TaskTrace(
        tr.task,
        tr.chain,
        tr.awaited_by,
        (*tr.notes, f"loop {label} did not answer within {timeout:g}s: best-effort read"),
    )


def _trace(task: asyncio.Future[Any], label: str) -> TaskTrace:
    loop = task.get_loop()
    tasks = [t for t in _live_tasks() if t.get_loop() is loop]
    up = _waiter_index(tasks)
    ((row, _),) = _cheap_rows([task], label, _internal_dirs(), False)
    snap = _detailed(row, task, loop, up)
    chain: list[tuple[str, tuple[FrameInfo, ...], str]] = []
    notes: list[str] = []
    current: Any = task
    visited: set[int] = set()
    while current is not None and id(current) not in visited and len(chain) < 20:
        visited.add(id(current))
        _coro, frames, leaf = _walk_task(current)
        infos = tuple(_frame_info(f) for f in frames)
        what = _describe_leaf(leaf, frames[-1] if frames else None, loop)
        if leaf is not None and not isinstance(leaf, asyncio.Future) and _frame_of(leaf) is None:
            what += " - the chain continues inside it, which Python does not expose (unknown)"
        chain.append((f"{short_id(current)} {_name(current)}", infos, what))
        if isinstance(leaf, asyncio.Task):
            current = leaf
        else:
            children = leaf._children if type(leaf) is _GatheringFuture else None
            if children:
                notes.append("gathers: " + ", ".join(f"{short_id(c)} {_name(c)}" for c in children))
            current = None
    return TaskTrace(snap, tuple(chain), _up_tree(task, up, set()), tuple(notes))


def _name(t: Any) -> str:
    return t.get_name() if isinstance(t, asyncio.Task) else type(t).__name__


def _up_tree(task: Any, up: dict[int, list[Any]], seen: set[int]) -> tuple[Any, ...]:
    out = []
    for parent in _parents(task, up):
        if id(parent) in seen:
            continue
        seen.add(id(parent))
        out.append((short_id(parent), _name(parent), _up_tree(parent, up, seen)))
    return tuple(out)


# -- cancel -------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelOutcome:
    id: str
    name: str
    loop: str
    outcome: str


def cancel_tasks(
    targets: list[tuple[asyncio.Future[Any], bool]],
    *,
    dry_run: bool = False,
    force: bool = False,
    timeout: float = 2.0,
    msg: str | None = None,
) -> list[CancelOutcome]:
    """Cancel tasks thread-safely (each on its own loop), then wait up to
    *timeout* for them to finish; say what happened to each."""
    labels = {s.loop_id: s.label for s, _ in _find_loops()}
    here = _running_loop()
    rows: list[tuple[Any, str, str, str, str | None]] = []
    waits: list[tuple[Any, threading.Event]] = []
    for task, internal in targets:
        loop = task.get_loop()
        lab = labels.get(id(loop), f"loop-{id(loop):x}")
        sid, name = short_id(task), _name(task)
        if internal and not force:
            rows.append((task, sid, name, lab, "refused: kernel-internal (add --force)"))
            continue
        if dry_run:
            rows.append((task, sid, name, lab, "would cancel (dry run)"))
            continue
        if loop is here:
            task.cancel(msg)
            # Our own loop runs this code, so it cannot finish the task now.
            rows.append(
                (task, sid, name, lab, "cancel requested; takes effect when this cell ends")
            )
            continue
        done = threading.Event()
        try:
            loop.call_soon_threadsafe(_cancel_and_signal, task, msg, done)
        except RuntimeError:
            rows.append((task, sid, name, lab, "loop is closed"))
            continue
        waits.append((task, done))
        rows.append((task, sid, name, lab, None))
    deadline = time.monotonic() + timeout
    for _task, done in waits:
        done.wait(max(deadline - time.monotonic(), 0))
    out = []
    for task, sid, name, lab, outcome in rows:
        if outcome is None:
            outcome = _final_state(task, timeout)
        out.append(CancelOutcome(sid, name, lab, outcome))
    return out


def _cancel_and_signal(task: asyncio.Future[Any], msg: str | None, done: threading.Event) -> None:
    task.cancel(msg)
    if task.done():
        done.set()
    else:
        task.add_done_callback(lambda _t: done.set())


def _final_state(task: asyncio.Future[Any], timeout: float) -> str:
    if not task.done():
        return f"still running after {timeout:g}s (it may be ignoring cancellation)"
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    if exc is not None:
        return f"finished with {type(exc).__name__}: {exc}"
    return "finished normally (it caught the cancellation)"
