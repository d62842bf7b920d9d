"""Chaos run: the bridge under interrupts, load, forks, close races, churn and bad input.

    python scripts/chaos.py            # every scenario, about 2-3 minutes
    python scripts/chaos.py --quick    # smaller numbers, under a minute
    python scripts/chaos.py interrupts --seconds 15 --json   # one scenario, machine-readable

Each scenario prints its figures and the invariant it checks; the run exits 1 if
any invariant is broken. The README's "Guarantees" table is this script's output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import loopbridge

Result = dict[str, Any]

# -- interrupts: random real SIGINTs against a loop of short and long calls ---------------

_CHILD = r"""
import asyncio, faulthandler, inspect, os, random, signal, sys, threading, time, warnings
import loopbridge
warnings.simplefilter("error", loopbridge.LoopBridgeWarning)  # a false "keeps running" fails
seconds, seed = float(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
wl = loopbridge.WorkerLoop(name="chaos", cancel_timeout=2)
armed = False
def on_sigint(signum, frame):
    global armed
    if armed:                      # one KeyboardInterrupt per call at most: a real Ctrl-C
        armed = False              # that lands while the call is being made or waited on
        raise KeyboardInterrupt
signal.signal(signal.SIGINT, on_sigint)
started, ended = set(), set()
async def work(i, seconds):
    started.add(i)
    try:
        if seconds:
            await asyncio.sleep(seconds)
        else:
            await asyncio.sleep(0)
        return i
    finally:
        ended.add(i)
progress = [time.monotonic()]
def watchdog():
    while True:
        time.sleep(0.5)
        if time.monotonic() - progress[0] > 5:
            print(json.dumps({"wedged": 1}), flush=True)
            faulthandler.dump_traceback(all_threads=True)
            os._exit(3)
import json
threading.Thread(target=watchdog, daemon=True).start()
counts = dict(calls=0, values=0, interrupts=0, timeouts=0, other=0, stalls=0)
worst = 0.0
print("ready", flush=True)
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    i += 1
    kind = rng.random()
    length = 0.0 if kind < 0.6 else rng.uniform(0.002, 0.03)
    timeout = rng.choice([None, None, 0.015, 1.0])
    coro = work(i, length)
    t0 = time.monotonic()
    try:
        armed = True
        if kind < 0.85:
            v = wl.run_sync(coro, timeout=timeout)
        else:
            fut = wl.submit(coro)
            try:
                v = fut.result(timeout=5)
            except KeyboardInterrupt:
                fut.cancel()             # what a user does to stop the work
                raise
        armed = False
        counts["values"] += v == i
    except KeyboardInterrupt:
        counts["interrupts"] += 1
    except TimeoutError:
        armed = False
        counts["timeouts"] += 1
    except BaseException as exc:
        armed = False
        counts["other"] += 1
        import traceback
        print("other:", "".join(traceback.format_exception(exc)), file=sys.stderr, flush=True)
    finally:
        armed = False
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()                     # interrupted before the hand-off: never started
    took = time.monotonic() - t0
    worst = max(worst, took - length)
    counts["stalls"] += took - length > 1.0
    counts["calls"] += 1
    progress[0] = time.monotonic()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run is over: the parent may still send
time.sleep(0.2)                      # what was cancelled finishes its cleanup
async def tasks_left():
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in left[:3]:
        print("left:", t, file=sys.stderr, flush=True)
    return len(left)
try:
    left = wl.run_sync(tasks_left(), timeout=2)
    wedged = 0
except BaseException:
    left, wedged = -1, 1
counts.update(lost=len(started - ended), tasks_left=left, wedged=wedged,
              worst_extra_ms=round(worst * 1000, 1))
print(json.dumps(counts), flush=True)
"""


def interrupts(seconds: float, seed: int = 1) -> Result:
    """A child loops over mixed calls; the parent sends SIGINTs at random moments."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(seconds), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        return {"error": proc.stderr.read() if proc.stderr else "no ready line", "ok": False}
    rng = random.Random(seed)
    sent = 0
    deadline = time.monotonic() + seconds + 30
    while proc.poll() is None and time.monotonic() < deadline:
        # mostly rapid-fire, sometimes a pause long enough for calls to time out
        time.sleep(rng.uniform(0.0005, 0.004) if rng.random() < 0.8 else rng.uniform(0.01, 0.05))
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
            sent += 1
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=10)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    got: Result = json.loads(lines[-1]) if lines else {"wedged": 1}
    got["signals_sent"] = sent
    got["exit code"] = proc.returncode
    got["stderr"] = err.strip()[-2000:]
    got["ok"] = (
        got.get("wedged", 1) == 0
        and got.get("stalls", 1) == 0
        and got.get("lost", 1) == 0
        and got.get("tasks_left", 1) == 0
        and got.get("other", 1) == 0
        and proc.returncode == 0
    )
    return got


