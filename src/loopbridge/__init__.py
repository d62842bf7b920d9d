"""loopbridge: call async code from sync code, from anywhere, on one persistent loop.

Example::

    import asyncio, loopbridge

    async def fetch(x):
        await asyncio.sleep(0.1)
        return x

    loopbridge.run_sync(fetch(1), timeout=10)   # a script, a thread, a Jupyter cell
    fut = loopbridge.submit(fetch(2))           # concurrent.futures.Future
"""

from ._bridge import default_worker, run_sync, submit
from ._errors import DeadlockError, LoopBridgeError, LoopBridgeWarning, WorkerClosedError
from ._worker import WorkerLoop

__all__ = [
    "DeadlockError",
    "LoopBridgeError",
    "LoopBridgeWarning",
    "WorkerClosedError",
    "WorkerLoop",
    "default_worker",
    "run_sync",
    "submit",
]

__version__ = "0.1.0"
