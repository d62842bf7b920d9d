"""Sync faces for async APIs: ``syncify`` for functions and classes, ``sync_face`` for objects.

Everything here is a thin layer over :meth:`WorkerLoop._call_blocking`: a sync
call hands one coroutine to the worker loop and waits, so cancellation,
timeouts, context variables, deadlock detection and cross-loop notes are the
core's. What this module adds is the translation of an async object's *shape*:
methods, properties, async context managers, async iterators and the objects
methods return.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import gc
import inspect
import logging
import threading
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from . import _bridge
from ._awaitables import _is_coroutine_function, describe
from ._host import END, Host
from ._worker import (
    _CLOSED,
    _CLOSING,
    WorkerLoop,
    _get_running_loop,
    _strip_wrappers,
    _warn_if_blocking_a_loop,
)

__all__ = ["SyncFace", "sync_face", "syncify"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("loopbridge")

# Results of these types are returned as they are, without looking further.
_PLAIN: frozenset[type] = frozenset(
    {type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set}
)
_END = object()


# -- shared plumbing ----------------------------------------------------------------


def _worker_of(worker: WorkerLoop | None) -> WorkerLoop:
    return worker if worker is not None else _bridge.default_worker()


def _check_options(worker: object, timeout: object, api: str) -> None:
    if worker is not None and not isinstance(worker, WorkerLoop):
        raise TypeError(
            f"{api}(worker=...) expects a loopbridge.WorkerLoop or None (the default "
            f"worker), got {describe(worker)}."
        )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(
            f"{api}(timeout=...) expects a positive number of seconds or None, got {timeout!r}."
        )


def _block(
    worker: WorkerLoop,
    awaitable: object,
    timeout: float | None,
    api: str,
    on_tick: Callable[[], None] | None = None,
) -> Any:
    __tracebackhide__ = True
    call = worker._call_blocking(awaitable, timeout, api, on_tick)
    if call.exc is not None:
        exc, call.exc = call.exc, None
        raise exc
    return call.value


def _unwrap(value: object) -> object:
    if isinstance(value, SyncFace):
        return value._lb_resolved_aio()
    return value


def _unwrap_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    for a in args:
        if isinstance(a, SyncFace):
            args = tuple(_unwrap(x) for x in args)
            break
    for k, v in kwargs.items():
        if isinstance(v, SyncFace):
            kwargs[k] = _unwrap(v)
    return args


async def _call_on_loop(fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """Call a plain (not ``async def``) callable on the loop and await what it returns.

    A handle (see :func:`_is_dual`) is returned as it is: how it is used
    decides whether it is awaited, entered or iterated.
    """
    result = fn(*args, **kw)
    if inspect.isawaitable(result) and not _is_dual(type(result)):
        result = await result
    return result


async def _anext(ait: Any) -> Any:
    try:
        return await ait.__anext__()
    except StopAsyncIteration:
        return END


async def _asend(agen: Any, value: Any) -> Any:
    try:
        return await agen.asend(value)
    except StopAsyncIteration:
        return END


async def _athrow(agen: Any, exc: BaseException) -> Any:
    try:
        return await agen.athrow(exc)
    except StopAsyncIteration:
        return END


async def _aclose(ait: Any) -> None:
    await ait.aclose()


# -- what an object looks like ----------------------------------------------------------


def _is_dual(tp: type) -> bool:
    """A *handle*: awaitable, and also an async context manager or iterable, but no coroutine.

    ``pool.acquire()`` and ``conn.cursor(q)`` (asyncpg) are handles: how they are
    used decides what happens, so their face waits to see. Coroutine-like objects
    (``session.get(url)`` in aiohttp, ``db.execute(sql)`` in aiosqlite) stand for
    work that must run: they are awaited at once, and ``with``/``for`` then apply
    to their result, whose own ``__aenter__``/``__aexit__`` do the cleanup.
    """
    dual = _dual_cache.get(tp)
    if dual is None:
        dual = _dual_cache[tp] = (
            hasattr(tp, "__await__")
            and (hasattr(tp, "__aenter__") or hasattr(tp, "__aiter__"))
            and not issubclass(tp, collections.abc.Coroutine)
        )
    return dual


def _looks_async(tp: type) -> bool:
    """Does an object of this type need a sync face (rather than being returned as is)?"""
    verdict = _async_cache.get(tp)
    if verdict is None:
        verdict = _async_cache[tp] = _has_async_shape(tp)
    return verdict


# Per-type verdicts. Types are few and long-lived; these stay small.
_dual_cache: dict[type, bool] = {}
_async_cache: dict[type, bool] = {}


def _has_async_shape(tp: type) -> bool:
    if tp in _PLAIN or issubclass(tp, BaseException):
        return False
    if hasattr(tp, "__aenter__") or hasattr(tp, "__aiter__") or hasattr(tp, "__await__"):
        return True
    for name in dir(tp):
        if name.startswith("__"):
            continue
        try:
            attr = inspect.getattr_static(tp, name)
        except AttributeError:
            continue
        fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return True
    return False


_METHOD = 1  # async def / async generator function on the class: call it, run on the loop
_PLAIN_METHOD = 2  # another function on the class: run the call itself on the loop
_PROPERTY = 3  # a property: read it here, await it there if it gives an awaitable
_OTHER = 4  # anything else: read it here


def _kind(tp: type, name: str) -> int:
    kind = _kind_cache.get((tp, name))
    if kind is None:
        kind = _kind_cache[(tp, name)] = _classify(tp, name)
    return kind


_kind_cache: dict[tuple[type, str], int] = {}


def _classify(tp: type, name: str) -> int:
    try:
        attr = inspect.getattr_static(tp, name)
    except AttributeError:
        return _OTHER
    if isinstance(attr, (classmethod, staticmethod)):
        attr = attr.__func__
    if isinstance(attr, (property, functools.cached_property)):
        return _PROPERTY
    if _is_coroutine_function(attr) or inspect.isasyncgenfunction(attr):
        return _METHOD
    if inspect.isfunction(attr) or inspect.ismethoddescriptor(attr) or inspect.isbuiltin(attr):
        return _PLAIN_METHOD
    return _OTHER


def _wrap(value: Any, worker: WorkerLoop | None, timeout: float | None) -> Any:
    """Give *value* a sync face if it has an async shape; return it unchanged otherwise."""
    tp = type(value)
    if tp in _PLAIN or isinstance(value, SyncFace):
        return value
    if _is_dual(tp):
        return _Pending(value, worker, timeout)
    if inspect.isasyncgen(value) or _looks_async(tp):
        return _face_class(tp)(value, worker=worker, timeout=timeout)
    return value


# -- SyncFace ---------------------------------------------------------------------


class SyncFace(Generic[T]):
    """A sync view of an async object; made by :func:`sync_face` or :func:`syncify`.

    * ``face.method(...)``: ``async def`` methods run on the worker loop and
      return their result; other methods run there too (async clients are not
      thread-safe), and an awaitable they return is awaited.
    * ``face.prop``: a property that gives an awaitable is awaited.
    * ``with face:`` / ``for x in face:`` when the object is an async context
      manager / async iterable. Iterators are lazy and ``aclose()`` the async
      iterator on ``break``, on an error and on garbage collection.
    * Objects that methods return get a face too when they have async methods
      (``pool.acquire()`` gives a connection face); plain data passes through.
    * ``face.aio`` is the original object, for async code.

    Example::

        db = loopbridge.sync_face(pool)
        with db.acquire() as conn:
            rows = conn.fetch("select 1")
    """

    __slots__ = ("__dict__", "__weakref__", "_lb_aio", "_lb_hosts", "_lb_timeout", "_lb_worker")

    _lb_aio: T
    _lb_worker: WorkerLoop | None
    _lb_timeout: float | None
    _lb_hosts: dict[int, list[Host]]  # per thread: the hosts of `with` blocks now open

    def __init__(
        self, aio: T, *, worker: WorkerLoop | None = None, timeout: float | None = None
    ) -> None:
        object.__setattr__(self, "_lb_aio", aio)
        object.__setattr__(self, "_lb_worker", worker)
        object.__setattr__(self, "_lb_timeout", timeout)
        object.__setattr__(self, "_lb_hosts", {})

    def __eq__(self, other: object) -> bool:
        """Faces of the same async object are equal (and hash alike).

        Identity, not the objects' own ``==``: comparing faces runs none of their code,
        and works for objects that are not hashable.
        """
        if not isinstance(other, SyncFace):
            return NotImplemented
        return self._lb_aio is other._lb_aio

    def __hash__(self) -> int:
        return hash(id(self._lb_aio))

    @property
    def aio(self) -> T:
        """The async object behind this face, for use in async code."""
        return self._lb_resolved_aio()  # type: ignore[return-value]

    def _lb_resolved_aio(self) -> object:
        return self._lb_aio

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_lb_"):
            raise AttributeError(name)
        aio = self._lb_aio
        kind = _kind(type(aio), name)
        if kind == _METHOD:
            method = _sync_method(self, name, getattr(aio, name))
            object.__setattr__(self, name, method)  # the next lookup skips __getattr__
            return method
        value = getattr(aio, name)
        if kind == _PLAIN_METHOD:
            method = _sync_method(self, name, value, plain=True)
            object.__setattr__(self, name, method)
            return method
        worker, timeout = self._lb_worker, self._lb_timeout
        if (kind == _PROPERTY and inspect.isawaitable(value)) or (
            kind == _OTHER and inspect.iscoroutine(value)  # an async __getattr__
        ):
            w = _worker_of(worker)
            _warn_if_blocking_a_loop(w, f"reading {name!r}", f"`await face.aio.{name}`")
            try:
                value = _block(w, value, timeout, name)
            except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
                raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        elif kind == _OTHER and callable(value):
            # Found only at run time: set on the instance, or forwarded by a proxy's
            # own __getattr__ (asyncpg's pooled connections). Not cached.
            if _is_coroutine_function(value) or inspect.isasyncgenfunction(value):
                return _sync_method(self, name, value)
            if inspect.ismethod(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
                return _sync_method(self, name, value, plain=True)
        return _wrap(value, worker, timeout)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._lb_aio, name, _unwrap(value))

    def __delattr__(self, name: str) -> None:
        delattr(self._lb_aio, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._lb_aio)) | {"aio"})

    def __repr__(self) -> str:
        return f"<sync face of {self._lb_aio!r}>"


def _sync_method(
    face: SyncFace[Any], name: str, method: Callable[..., Any], *, plain: bool = False
) -> Callable[..., Any]:
    """The sync version of *method*; *plain*: not ``async def``, so its call runs on the loop."""
    worker, timeout = face._lb_worker, face._lb_timeout
    aio, face_ref = face._lb_aio, weakref.ref(face)  # weak: the face caches this function
    asyncgen = inspect.isasyncgenfunction(method)
    instead = f"`face.aio.{name}(...)`" if plain else f"`await face.aio.{name}(...)`"

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        w = _worker_of(worker)
        if _get_running_loop() is not None:
            _warn_if_blocking_a_loop(w, f"{name}()", instead)
        if args or kwargs:
            args = _unwrap_args(args, kwargs)
        if asyncgen:
            return _iterate(method(*args, **kwargs), worker, timeout, name)
        aw = _call_on_loop(method, args, kwargs) if plain else method(*args, **kwargs)
        result = w._call_blocking(aw, timeout, name)  # _block, inlined: the hot path
        if result.exc is not None:
            exc, result.exc = result.exc, None
            raise exc
        value = result.value
        if type(value) in _PLAIN:
            return value
        if value is aio:  # `return self`: the very same face
            same = face_ref()
            if same is not None:
                return same
        return _wrap(value, worker, timeout)

    return call


def _iterate(
    aiterable: Any, worker: WorkerLoop | None, timeout: float | None, name: str
) -> Iterator[Any]:
    """A lazy sync iterator over an async iterable, each step run on the worker loop.

    Leaving early (``break``, an exception, ``close()``, garbage collection)
    closes the async iterator with ``aclose()`` on its loop.
    """
    try:
        ait = aiterable.__aiter__()
    except AttributeError:
        raise TypeError(
            f"{describe(aiterable)} is not an async iterable (it has no __aiter__), so its "
            "sync face cannot be iterated with `for`."
        ) from None
    if inspect.isawaitable(ait) and not hasattr(ait, "__anext__"):
        raise TypeError(
            f"{describe(aiterable)}.__aiter__() returned an awaitable, not an async iterator: "
            "__aiter__ must be a plain method."
        )
    return _iterator(ait, worker, timeout, name)


def _iterator(
    ait: Any, worker: WorkerLoop | None, timeout: float | None, name: str
) -> Generator[Any, Any, None]:
    """A sync generator over an async iterator, every step run by one host task.

    ``next``/``send``/``throw``/``close`` map to ``__anext__``/``asend``/``athrow``/
    ``aclose`` (``yield from`` delegation then works as for any generator).
    Leaving early (``break``, an exception, ``close()``, garbage collection)
    closes the async iterator with ``aclose()``, in its host task.
    """
    __tracebackhide__ = True
    _watch_gc()
    w = _worker_of(worker)
    agen = hasattr(ait, "asend") and hasattr(ait, "athrow")
    aclose = getattr(ait, "aclose", None)
    host = Host(w, timeout, name, _closer(ait) if aclose is not None else None, ending=True)
    try:
        item = host.step(_anext, ait, api=f"{name} (next item)")
        while item is not END:
            try:
                sent = yield _wrap(item, worker, timeout)
            except GeneratorExit:
                raise  # close(): the finally below closes the async iterator
            except BaseException as exc:
                if not agen:
                    raise  # only an async generator can take a throw()
                item = host.step(_athrow, ait, exc, api=f"{name} (throw)")
                continue
            if sent is None:
                item = host.step(_anext, ait, api=f"{name} (next item)")
            elif agen:
                item = host.step(_asend, ait, sent, api=f"{name} (send)")
            else:
                raise TypeError(
                    f"cannot send {sent!r} to {describe(ait)}: it is not an async generator "
                    "(it has no asend()), so only next() (send(None)) can step it."
                )
    except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    finally:
        if host.started and not host.finished and aclose is not None:
            on_worker = threading.get_ident() == w._thread_id
            if _in_gc() or on_worker or w._state in (_CLOSING, _CLOSED):
                # Cannot block here (a GC pass, the worker's own thread): queue it.
                host.close_soon(functools.partial(_aclose, ait))
            else:
                try:
                    host.step(
                        _aclose, ait, final=True, api=f"{name} (aclose)", limit=w.cancel_timeout
                    )
                except Exception:
                    log.exception("error closing the async iterator of %s", name)
        elif host.started and not host.finished:
            host.close_soon(_nothing)  # a plain async iterator: just end its host


def _closer(ait: Any) -> Callable[[BaseException], Awaitable[Any]]:
    async def close(_cancelled: BaseException) -> None:
        await ait.aclose()

    return close


async def _nothing() -> None:
    return None


# The cyclic GC runs finalisers in the thread that triggered it; a gc callback
# tells the face's cleanup that it runs inside a collection.
_gc_state = threading.local()
_gc_watched = False


def _gc_phase(phase: str, info: dict[str, int]) -> None:
    _gc_state.collecting = phase == "start"


def _watch_gc() -> None:
    global _gc_watched
    if not _gc_watched:
        _gc_watched = True
        gc.callbacks.append(_gc_phase)


def _in_gc() -> bool:
    return getattr(_gc_state, "collecting", False)


def _face_class(tp: type) -> type[SyncFace[Any]]:
    """The face class for objects of type *tp*: SyncFace plus the dunders *tp* supports."""
    cls = _face_classes.get(tp)
    if cls is None:
        ns: dict[str, Any] = {"__slots__": ()}
        if hasattr(tp, "__aenter__"):
            ns["__enter__"] = _enter
            ns["__exit__"] = _exit
        if hasattr(tp, "__aiter__"):
            ns["__iter__"] = _iter
        for dunder in ("__len__", "__contains__", "__getitem__", "__bool__"):
            if hasattr(tp, dunder):
                ns[dunder] = _passthrough(dunder)
        if _callable_type(tp):
            ns["__call__"] = _call
        cls = type(f"SyncFace[{tp.__qualname__}]", (SyncFace,), ns)
        cls.__module__ = __name__
        _face_classes[tp] = cls
    return cls


_face_classes: dict[type, type[SyncFace[Any]]] = {}


def _callable_type(tp: type) -> bool:
    return "__call__" in dir(tp) and not issubclass(tp, type)


def _aenter(self: SyncFace[Any]) -> Any:
    """Enter the async context manager in a host task of its own, which stays until exit."""
    __tracebackhide__ = True
    aio: Any = self._lb_aio
    w = _worker_of(self._lb_worker)
    _warn_if_blocking_a_loop(w, "entering `with`", "`async with face.aio`")
    kind = type(aio).__name__
    host = Host(w, self._lb_timeout, f"`with` {kind}", _exiter(aio), ending=False)
    value = host.step(_call_method, aio.__aenter__, (), api=f"{kind}.__aenter__")
    self._lb_hosts.setdefault(threading.get_ident(), []).append(host)
    return value


def _exiter(aio: Any) -> Callable[[BaseException], Awaitable[Any]]:
    async def exit_cancelled(cancelled: BaseException) -> None:
        await aio.__aexit__(type(cancelled), cancelled, cancelled.__traceback__)

    return exit_cancelled


async def _call_method(method: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> Any:
    return await method(*args)


def _enter(self: SyncFace[Any]) -> Any:
    __tracebackhide__ = True
    try:
        value = _aenter(self)
    except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    # `async with x as y` usually gives x itself: keep the same face then.
    if value is self._lb_aio:
        return self
    return _wrap_resource(value, self._lb_worker, self._lb_timeout)


def _exit(
    self: SyncFace[Any],
    et: type[BaseException] | None,
    ev: BaseException | None,
    tb: TracebackType | None,
) -> bool:
    """Exit in the task that entered; the host ends with it."""
    __tracebackhide__ = True
    aio: Any = self._lb_aio
    kind = type(aio).__name__
    open_here = self._lb_hosts.get(threading.get_ident())
    try:
        if open_here:
            host = open_here.pop()
            return bool(
                host.step(
                    _call_method, aio.__aexit__, (et, ev, tb), final=True, api=f"{kind}.__aexit__"
                )
            )
        # __exit__ without a matching __enter__ in this thread: a plain call.
        w = _worker_of(self._lb_worker)
        return bool(_block(w, aio.__aexit__(et, ev, tb), self._lb_timeout, f"{kind}.__aexit__"))
    except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames


def _iter(self: SyncFace[Any]) -> Iterator[Any]:
    return _iterate(self._lb_aio, self._lb_worker, self._lb_timeout, type(self._lb_aio).__name__)


def _call(self: SyncFace[Any], *args: Any, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    aio = self._lb_aio
    w = _worker_of(self._lb_worker)
    args = _unwrap_args(args, kwargs)
    try:
        if _is_coroutine_function(aio):
            value = _block(w, aio(*args, **kwargs), self._lb_timeout, type(aio).__name__)
        else:
            aw = _call_on_loop(aio, args, kwargs)
            value = _block(w, aw, self._lb_timeout, type(aio).__name__)
    except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
        raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    return _wrap(value, self._lb_worker, self._lb_timeout)


def _passthrough(dunder: str) -> Callable[..., Any]:
    def method(self: SyncFace[Any], *args: Any) -> Any:
        return getattr(self._lb_aio, dunder)(*args)

    method.__name__ = dunder
    return method


class _Pending(SyncFace[Any]):
    """The face of a handle: awaitable *and* an async context manager or iterable.

    ``pool.acquire()`` and ``conn.cursor(q)`` give such objects. Used in
    ``with``, it is entered; in ``for``, iterated; used any other way (an
    attribute, passed to a method), it is awaited once and stands for the result.
    Dropped unused, nothing happens, as with the async API.
    """

    __slots__ = ("_lb_result",)

    def __init__(self, aio: Any, worker: WorkerLoop | None, timeout: float | None) -> None:
        super().__init__(aio, worker=worker, timeout=timeout)
        object.__setattr__(self, "_lb_result", _END)

    def _lb_await(self) -> Any:
        result = self._lb_result
        if result is _END:
            aio = self._lb_aio
            w = _worker_of(self._lb_worker)
            result = _block(w, _await(aio), self._lb_timeout, type(aio).__name__)
            # a plain face even if it is a handle again: a redis pipeline awaited
            # or entered gives itself, and resolving it again would never end
            result = _wrap_resource(result, self._lb_worker, self._lb_timeout)
            object.__setattr__(self, "_lb_result", result)
        return result

    def _lb_resolved_aio(self) -> object:
        return _unwrap(self._lb_await())

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if name.startswith("_lb_"):
            raise AttributeError(name)
        try:
            resolved = self._lb_await()
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        return getattr(resolved, name)

    def __enter__(self) -> Any:
        __tracebackhide__ = True
        aio = self._lb_aio
        if not hasattr(aio, "__aenter__"):
            raise TypeError(
                f"{describe(aio)} is not an async context manager; use it without `with`."
            )
        try:
            value = _aenter(self)
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        # a plain face even if it gives itself (see _lb_await)
        return _wrap_resource(value, self._lb_worker, self._lb_timeout)

    __exit__ = _exit

    def __iter__(self) -> Iterator[Any]:
        aio = self._lb_aio
        if not hasattr(aio, "__aiter__"):
            return iter(self._lb_await())
        return _iterate(aio, self._lb_worker, self._lb_timeout, type(aio).__name__)

    def __repr__(self) -> str:
        state = "not awaited yet" if self._lb_result is _END else f"= {self._lb_result!r}"
        return f"<sync face of {self._lb_aio!r} ({state})>"


def _wrap_resource(value: Any, worker: WorkerLoop | None, timeout: float | None) -> Any:
    """What ``async with`` or a handle gives is a resource to use: face it, unless plain data.

    Some resources hide their async methods from inspection (asyncpg's pooled
    connection forwards through wrappers), so they are faced by where they came from.
    """
    tp = type(value)
    if tp in _PLAIN or isinstance(value, SyncFace):
        return value
    return _face_class(tp)(value, worker=worker, timeout=timeout)


async def _await(aw: Awaitable[T]) -> T:
    return await aw


# -- public entry points -------------------------------------------------------------


@overload
def sync_face(
    obj: Coroutine[Any, Any, T], *, worker: WorkerLoop | None = ..., timeout: float | None = ...
) -> SyncFace[T]: ...
@overload
def sync_face(
    obj: T, *, worker: WorkerLoop | None = ..., timeout: float | None = ...
) -> SyncFace[T]: ...
def sync_face(obj: Any, *, worker: WorkerLoop | None = None, timeout: float | None = None) -> Any:
    """Return a sync face of the async object *obj*.

    Every async method becomes a blocking method that runs on the worker loop;
    async context managers work with ``with``, async iterators and generators
    with ``for`` (lazily, closed on early exit); objects that methods return
    get a face too when they have async methods; plain attributes and data pass
    through untouched; ``face.aio`` is *obj* itself. If *obj* is a coroutine or
    another awaitable (``aiosqlite.connect(path)``), it is awaited on the worker
    first and the result gets the face.

    Objects that bind to the loop they are made on (an asyncpg pool, an aiohttp
    session) must be made on the worker loop: make them in a coroutine passed to
    ``sync_face``, or with :func:`syncify` (``syncify(asyncpg.create_pool)(dsn)``).

    Args:
        worker: the :class:`WorkerLoop` to run on (default: the default worker).
        timeout: seconds allowed for each call through the face (default: none).

    Example::

        async def connect():
            return await asyncpg.create_pool(DSN)

        db = loopbridge.sync_face(connect())
        with db.acquire() as conn, conn.transaction():
            conn.execute("insert into t values (1)")
        print(db.fetchval("select count(*) from t"))
    """
    _check_options(worker, timeout, "sync_face")
    if isinstance(obj, SyncFace):
        return obj
    if isinstance(obj, type):
        raise TypeError(
            f"sync_face() got the class {obj.__qualname__}; it needs an instance. "
            f"Use syncify({obj.__qualname__}) for a class whose instances are sync faces."
        )
    if _is_coroutine_function(obj) or (callable(obj) and inspect.isasyncgenfunction(obj)):
        raise TypeError(
            f"sync_face() got the async function {describe(obj)}; it needs an object. "
            "Use syncify() to make a sync function from an async one."
        )
    if type(obj) in _PLAIN:
        raise TypeError(
            f"sync_face() got {describe(obj)}, a plain value with no async methods to "
            "face. It needs an async object (a client, pool, session or connection), or "
            "a coroutine that returns one, e.g. sync_face(make_client())."
        )
    if inspect.isawaitable(obj):
        w = _worker_of(worker)
        try:
            obj = _block(w, obj, timeout, "sync_face")
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
    return _face_class(type(obj))(obj, worker=worker, timeout=timeout)


@overload
def syncify(
    fn: type[T], /, *, worker: WorkerLoop | None = ..., timeout: float | None = ...
) -> type[SyncFace[T]]: ...
@overload
def syncify(
    fn: Callable[P, Coroutine[Any, Any, R]],
    /,
    *,
    worker: WorkerLoop | None = ...,
    timeout: float | None = ...,
) -> Callable[P, R]: ...
@overload
def syncify(
    fn: Callable[P, AsyncIterator[R]],
    /,
    *,
    worker: WorkerLoop | None = ...,
    timeout: float | None = ...,
) -> Callable[P, Iterator[R]]: ...
@overload
def syncify(
    fn: Callable[P, contextlib.AbstractAsyncContextManager[R]],
    /,
    *,
    worker: WorkerLoop | None = ...,
    timeout: float | None = ...,
) -> Callable[P, contextlib.AbstractContextManager[R]]: ...
@overload
def syncify(
    fn: Callable[P, Awaitable[R]],
    /,
    *,
    worker: WorkerLoop | None = ...,
    timeout: float | None = ...,
) -> Callable[P, R]: ...
@overload
def syncify(
    fn: None = ..., /, *, worker: WorkerLoop | None = ..., timeout: float | None = ...
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, R]]: ...
def syncify(
    fn: Any = None, /, *, worker: WorkerLoop | None = None, timeout: float | None = None
) -> Any:
    """Make a sync function (or class) from an async one.

    * On an ``async def`` function: a plain function with the same name,
      docstring, signature and static types, that runs the coroutine on the
      worker loop and returns its result. ``f.aio`` / ``f.__wrapped__`` is the
      async original.
    * On an async generator function: a function returning a lazy iterator.
    * On a function that returns an awaitable (``asyncpg.create_pool``): the
      call itself runs on the worker loop, so what it makes binds there.
    * On methods, ``classmethod`` and ``staticmethod`` (either order).
    * On a class: a class whose constructor builds the async object on the worker
      loop and whose instances are :class:`SyncFace` of it.

    Called on the worker loop's thread it raises :class:`DeadlockError`; called
    from a coroutine running on another loop it warns (:class:`LoopBridgeWarning`)
    that it blocks that loop, and names the async original to await instead.

    Example::

        @loopbridge.syncify
        async def load_table(url: str) -> list[dict]:
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                return await r.json()

        rows = load_table("http://localhost:8080/rows")   # sync, typed list[dict]
    """
    _check_options(worker, timeout, "syncify")
    if fn is None:
        return functools.partial(syncify, worker=worker, timeout=timeout)
    if isinstance(fn, (classmethod, staticmethod)):
        return type(fn)(syncify(fn.__func__, worker=worker, timeout=timeout))
    if isinstance(fn, type):
        return _syncify_class(fn, worker, timeout)
    if getattr(fn, "__loopbridge_sync__", False):
        return fn
    if inspect.iscoroutine(fn) or inspect.isawaitable(fn):
        raise TypeError(
            f"syncify() got an awaitable ({describe(fn)}), not a function. To run it "
            "once, use loopbridge.run_sync(...); syncify() wraps the function itself."
        )
    if not callable(fn):
        raise TypeError(
            f"syncify() expects an async function, an async method or a class, got "
            f"{describe(fn)}. Use it as a decorator: `@syncify` above `async def ...`."
        )
    return _syncify_function(fn, worker, timeout)


def _syncify_function(
    fn: Callable[..., Any], worker: WorkerLoop | None, timeout: float | None
) -> Callable[..., Any]:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    instead = f"`await {name}.aio(...)`"
    if inspect.isasyncgenfunction(fn):

        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            w = _worker_of(worker)
            if _get_running_loop() is not None:
                _warn_if_blocking_a_loop(w, f"{name}()", instead)
            return _iterate(fn(*args, **kwargs), worker, timeout, name)

        wrapper = functools.update_wrapper(gen_wrapper, fn)
    elif _is_coroutine_function(fn):

        def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            w = _worker_of(worker)
            if _get_running_loop() is not None:
                _warn_if_blocking_a_loop(w, f"{name}()", instead)
            call = w._call_blocking(fn(*args, **kwargs), timeout, name)
            if call.exc is not None:
                exc, call.exc = call.exc, None
                raise exc
            return call.value

        wrapper = functools.update_wrapper(coro_wrapper, fn)
    else:

        def call_wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            w = _worker_of(worker)
            if _get_running_loop() is not None:
                _warn_if_blocking_a_loop(w, f"{name}()", instead)
            call = w._call_blocking(_call_factory(fn, args, kwargs), timeout, name)
            if call.exc is not None:
                exc, call.exc = call.exc, None
                raise exc
            awaited, value = call.value
            if awaited:
                return value
            # Not awaitable: an async context manager or iterator factory
            # (@asynccontextmanager), or a mistake.
            if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
                return _face_class(type(value))(value, worker=worker, timeout=timeout)
            if hasattr(value, "__aiter__"):
                return _iterate(value, worker, timeout, name)
            raise TypeError(
                f"syncify({name}): {name}() returned {describe(value)}, which is not an "
                "awaitable, an async context manager or an async iterator, so there is "
                f"nothing to run on the worker loop: call it directly, `{name}(...)`."
            )

        wrapper = functools.update_wrapper(call_wrapper, fn)
    if inspect.ismethod(fn):  # a bound method stays one: its __self__ and __func__ are kept
        wrapper.__self__ = fn.__self__  # type: ignore[attr-defined]
        wrapper.__func__ = fn.__func__  # type: ignore[attr-defined]
    wrapper.aio = fn  # type: ignore[attr-defined]
    wrapper.__loopbridge_sync__ = True  # type: ignore[attr-defined]
    return wrapper


async def _call_factory(
    fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> tuple[bool, Any]:
    """Call *fn* on the loop (what it makes binds there); await what it returns if that
    is awaitable. Returns (awaited, value)."""
    result = fn(*args, **kw)
    if inspect.isawaitable(result):  # a pool or a request handle: awaited, as before
        return True, await result
    return False, result


class _SyncClass(type):
    """The metaclass of ``syncify(Cls)``: the sync class answers for the async one.

    ``isinstance`` and ``issubclass`` follow the async classes (any face of a
    ``Cls`` instance is an instance of ``syncify(Cls)``; ``syncify(Sub)`` is a
    subclass of ``syncify(Base)``), and class-level names the face class does not
    define are read from ``Cls``: class attributes, classmethods and staticmethods
    (async ones syncified, their results faced), and instance methods read on the
    class (``SClient.fetch(client, ...)``), with their docs and signatures.
    """

    __wrapped__: type
    __loopbridge_options__: tuple[WorkerLoop | None, float | None]

    def __instancecheck__(cls, obj: Any) -> bool:
        if type.__instancecheck__(cls, obj):
            return True
        if isinstance(obj, SyncFace):
            return isinstance(obj._lb_aio, cls.__wrapped__)
        return False

    def __subclasscheck__(cls, sub: type) -> bool:
        if type.__subclasscheck__(cls, sub):
            return True
        wrapped = getattr(sub, "__wrapped__", None) if isinstance(sub, _SyncClass) else None
        return isinstance(wrapped, type) and issubclass(wrapped, cls.__wrapped__)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        wrapped = type.__getattribute__(cls, "__wrapped__")
        try:
            attr = inspect.getattr_static(wrapped, name)
        except AttributeError:
            raise AttributeError(
                f"type object {cls.__name__!r} (a sync face of {wrapped.__qualname__}) has "
                f"no attribute {name!r}"
            ) from None
        worker, timeout = type.__getattribute__(cls, "__loopbridge_options__")
        if isinstance(attr, (classmethod, staticmethod)):
            fn = getattr(wrapped, name)
            if _is_coroutine_function(attr.__func__) or inspect.isasyncgenfunction(attr.__func__):
                return _class_level(fn, worker, timeout)
            return fn
        if inspect.isfunction(attr):
            return _unbound(name, attr)
        return getattr(wrapped, name)

    def __dir__(cls) -> list[str]:
        return sorted(set(type.__dir__(cls)) | set(dir(cls.__wrapped__)))


def _class_level(
    fn: Callable[..., Any], worker: WorkerLoop | None, timeout: float | None
) -> Callable[..., Any]:
    """An async classmethod/staticmethod read on a sync class: syncified, result faced."""
    sync = _syncify_function(fn, worker, timeout)

    @functools.wraps(fn)
    def class_call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        try:
            value = sync(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        return value if type(value) in _PLAIN else _wrap(value, worker, timeout)

    class_call.aio = fn  # type: ignore[attr-defined]
    return class_call


def _unbound(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """An instance method read on the sync class: ``SClient.fetch(face, ...)``."""

    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if not isinstance(self, SyncFace):
            raise TypeError(
                f"{fn.__qualname__}() read on the sync class needs a face as its first "
                f"argument (an instance of the sync class), got {describe(self)}."
            )
        try:
            return getattr(self, name)(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames

    return method


def _syncify_class(
    cls: type[T], worker: WorkerLoop | None, timeout: float | None
) -> type[SyncFace[T]]:
    key = (cls, worker, timeout)
    made = _sync_classes.get(key)
    if made is not None:
        return made
    base = _face_class(cls)

    def __init__(self: SyncFace[T], *args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        w = _worker_of(worker)
        args = _unwrap_args(args, kwargs)
        try:
            aio = _block(w, _construct(cls, args, kwargs), timeout, cls.__qualname__)
        except BaseException as err:  # noqa: BLE001 - re-raised with one loopbridge frame
            raise _strip_wrappers(err)  # noqa: B904 - the same exception, fewer frames
        SyncFace.__init__(self, aio, worker=worker, timeout=timeout)

    try:
        signature: inspect.Signature | None = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    __init__.__signature__ = signature  # type: ignore[attr-defined]

    def __class_getitem__(sync_cls: type, params: Any) -> types.GenericAlias:
        # `syncify(Box)[int]`: an alias that constructs the sync class, as Box[int] does Box.
        return types.GenericAlias(sync_cls, params)

    ns = {
        "__slots__": (),
        "__init__": __init__,
        "__doc__": cls.__doc__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__wrapped__": cls,
        "__signature__": signature,
        "__loopbridge_sync__": True,
        "__loopbridge_options__": (worker, timeout),
        "__class_getitem__": classmethod(__class_getitem__),
    }
    made = cast("type[SyncFace[T]]", _SyncClass(cls.__name__, (base,), ns))
    _sync_classes[key] = made
    return made


# (class, worker, timeout) -> its sync class: syncify(Cls) is syncify(Cls).
_sync_classes: dict[tuple[type, WorkerLoop | None, float | None], type[SyncFace[Any]]] = {}


async def _construct(cls: type[T], args: tuple[Any, ...], kw: dict[str, Any]) -> T:
    return cls(*args, **kw)
