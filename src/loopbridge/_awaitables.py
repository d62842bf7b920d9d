"""Turn what a caller passed into a coroutine the worker loop can run, or say why not."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import reprlib
import threading
import types
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def describe(obj: object) -> str:
    """A short ``type: repr`` for error messages."""
    return f"{type(obj).__qualname__}: {_short.repr(obj)}"


async def _await_it(aw: Awaitable[T]) -> T:
    return await aw


def _loop_thread_name(loop: asyncio.AbstractEventLoop) -> str:
    ident = getattr(loop, "_thread_id", None)  # set while the loop runs (all stdlib loops)
    for t in threading.enumerate():
        if t.ident == ident:
            return t.name
    return "no thread (not running)"


def as_coroutine(
    obj: object, loop: asyncio.AbstractEventLoop, api: str
) -> Coroutine[Any, Any, Any]:
    """Return a coroutine that awaits *obj* on *loop*, or raise a teaching error.

    Coroutines pass through unchanged (the fast path). Futures must belong to
    *loop*; other awaitables (objects with ``__await__``) are wrapped.
    """
    if type(obj) is types.CoroutineType:
        return obj
    if inspect.isgenerator(obj):  # 3.10/3.11 asyncio.iscoroutine() accepts these
        raise TypeError(
            f"{api}() got a generator ({describe(obj)}), which is not awaitable. "
            "Define the function with `async def` and pass the coroutine it returns."
        )
    if asyncio.iscoroutine(obj):  # coroutines of other types (Cython, compiled)
        return obj
    if asyncio.isfuture(obj):
        fut_loop = obj.get_loop()
        if fut_loop is not loop:
            raise ValueError(
                f"{api}() got {describe(obj)}, which is bound to event loop "
                f"{type(fut_loop).__name__} at {id(fut_loop):#x} (thread "
                f"{_loop_thread_name(fut_loop)!r}), but it would be awaited on the worker "
                "loop. A future can only be awaited on its own loop: pass the coroutine "
                "that produces the result instead, or await the future on its loop."
            )
        return _await_it(obj)
    if isinstance(obj, concurrent.futures.Future):
        raise TypeError(
            f"{api}() got a concurrent.futures.Future ({describe(obj)}), which is not "
            "awaitable. Wait for it with `.result(timeout=...)` instead."
        )
    if inspect.isasyncgen(obj):
        raise TypeError(
            f"{api}() got an async generator ({describe(obj)}), which is not awaitable. "
            "Iterate it with `async for` inside a coroutine, and pass that coroutine."
        )
    if inspect.isasyncgenfunction(obj):
        raise TypeError(
            f"{api}() got the async generator function {describe(obj)}. It expects an "
            "awaitable: write a coroutine that iterates it with `async for`, and pass that."
        )
    if _is_coroutine_function(obj):
        name = getattr(obj, "__name__", None) or type(obj).__name__
        raise TypeError(
            f"{api}() got the coroutine function {describe(obj)}, not a coroutine. "
            f"Did you forget to call it? Use {api}({name}(...)) instead of {api}({name})."
        )
    if inspect.isawaitable(obj):
        return _await_it(obj)
    hint = (
        " Did you call a sync function? Pass the coroutine of an `async def` function."
        if callable(obj)
        else ""
    )
    raise TypeError(
        f"{api}() expects a coroutine or another awaitable, got {describe(obj)}.{hint} "
        f"Example: {api}(fetch(1)) where `async def fetch(x): ...`."
    )


def _is_coroutine_function(obj: object) -> bool:
    if not callable(obj):
        return False
    # Python 3.12+ also looks for a marker attribute on the object itself: never on an
    # instance with its own __getattr__, which could do work (async work, even).
    if not hasattr(type(obj), "__getattr__") and inspect.iscoroutinefunction(obj):
        return True
    # an instance whose class defines `async def __call__`
    return inspect.iscoroutinefunction(type(obj).__call__)
