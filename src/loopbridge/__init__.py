"""loopbridge: call async code from sync code, from anywhere, on one persistent loop.

Example::

    import asyncio, loopbridge

    async def fetch(x):
        await asyncio.sleep(0.1)
        return x

    loopbridge.run_sync(fetch(1), timeout=10)   # a script, a thread, a Jupyter cell
    fut = loopbridge.submit(fetch(2))           # concurrent.futures.Future

    fetch_sync = loopbridge.syncify(fetch)      # a sync function, same signature
    db = loopbridge.sync_face(async_client)     # a sync object over an async one
    loopbridge.map_sync(fetch, range(100), concurrency=10, progress=True)
"""

from typing import TYPE_CHECKING, Any

from ._bridge import default_worker, run_async, run_sync, submit
from ._errors import (
    DeadlockError,
    LoopBridgeError,
    LoopBridgeWarning,
    WorkerClosedError,
    explain,
)
from ._faces import SyncFace, sync_face, syncify
from ._loop_local import LoopLocal, loop_local
from ._many import gather_sync, map_sync
from ._worker import WorkerLoop

if TYPE_CHECKING:
    from ._inspect import LoopSnapshot, TaskSnapshot
    from ._tools import cancel_tasks, inspect_loops, inspect_tasks, where_task
    from ._views import CancelView, LoopsView, TasksView, WhereView

__all__ = [
    "CancelView",
    "DeadlockError",
    "LoopBridgeError",
    "LoopBridgeWarning",
    "LoopLocal",
    "LoopSnapshot",
    "LoopsView",
    "SyncFace",
    "TaskSnapshot",
    "TasksView",
    "WhereView",
    "WorkerClosedError",
    "WorkerLoop",
    "cancel_tasks",
    "default_worker",
    "explain",
    "gather_sync",
    "inspect_loops",
    "inspect_tasks",
    "load_ipython_extension",
    "loop_local",
    "map_sync",
    "run_async",
    "run_sync",
    "submit",
    "sync_face",
    "syncify",
    "unload_ipython_extension",
    "where_task",
]

__version__ = "0.1.0"

# The inspection tools and the IPython extension load on first use, so that
# `import loopbridge` stays light (no IPython, no traitlets).
_LAZY = {
    "inspect_loops": "_tools",
    "inspect_tasks": "_tools",
    "where_task": "_tools",
    "cancel_tasks": "_tools",
    "LoopSnapshot": "_inspect",
    "TaskSnapshot": "_inspect",
    "LoopsView": "_views",
    "TasksView": "_views",
    "WhereView": "_views",
    "CancelView": "_views",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "health":  # the loop-health package, loaded on first use
        return importlib.import_module(".health", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopbridge' has no attribute {name!r}")

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ip: Any) -> None:
    """Called by ``%load_ext loopbridge``; see :mod:`loopbridge.ipython`.

    Example::

        %load_ext loopbridge
    """
    from .ipython import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Called by ``%unload_ext loopbridge``: undoes everything loading changed.

    Example::

        %unload_ext loopbridge
    """
    from .ipython import unload_ipython_extension as unload

    unload(ip)
