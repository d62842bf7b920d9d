"""Incident 3: Celery-style tasks with an asyncpg pool, also after fork().

The worker process makes its pool at start-up, then forks children that run
the tasks (Celery's prefork pool). INCIDENT_MODE:

- ``bridge``: the pool made through ``loopbridge.run_sync`` (the README's recipe):
  tasks work in the parent, and fail in the forked children.
- ``fixed``: the pool is ``loopbridge.loop_local``: each process's worker loop
  makes its own, the children included.
"""

import os

import asyncpg

import loopbridge

DSN = os.environ["POSTGRES_DSN"]
MODE = os.environ.get("INCIDENT_MODE", "bridge")

if MODE == "fixed":
    pools = loopbridge.loop_local(lambda: asyncpg.create_pool(DSN, min_size=1, max_size=2))

    async def _answer() -> int:
        return await (await pools.aget()).fetchval("select 42")  # type: ignore[no-any-return]

    def task_answer() -> int:
        return loopbridge.run_sync(_answer(), timeout=10)

else:

    async def make_pool() -> asyncpg.Pool:
        # Inside a coroutine, so that the pool binds to the worker loop (the README's recipe).
        return await asyncpg.create_pool(DSN, min_size=1, max_size=2)

    pool = loopbridge.run_sync(make_pool(), timeout=10)

    def task_answer() -> int:
        return loopbridge.run_sync(pool.fetchval("select 42"), timeout=10)


def run_in_child() -> None:
    pid = os.fork()
    if pid == 0:  # the prefork child runs a task
        try:
            print("child:", task_answer(), flush=True)
        except Exception as exc:
            print(f"child task failed: {type(exc).__name__}: {exc}", flush=True)
            for note in getattr(exc, "__notes__", []):
                print(note, flush=True)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    print("parent:", task_answer(), flush=True)
    run_in_child()
    if MODE == "fixed":
        # (In the broken shape the child wrote on the parent's connection: the
        # parent's next query on it can fail or hang, which is the incident too.)
        print("parent again:", task_answer(), flush=True)
