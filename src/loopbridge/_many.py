"""Many calls at once from sync code: ``gather_sync`` and ``map_sync``.

Both run one coroutine on the worker loop: a fixed pool of ``concurrency``
runner tasks pulls items from a shared iterator, so 10,000 items at concurrency
100 cost 100 tasks, not 10,000, and a lazy iterable is consumed lazily. The
caller thread waits through the core (Ctrl-C and timeouts cancel everything)
and, with ``progress=``, draws a tqdm bar itself: the bar belongs to the thread
whose output it is (in Jupyter, the cell's).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import reprlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ._awaitables import _is_coroutine_function, as_coroutine, describe
from ._errors import BridgeTimeoutError, _add_note, _in_kernel
from ._faces import _block, _check_options, _worker_of
from ._worker import WorkerLoop, _get_running_loop, _strip_wrappers, _warn_if_blocking_a_loop

__all__ = ["gather_sync", "map_sync"]

T = TypeVar("T")
R = TypeVar("R")

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


# Iterables whose iterators are safe to advance on the worker loop's thread: they
# never block and never call back into the bridge. Others are pulled in a helper
# thread (see _run_all.pull).
_DIRECT: frozenset[type] = frozenset(
    {list, tuple, range, dict, set, frozenset, type({}.keys()), type({}.values()), type({}.items())}
)


_BATCH = 64  # items pulled from a non-direct iterable per helper-thread hop
_BATCH_SECONDS = 0.002  # ... or as many as come within this time


def _take(items: Iterator[tuple[int, Any]], want: int) -> list[tuple[int, Any]]:
    """Up to *want* items, fewer if the source is slow or ends (runs in a helper thread)."""
    out: list[tuple[int, Any]] = []
    end = time.monotonic() + _BATCH_SECONDS
    for pair in items:
        out.append(pair)
        if len(out) >= want or time.monotonic() >= end:
            break
    return out


class _Progress:
    """Counts shared between the runners (loop thread) and the caller (its thread)."""

    __slots__ = ("failed", "finished", "started", "stopping", "total")

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started = 0
        self.finished = 0  # finished, successfully or not
        self.failed = 0
        self.stopping = False

    def summary(self) -> str:
        total = "?" if self.total is None else str(self.total)
        running = self.started - self.finished
        parts = [f"{self.finished} of {total} finished"]
        if self.failed:
            parts.append(f"{self.failed} with an error")
        if running:
            parts.append(f"{running} running were cancelled")
        if self.total is not None and self.total > self.started:
            parts.append(f"{self.total - self.started} never started")
        return ", ".join(parts)


class _Failure(Exception):
    def __init__(self, index: int, item: object, exc: BaseException) -> None:
        self.index, self.item, self.exc = index, item, exc


async def _run_all(
    items: Iterator[tuple[int, Any]],
    direct: bool,
    sized: bool,
    make: Callable[[Any], Any],
    concurrency: int,
    ordered: bool,
    return_exceptions: bool,
    state: _Progress,
    api: str,
) -> list[Any]:
    results: dict[int, Any] | list[Any] = {} if ordered else []
    loop = asyncio.get_running_loop()
    runners: list[asyncio.Task[None]] = []
    pull_lock = asyncio.Lock()
    pulling = 0  # runners waiting for an item: idle ones
    all_done = loop.create_future()

    pulled_ahead: collections.deque[tuple[int, Any]] = collections.deque()
    exhausted = False

    async def pull() -> tuple[int, Any] | None:
        nonlocal exhausted
        if direct:
            return next(items, None)
        # Any other iterable may itself use the bridge (a syncify'd async
        # generator) or block: never run its __next__ on the worker loop's
        # thread. A helper thread pulls, one batch at a time, as many items as
        # there are free slots (a slow source is not waited on for a batch).
        async with pull_lock:
            if not pulled_ahead and not exhausted:
                want = max(1, min(_BATCH, concurrency - (state.started - state.finished)))
                batch = await loop.run_in_executor(None, _take, items, want)
                exhausted = not batch
                pulled_ahead.extend(batch)
            return pulled_ahead.popleft() if pulled_ahead else None

    def on_runner_done(task: asyncio.Task[None]) -> None:
        if all_done.done():
            return
        if (not task.cancelled() and task.exception() is not None) or all(
            r.done() for r in runners
        ):
            all_done.set_result(None)

    def spawn() -> None:
        task = loop.create_task(runner())
        runners.append(task)
        task.add_done_callback(on_runner_done)

    async def runner() -> None:
        nonlocal pulling
        while True:
            pulling += 1
            try:
                pulled = await pull()
            finally:
                pulling -= 1
            if pulled is None:
                return
            index, item = pulled
            if not pulling and len(runners) < concurrency:
                # Unsized input: runners start as items arrive and none is idle,
                # never more than items (concurrency=200_000 over 3 items: 3 tasks).
                # Sized input started min(concurrency, len) of them at once.
                spawn()
            state.started += 1
            try:
                aw = make(item)
                if not inspect.isawaitable(aw):
                    raise TypeError(
                        f"{api}(): the function returned {describe(aw)} for item {index} "
                        f"({_short.repr(item)}), not an awaitable. Pass an `async def` function "
                        "(or one that returns an awaitable)."
                    )
                value = await aw
            except asyncio.CancelledError as exc:
                if state.stopping:
                    raise
                value = exc  # the item cancelled itself: report it like any failure
                ok = False
            except Exception as exc:  # noqa: BLE001  (the item's error is the result)
                value = exc
                ok = False
            else:
                ok = True
            state.finished += 1
            if not ok:
                state.failed += 1
                if not return_exceptions:
                    raise _Failure(index, item, value)
            if ordered:
                results[index] = value
            else:
                results.append(value)  # type: ignore[union-attr]

    for _ in range(concurrency if sized else 1):
        spawn()
    try:
        await all_done
    except asyncio.CancelledError:
        await _stop(runners, state)
        raise
    done = {t for t in runners if t.done()}
    failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
    if failure is not None:
        await _stop(runners, state)
        if isinstance(failure, _Failure):
            exc = failure.exc
            _add_note(
                exc,
                f"loopbridge: {api}() stopped at the first error, raised for item "
                f"{failure.index} ({_short.repr(failure.item)}): {state.summary()}. "
                "Pass return_exceptions=True to collect errors instead.",
            )
            raise exc.with_traceback(exc.__traceback__)
        raise failure  # a bug of ours or an error from the iterable itself
    if ordered:
        return [results[i] for i in range(len(results))]
    return results  # type: ignore[return-value]


async def _stop(runners: list[asyncio.Task[None]], state: _Progress) -> None:
    state.stopping = True
    for task in runners:
        task.cancel()
    await asyncio.gather(*runners, return_exceptions=True)


def _check_concurrency(concurrency: object, api: str, allow_none: bool) -> None:
    if concurrency is None and allow_none:
        return
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(
            f"{api}(concurrency=...) expects a whole number >= 1"
            + (" or None (no limit)" if allow_none else "")
            + f", got {concurrency!r}."
        )


def _open_bar(progress: object, total: int | None, api: str) -> Any:
    if progress is False or progress is None:
        return None
    if progress is not True and not isinstance(progress, Mapping):
        raise TypeError(
            f"{api}(progress=...) expects True, False or a dict of tqdm options "
            f"(e.g. {{'desc': 'fetching'}}), got {describe(progress)}."
        )
    try:
        import tqdm.std
    except ImportError:
        raise ImportError(
            f"{api}(progress=True) draws its bar with tqdm, which is not installed: "
            "pip install tqdm (or pip install 'loopbridge[progress]')."
        ) from None
    options: dict[str, Any] = {"total": total, "desc": api, "unit": "call", "leave": True}
    if isinstance(progress, Mapping):
        options.update(progress)
    bar_class: Any = tqdm.std.tqdm
    if _in_kernel():
        try:
            import ipywidgets  # noqa: F401  (tqdm's notebook bar is an ipywidget)
            import tqdm.notebook

            bar_class = tqdm.notebook.tqdm
        except ImportError:
            pass  # the text bar works in a notebook too
    return bar_class(**options)


def _run(
    api: str,
    items: Iterator[tuple[int, Any]],
    direct: bool,
    total: int | None,
    make: Callable[[Any], Any],
    *,
    concurrency: int,
    ordered: bool,
    return_exceptions: bool,
    progress: object,
    timeout: float | None,
    worker: WorkerLoop | None,
) -> list[Any]:
    __tracebackhide__ = True
    w = _worker_of(worker)
    if _get_running_loop() is not None:
        _warn_if_blocking_a_loop(w, f"{api}()", "asyncio.gather() with a Semaphore")
    state = _Progress(total)
    bar = _open_bar(progress, total, api)
    on_tick = None
    if bar is not None:

        def on_tick() -> None:
            if state.finished > bar.n:
                bar.update(state.finished - bar.n)

    if total is not None:
        concurrency = max(1, min(concurrency, total))
    coro = _run_all(
        items, direct, total is not None, make, concurrency, ordered, return_exceptions, state, api
    )
    try:
        return _block(w, coro, timeout, api, on_tick)  # type: ignore[no-any-return]
    except BridgeTimeoutError as exc:
        _add_note(exc, f"loopbridge: {api}() timed out: {state.summary()}.")
        raise
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # Ctrl-C: the core cancelled the runners before this
        _add_note(exc, f"loopbridge: {api}() was interrupted: {state.summary()}.")
        raise
    finally:
        if bar is not None:
            on_tick()
            bar.close()


def map_sync(
    fn: Callable[[T], Awaitable[R]],
    iterable: Iterable[T],
    *,
    concurrency: int = 16,
    ordered: bool = True,
    return_exceptions: bool = False,
    progress: bool | Mapping[str, Any] = False,
    timeout: float | None = None,
    worker: WorkerLoop | None = None,
) -> list[R]:
    """Call the async function *fn* on every item, at most *concurrency* at a time.

    Runs on the worker loop and returns a list of results, in input order
    (``ordered=True``) or in completion order. *iterable* is consumed lazily, so
    a generator of a million items is fine.

    * The first error cancels the calls still running, and is raised with a
      note saying how many finished; with ``return_exceptions=True`` errors are
      returned in the list instead.
    * Ctrl-C ("Interrupt kernel") and ``timeout`` cancel everything still
      running and say how many finished.
    * ``progress=True`` (or a dict of tqdm options) shows a tqdm bar: the
      widget in Jupyter when ipywidgets is installed, text elsewhere.

    Example::

        async def fetch(url):
            async with session().get(url) as r:
                return await r.text()

        pages = loopbridge.map_sync(fetch, urls, concurrency=16, progress=True)
    """
    __tracebackhide__ = True
    _check_options(worker, timeout, "map_sync")
    _check_concurrency(concurrency, "map_sync", allow_none=False)
    if not callable(fn) or inspect.isawaitable(fn):
        if inspect.iscoroutine(fn):
            fn.close()
        raise TypeError(
            f"map_sync() expects an async function first, got {describe(fn)}. "
            "Example: map_sync(fetch, urls) where `async def fetch(url): ...`."
        )
    if (
        isinstance(iterable, (str, bytes))
        or not isinstance(iterable, Iterable)
        or inspect.isawaitable(iterable)  # an asyncio.Future is iterable (its __await__)
    ):
        raise TypeError(
            f"map_sync() expects an iterable of items second, got {describe(iterable)}."
        )
    total: int | None
    try:
        total = len(iterable)  # type: ignore[arg-type]
    except TypeError:
        total = None
    if total == 0:
        return []
    if not _is_coroutine_function(fn) and inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"map_sync() got the async generator function {describe(fn)}; it needs a "
            "function whose call can be awaited (an `async def` without `yield`)."
        )
    try:
        return _run(
            "map_sync",
            enumerate(iterable),
            type(iterable) in _DIRECT,
            total,
            fn,
            concurrency=concurrency,
            ordered=ordered,
            return_exceptions=return_exceptions,
            progress=progress,
            timeout=timeout,
            worker=worker,
        )
    except BaseException as err:  # noqa: BLE001 - re-raised, with the user's frames only
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames


def gather_sync(
    *aws: Awaitable[Any],
    return_exceptions: bool = False,
    concurrency: int | None = None,
    progress: bool | Mapping[str, Any] = False,
    timeout: float | None = None,
    worker: WorkerLoop | None = None,
) -> list[Any]:
    """Run the awaitables on the worker loop concurrently and return their results in order.

    Like ``asyncio.gather``, but callable from sync code, and unlike it, the
    first error *cancels* the others (and says how many finished) unless
    ``return_exceptions=True``. ``concurrency`` bounds how many run at once
    (default: all); ``progress``, ``timeout`` and Ctrl-C behave as in
    :func:`map_sync`.

    Example::

        user, orders = loopbridge.gather_sync(get_user(1), get_orders(1), timeout=10)
    """
    __tracebackhide__ = True
    try:
        _check_options(worker, timeout, "gather_sync")
        _check_concurrency(concurrency, "gather_sync", allow_none=True)
        for i, aw in enumerate(aws):
            if not inspect.isawaitable(aw):
                hint = (
                    " Unpack it: gather_sync(*aws)."
                    if isinstance(aw, (list, tuple, set)) or inspect.isgenerator(aw)
                    else ""
                )
                raise TypeError(
                    f"gather_sync() expects awaitables (coroutines, tasks, futures), but "
                    f"argument {i} is {describe(aw)}.{hint}"
                )
            if asyncio.isfuture(aw):
                # a future of another loop can never be awaited on the worker: say so
                # now, not as a RuntimeError from inside the gather
                as_coroutine(aw, _worker_of(worker).loop, f"gather_sync() argument {i}").close()
    except BaseException:
        for aw in aws:  # never started: close them so that Python does not warn
            if inspect.iscoroutine(aw):
                aw.close()
        raise
    if not aws:
        return []
    try:
        return _run(
            "gather_sync",
            enumerate(aws),
            True,
            len(aws),
            _identity,
            concurrency=concurrency or len(aws),
            ordered=True,
            return_exceptions=return_exceptions,
            progress=progress,
            timeout=timeout,
            worker=worker,
        )
    except BaseException as err:  # noqa: BLE001 - re-raised, with the user's frames only
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    finally:
        # After an error, a timeout or Ctrl-C some were never started: close
        # them, as asyncio.gather's cancellation would have.
        for aw in aws:
            if inspect.iscoroutine(aw) and inspect.getcoroutinestate(aw) == "CORO_CREATED":
                aw.close()


def _identity(aw: T) -> T:
    return aw