# -- load: many threads, mixed calls, every result checked --------------------------------


def load(threads: int, calls: int) -> Result:
    wl = loopbridge.WorkerLoop(name="load")
    wrong = lost = 0
    lock = threading.Lock()
    done_calls = [0]

    async def echo(v: int, fail: bool) -> int:
        if v % 3:
            await asyncio.sleep(0)
        if fail:
            raise ValueError(v)
        return v

    def caller(t: int) -> None:
        nonlocal wrong
        rng = random.Random(t)
        mine = 0
        for k in range(calls):
            v = t * 1_000_000 + k
            fail = rng.random() < 0.1
            try:
                got = (
                    wl.run_sync(echo(v, fail), timeout=30)
                    if k % 4
                    else wl.submit(echo(v, fail)).result(30)
                )
                bad = fail or got != v
            except ValueError as exc:
                bad = not fail or exc.args != (v,)
            with lock:
                wrong += bad
            mine += 1
        with lock:
            done_calls[0] += mine

    t0 = time.monotonic()
    pool = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    took = time.monotonic() - t0
    lost = threads * calls - done_calls[0]
    wl.close()
    return {
        "threads": threads,
        "calls": threads * calls,
        "wrong": wrong,
        "lost": lost,
        "seconds": round(took, 1),
        "ok": wrong == 0 and lost == 0,
    }


# -- fork: threads mid-call when the process forks ------------------------------------------


