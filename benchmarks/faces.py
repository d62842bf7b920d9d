"""Sync faces and map_sync against their peers, measured side by side in one run.

Part 1, many calls: 10,000 ``asyncio.sleep(0.01)`` at concurrency 1,000. The
ideal is 10 waves x 10 ms = 100 ms; everything above it is CPU spent by the
event loop and the bridge. Peers run the same work under ``asyncio.run`` (the
usual Semaphore + gather idiom, and the runner-pool algorithm map_sync uses),
and anyio with a CapacityLimiter.

Part 2, per-call overhead: one call of ``async def get(self, k): return k``
through a ``sync_face`` method, a ``syncify``'d function and a bare
``run_sync(obj.get(k))``, from a plain thread, in interleaved rounds.

    python benchmarks/faces.py            # full run (about 1 minute)
    python benchmarks/faces.py --quick    # a smoke run
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

import loopbridge

N, CONCURRENCY, NAP = 10_000, 1_000, 0.01
IDEAL = N / CONCURRENCY * NAP


async def nap(_: int) -> None:
    await asyncio.sleep(NAP)


# -- part 1: many calls ----------------------------------------------------------------


async def semaphore_gather() -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await nap(i)

    await asyncio.gather(*(one(i) for i in range(N)))


async def runner_pool() -> None:
    items = iter(range(N))

    async def runner() -> None:
        for i in items:
            await nap(i)

    await asyncio.gather(*(runner() for _ in range(CONCURRENCY)))


def many_methods() -> dict[str, Callable[[], Any]]:
    methods: dict[str, Callable[[], Any]] = {
        "loopbridge map_sync": lambda: loopbridge.map_sync(nap, range(N), concurrency=CONCURRENCY),
        "asyncio.run: Semaphore + gather": lambda: asyncio.run(semaphore_gather()),
        "asyncio.run: runner pool (map_sync's algorithm, no bridge)": lambda: asyncio.run(
            runner_pool()
        ),
    }
    try:
        import uvloop

        uv = loopbridge.WorkerLoop(name="bench-uvloop", loop_factory=uvloop.new_event_loop)
        methods["loopbridge map_sync, uvloop worker"] = lambda: loopbridge.map_sync(
            nap, range(N), concurrency=CONCURRENCY, worker=uv
        )
        methods["uvloop.run: runner pool (no bridge)"] = lambda: uvloop.run(runner_pool())
    except ImportError:
        pass
    try:
        import anyio

        async def anyio_limited() -> None:
            limiter = anyio.CapacityLimiter(CONCURRENCY)

            async def one(i: int) -> None:
                async with limiter:
                    await anyio.sleep(NAP)

            async with anyio.create_task_group() as tg:
                for i in range(N):
                    tg.start_soon(one, i)

        methods["anyio.run: CapacityLimiter + task group"] = lambda: anyio.run(anyio_limited)
    except ImportError:
        pass
    return methods


def bench_many(rounds: int) -> None:
    methods = many_methods()
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):  # interleaved: noise hits every method alike
        for name, run in methods.items():
            t = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - t)
    print(f"\n10,000 x asyncio.sleep(0.01), concurrency 1,000; ideal {IDEAL * 1e3:.0f} ms")
    print(f"{rounds} interleaved rounds; median and best\n")
    print("| method | median | best | x ideal (median) |")
    print("|---|---|---|---|")
    for name, xs in samples.items():
        med = statistics.median(xs)
        print(f"| {name} | {med * 1e3:.0f} ms | {min(xs) * 1e3:.0f} ms | {med / IDEAL:.2f}x |")


# -- part 2: per-call overhead -----------------------------------------------------------


class Client:
    async def get(self, k: int) -> int:
        return k


async def get(k: int) -> int:
    return k


def call_methods() -> dict[str, Callable[[], Any]]:
    client = Client()
    face = loopbridge.sync_face(client)
    sync_get = loopbridge.syncify(get)
    run_sync = loopbridge.run_sync
    return {
        "run_sync(client.get(1))": lambda: run_sync(client.get(1)),
        "sync_face(client).get(1)": lambda: face.get(1),
        "syncify(get)(1)": lambda: sync_get(1),
    }


def interleaved(
    methods: dict[str, Callable[[], Any]], rounds: int, per_round: int, warm: int
) -> dict[str, list[float]]:
    """Seconds per call of each method, in interleaved rounds, after a warm-up."""
    for call in methods.values():  # warm up: start the worker, fill caches
        for _ in range(warm):
            call()
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, call in methods.items():
            t = time.perf_counter()
            for _ in range(per_round):
                call()
            samples[name].append((time.perf_counter() - t) / per_round)
    return samples


def bench_calls(rounds: int, per_round: int) -> None:
    samples = interleaved(call_methods(), rounds, per_round, warm=200)
    base = statistics.median(samples["run_sync(client.get(1))"])
    print(f"\nOne call from a plain thread; {rounds} rounds x {per_round} calls, interleaved\n")
    print("| method | median per call | x run_sync |")
    print("|---|---|---|")
    for name, xs in samples.items():
        med = statistics.median(xs)
        print(f"| {name} | {med * 1e6:.1f} us | {med / base:.3f}x |")


# -- part 3: a faced `with` block and a faced iterator -------------------------------------


class Trivial:
    async def __aenter__(self) -> Trivial:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def items(n: int) -> Any:
    for i in range(n):
        yield i


def bench_blocks(rounds: int, per_round: int) -> None:
    """Entering and leaving a faced `with` (one host task for both steps) against two
    bare round trips and anyio's portal; iterating a faced async generator."""
    import contextlib

    run_sync = loopbridge.run_sync
    cm = Trivial()
    face = loopbridge.sync_face(cm)
    sync_items = loopbridge.syncify(items)
    stack = contextlib.ExitStack()
    methods: dict[str, Callable[[], Any]] = {
        "2 x run_sync (__aenter__, __aexit__)": lambda: (
            run_sync(cm.__aenter__()),
            run_sync(cm.__aexit__(None, None, None)),
        ),
        "with sync_face(cm): pass": lambda: face.__exit__(None, None, face.__enter__()),
    }
    try:
        from anyio.from_thread import start_blocking_portal

        portal = stack.enter_context(start_blocking_portal())

        def anyio_with() -> None:
            with portal.wrap_async_context_manager(Trivial()):
                pass

        methods["anyio portal.wrap_async_context_manager"] = anyio_with
    except ImportError:
        pass
    with stack:
        samples = interleaved(methods, rounds, per_round, warm=100)
    base = statistics.median(samples["2 x run_sync (__aenter__, __aexit__)"])
    print(f"\nEnter + exit of a trivial async context manager; {rounds} rounds x {per_round}\n")
    print("| method | median per block | x two run_sync |")
    print("|---|---|---|")
    for name, xs in samples.items():
        med = statistics.median(xs)
        print(f"| {name} | {med * 1e6:.1f} us | {med / base:.2f}x |")

    n = 100
    per_item: dict[str, list[float]] = {"for x in syncify(items)(100)": [], "run_sync per item": []}

    async def take(agen: Any) -> Any:
        return await agen.__anext__()

    for _ in range(rounds):
        t = time.perf_counter()
        for _ in sync_items(n):
            pass
        per_item["for x in syncify(items)(100)"].append((time.perf_counter() - t) / n)
        agen = items(n)
        t = time.perf_counter()
        for _ in range(n):
            run_sync(take(agen))
        per_item["run_sync per item"].append((time.perf_counter() - t) / n)
        run_sync(agen.aclose())
    print(f"\nIterating an async generator of {n} items; {rounds} rounds\n")
    print("| method | median per item |")
    print("|---|---|")
    for name, xs in per_item.items():
        print(f"| {name} | {statistics.median(xs) * 1e6:.1f} us |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    versions = [f"Python {platform.python_version()}", f"loopbridge {loopbridge.__version__}"]
    for dist in ("uvloop", "anyio"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    print(f"{platform.machine()}, {platform.system()}, {', '.join(versions)}", file=sys.stdout)
    bench_many(rounds=2 if args.quick else 9)
    bench_calls(rounds=3 if args.quick else 15, per_round=500 if args.quick else 4000)
    bench_blocks(rounds=3 if args.quick else 15, per_round=300 if args.quick else 2000)


if __name__ == "__main__":
    main()
