"""``%aio tasks`` and ``%aio loops`` on 10,000 tasks, against what people use today.

The magics run for real, in an IPython shell with ``%load_ext loopbridge``,
from a coroutine on the loop that holds the tasks (as a notebook cell runs on
the kernel's loop), and once more with the tasks on the worker loop, which
the magic reads through a thread-safe call to that loop's thread.

Peers, on the same 10,000 tasks in the same run:

* ``asyncio.all_tasks()``: only the set, nothing readable (the floor);
* ``[repr(t) for t in all_tasks()]``: what people print today (name, coroutine,
  the line it is at, but not what it waits on or who awaits it);
* ``task.get_stack()`` for every task: the usual way to see where each one is.

    python benchmarks/magics.py            # full run
    python benchmarks/magics.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

import loopbridge

N = 10_000


async def sleeper() -> None:
    await asyncio.sleep(3600)


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def text_of(view: Any) -> str:
    return str(view.text())


def html_of(view: Any) -> str:
    return str(view._repr_html_())


async def on_this_loop(ip: Any, rounds: int) -> list[tuple[str, float, str]]:
    tasks = [asyncio.create_task(sleeper()) for _ in range(N)]
    await asyncio.sleep(0.05)
    aio = ip.find_line_magic("aio")
    rows: list[tuple[str, float, str]] = []

    def add(label: str, fn: Callable[[], Any], note: str = "") -> None:
        t, _ = timed(fn, rounds)
        rows.append((label, t, note))

    add("asyncio.all_tasks() (floor)", asyncio.all_tasks, "a set, nothing readable")
    add(
        "[repr(t) for t in all_tasks()]",
        lambda: [repr(t) for t in asyncio.all_tasks()],
        "no waits-on, no awaited-by",
    )
    add(
        "t.get_stack() for every task",
        lambda: [t.get_stack() for t in asyncio.all_tasks()],
        "frames only",
    )
    add("%aio tasks (text, page of 50)", lambda: text_of(aio("tasks")), "the issue's target")
    add("%aio tasks (HTML, page of 50)", lambda: html_of(aio("tasks")), "")
    add("%aio tasks --group (text)", lambda: text_of(aio("tasks --group")), "")
    add(
        "%aio tasks --full (all 10k detailed)",
        lambda: text_of(aio("tasks --full")),
        "for .to_records() of everything",
    )
    add("%aio loops (text)", lambda: text_of(aio("loops")), "the issue's target")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rows


def on_worker(ip: Any, rounds: int) -> list[tuple[str, float, str]]:
    async def spawn() -> list[asyncio.Task[Any]]:
        made = [asyncio.create_task(sleeper()) for _ in range(N)]
        await asyncio.sleep(0.05)
        return made

    tasks = loopbridge.run_sync(spawn())
    aio = ip.find_line_magic("aio")
    t_text, _ = timed(lambda: text_of(aio("tasks")), rounds)
    t_loops, _ = timed(lambda: text_of(aio("loops")), rounds)

    async def stop() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    loopbridge.run_sync(stop())
    return [
        ("%aio tasks, 10k on the worker (text)", t_text, "read on the worker's thread"),
        ("%aio loops, 10k on the worker", t_loops, ""),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    ip = InteractiveShell.instance()
    print(
        f"loopbridge {loopbridge.__version__}, Python {platform.python_version()}, "
        f"IPython {importlib.metadata.version('ipython')}, {platform.machine()}, "
        f"{platform.system()}; {N:,} sleeping tasks; median of {rounds} rounds"
    )

    async def run() -> list[tuple[str, float, str]]:
        ip.run_line_magic("load_ext", "loopbridge")  # on this loop, as in a kernel cell
        return await on_this_loop(ip, rounds)

    rows = asyncio.run(run())
    rows += on_worker(ip, rounds)
    floor = rows[0][1]
    print()
    print(f"| {'what':<40} | {'median':>9} | {'x floor':>8} | note")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 10}|------")
    for label, t, note in rows:
        print(f"| {label:<40} | {t * 1000:7.1f}ms | {t / floor:7.1f}x | {note}")
    tasks_ms = rows[3][1] * 1000
    loops_ms = rows[7][1] * 1000
    print()
    print(
        f"target %aio tasks < 100 ms: {tasks_ms:.1f} ms "
        f"({'met' if tasks_ms < 100 else 'NOT met'}); "
        f"target %aio loops < 20 ms: {loops_ms:.1f} ms "
        f"({'met' if loops_ms < 20 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