def fork(threads: int, rounds: int) -> Result:
    if not hasattr(os, "fork"):
        return {"skipped": "no fork on this platform", "ok": True}
    children_ok = 0
    stop = threading.Event()

    async def tick() -> int:
        await asyncio.sleep(0.001)
        return 1

    def busy() -> None:
        while not stop.is_set():
            loopbridge.run_sync(tick(), timeout=10)

    pool = [threading.Thread(target=busy, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    try:
        for _ in range(rounds):
            time.sleep(0.02)
            with warnings_off():
                pid = os.fork()
            if pid == 0:  # the child: a fresh worker serves at once
                code = 1
                try:
                    if loopbridge.run_sync(tick(), timeout=5) == 1:
                        code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            children_ok += os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        for t in pool:
            t.join(10)
    parent_ok = loopbridge.run_sync(tick(), timeout=5) == 1
    return {
        "threads mid-call": threads,
        "forks": rounds,
        "children served": children_ok,
        "parent served": parent_ok,
        "ok": children_ok == rounds and parent_ok,
    }


@contextlib.contextmanager
def warnings_off() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        yield


# -- close races: close() while calls from many threads are in flight ----------------------


def close_races(rounds: int) -> Result:
    unexpected = hung = 0
    outcomes: dict[str, int] = {}

    async def short() -> int:
        await asyncio.sleep(random.uniform(0, 0.003))
        return 1

    for r in range(rounds):
        wl = loopbridge.WorkerLoop(name=f"race{r}", shutdown_timeout=2)
        wl.start()
        results: list[str] = []

        def caller(wl: loopbridge.WorkerLoop = wl, results: list[str] = results) -> None:
            for _ in range(20):
                try:
                    if random.random() < 0.5:
                        wl.run_sync(short(), timeout=5)
                    else:
                        wl.submit(short()).result(5)
                    results.append("value")
                except loopbridge.WorkerClosedError:
                    results.append("WorkerClosedError")
                except BaseException as exc:  # noqa: BLE001 - counted as unexpected
                    results.append(type(exc).__name__)

        pool = [threading.Thread(target=caller) for _ in range(4)]
        for t in pool:
            t.start()
        time.sleep(random.uniform(0, 0.01))
        wl.close()
        for t in pool:
            t.join(10)
            hung += t.is_alive()
        for o in results:
            outcomes[o] = outcomes.get(o, 0) + 1
            unexpected += o not in ("value", "WorkerClosedError")
    return {
        "rounds": rounds,
        **outcomes,
        "unexpected": unexpected,
        "hung": hung,
        "ok": unexpected == 0 and hung == 0,
    }


# -- leaks: worker loops made and closed, calls in between ----------------------------------


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def leaks(loops: int) -> Result:
    async def one() -> int:
        return 1

    def churn(n: int) -> None:
        for i in range(n):
            with loopbridge.WorkerLoop(name=f"churn{i}") as wl:
                wl.run_sync(one(), timeout=5)

    churn(50)  # warm-up: imports, caches, allocator pools
    gc.collect()
    threads0, fds0, rss0 = threading.active_count(), _fds(), _rss_kib()
    t0 = time.monotonic()
    churn(loops)
    gc.collect()
    time.sleep(0.1)
    threads1, fds1, rss1 = threading.active_count(), _fds(), _rss_kib()
    return {
        "worker loops made and closed": loops,
        "threads +": threads1 - threads0,
        "fds +": fds1 - fds0,
        "RSS + KiB": rss1 - rss0,
        "seconds": round(time.monotonic() - t0, 1),
        "ok": threads1 == threads0 and fds1 <= fds0 and rss1 - rss0 < 20_000,
    }


# -- fuzz: bad input is refused at once, with a clear error, never a hang ------------------


def fuzz(cases: int, seed: int = 7, verbose: bool = False) -> Result:
    rng = random.Random(seed)

    async def fine() -> int:
        return 1

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    values: list[Callable[[], Any]] = [
        lambda: None,
        lambda: 42,
        lambda: "text",
        lambda: b"x",
        lambda: [fine()],
        lambda: fine,
        lambda: gen(),
        lambda: agen(),
        lambda: agen,
        lambda: len,
        lambda: object(),
        lambda: asyncio.new_event_loop().create_future(),
        lambda: __import__("concurrent.futures").futures.Future(),
        lambda: float("nan"),
        lambda: -1,
        lambda: float("inf"),
        lambda: True,
    ]
    apis: list[tuple[str, Callable[[Any], Any]]] = [
        ("run_sync", lambda v: loopbridge.run_sync(v, timeout=5)),
        ("run_sync timeout=", lambda v: loopbridge.run_sync(fine(), timeout=v)),
        ("submit", lambda v: loopbridge.submit(v).result(5)),
        ("map_sync fn", lambda v: loopbridge.map_sync(v, [1], timeout=5)),
        ("map_sync items", lambda v: loopbridge.map_sync(lambda x: fine(), v, timeout=5)),
        (
            "map_sync concurrency",
            lambda v: loopbridge.map_sync(lambda x: fine(), [1], concurrency=v),
        ),
        ("gather_sync", lambda v: loopbridge.gather_sync(v, timeout=5)),
        ("syncify", lambda v: loopbridge.syncify(v)()),
        ("sync_face", lambda v: loopbridge.sync_face(v)),
        ("WorkerLoop cancel_timeout", lambda v: loopbridge.WorkerLoop(cancel_timeout=v)),
    ]
    slow = refused = accepted = 0
    worst = 0.0
    errors: dict[str, int] = {}
    for _ in range(cases):
        _, api = rng.choice(apis)
        make = rng.choice(values)
        with warnings_off():
            value = make()
            if isinstance(value, list):  # coroutines inside a list are never started
                for v in value:
                    v.close()
        t0 = time.monotonic()
        try:
            api(value)
            accepted += 1
        except (TypeError, ValueError, loopbridge.LoopBridgeError) as exc:
            refused += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        except Exception as exc:  # noqa: BLE001 - any clear error is an answer
            refused += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if verbose:
                print(f"  fuzz: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            for v in (value,):
                if asyncio.iscoroutine(v):
                    v.close()
                if isinstance(v, asyncio.Future):
                    v.get_loop().close()
        took = time.monotonic() - t0
        worst = max(worst, took)
        slow += took > 0.5
    return {
        "calls": cases,
        "refused": refused,
        "accepted (valid after all)": accepted,
        "errors": errors,
        "worst ms": round(worst * 1000, 1),
        "slow (>0.5 s)": slow,
        "ok": slow == 0,
    }


SCENARIOS = ("interrupts", "load", "fork", "close", "leaks", "fuzz")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller numbers (under a minute)")
    ap.add_argument("--seconds", type=float, help="length of the interrupt run")
    ap.add_argument("--json", action="store_true", help="print one JSON object per scenario")
    args = ap.parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    q = args.quick
    runs: dict[str, Callable[[], Result]] = {
        "interrupts": lambda: interrupts(args.seconds or (15 if q else 60)),
        "load": lambda: load(32, 500 if q else 5000),
        "fork": lambda: fork(8, 10 if q else 50),
        "close": lambda: close_races(50 if q else 300),
        "leaks": lambda: leaks(200 if q else 2000),
        "fuzz": lambda: fuzz(500 if q else 5000),
    }
    failed = []
    if not args.json:
        print(
            f"loopbridge {loopbridge.__version__} chaos run, Python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs{' (quick)' if q else ''}"
        )
    for name in chosen:
        t0 = time.monotonic()
        result = runs[name]()
        result["wall s"] = round(time.monotonic() - t0, 1)
        if not result["ok"]:
            failed.append(name)
        if args.json:
            print(json.dumps({"scenario": name, **result}), flush=True)
        else:
            shown = {k: v for k, v in result.items() if k not in ("ok", "stderr")}
            mark = "ok  " if result["ok"] else "FAIL"
            print(f"{mark} {name:<11} " + ", ".join(f"{k}: {v}" for k, v in shown.items()))
            if not result["ok"] and result.get("stderr"):
                print("     stderr:", result["stderr"])
    if failed and not args.json:
        print("broken invariants in:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
