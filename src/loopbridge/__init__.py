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

from ._bridge import default_worker, run_sync, submit
from ._errors import DeadlockError, LoopBridgeError, LoopBridgeWarning, WorkerClosedError
from ._faces import SyncFace, sync_face, syncify
from ._loop_local import LoopLocal, loop_local
from ._many import gather_sync, map_sync
from ._worker import WorkerLoop

__all__ = [
    "DeadlockError",
    "LoopBridgeError",
    "LoopBridgeWarning",
    "LoopLocal",
    "SyncFace",
    "WorkerClosedError",
    "WorkerLoop",
    "default_worker",
    "gather_sync",
    "loop_local",
    "map_sync",
    "run_sync",
    "submit",
    "sync_face",
    "syncify",
]

__version__ = "0.1.0"
