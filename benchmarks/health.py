"""What loop health costs: idle CPU and busy-loop throughput, with health off and on.

Part 1, idle: a worker loop does nothing for a few seconds; the process's CPU time
is read with health off, then with a 50 ms (and a 10 ms) heartbeat and the watchdog.
Part 2, busy: a worker loop runs 200,000 trivial tasks in waves of 1,000; the
throughput with health on is compared with the same run with health off, in
interleaved rounds. aiomonitor (the peer: a console onto a running loop, with a
termination log when it hooks the task factory) runs side by side on the same loop
and workload when it is installed (``pip install aiomonitor``, in the bench extra).

    python benchmarks/health.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import platform
import socket
import statistics
import time
from collections.abc import Iterator

import loopbridge
import loopbridge.health as health


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def aiomonitor_on(loop: asyncio.AbstractEventLoop, hook: bool) -> Iterator[None]:
    """aiomonitor watching *loop* (its own thread and servers), as its docs start it."""
    import aiomonitor

    a, b, c = _free_ports(3)
    mon = aiomonitor.start_monitor(
        loop, port=a, webui_port=b, console_port=c, hook_task_factory=hook
    )
    try:
        yield
    finally:
        mon.close()


def idle_cpu(
    seconds: float, every: float | None, steps: bool = False, aiomonitor: bool = False
) -> float:
    """CPU seconds per wall second of the whole process while the worker idles."""
    wl = loopbridge.WorkerLoop(name="idle").start()
    with contextlib.ExitStack() as stack:
        if every is not None:
            health.start(every=every, threshold=0.1, loops=[wl.loop], steps=steps)
            stack.callback(health.stop)
        if aiomonitor:
            stack.enter_context(aiomonitor_on(wl.loop, hook=True))
        time.sleep(0.2)
        t0, c0 = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        used = (time.process_time() - c0) / (time.perf_counter() - t0)
    wl.close()
    return used


async def waves(total: int, wave: int) -> None:
    async def nothing() -> None:
        return None

    for _ in range(total // wave):
        await asyncio.gather(*(nothing() for _ in range(wave)))


def busy_rate(wl: loopbridge.WorkerLoop, total: int) -> float:
    t0 = time.perf_counter()
    wl.run_sync(waves(total, 1000), timeout=120)
    return total / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else 4.0
    rounds = 4 if args.quick else 16
    total = 50_000 if args.quick else 200_000
    print(f"{platform.machine()}, Python {platform.python_version()}, loopbridge 0.1.0\n")

    base = idle_cpu(seconds, None)
    at50 = idle_cpu(seconds, 0.05)
    at10 = idle_cpu(seconds, 0.01)
    sampled = idle_cpu(seconds, 0.05, steps=True)
    has_peer = importlib.util.find_spec("aiomonitor") is not None
    peer_idle = idle_cpu(seconds, None, aiomonitor=True) if has_peer else None
    print(f"Idle worker loop, {seconds:.0f} s each: process CPU per wall second\n")
    print("| health | CPU | added |")
    print("|---|---|---|")
    print(f"| off | {base * 100:.2f}% | |")
    print(f"| on, every 50 ms | {at50 * 100:.2f}% | {(at50 - base) * 100:+.2f} points |")
    print(f"| on, every 10 ms | {at10 * 100:.2f}% | {(at10 - base) * 100:+.2f} points |")
    print(
        f"| on, every 50 ms, steps=True (timed steps, sampling every 10 ms) | "
        f"{sampled * 100:.2f}% | {(sampled - base) * 100:+.2f} points |"
    )
    if peer_idle is not None:
        print(
            f"| aiomonitor instead (hook_task_factory=True) | {peer_idle * 100:.2f}% | "
            f"{(peer_idle - base) * 100:+.2f} points |"
        )

    wl = loopbridge.WorkerLoop(name="busy").start()
    busy_rate(wl, total // 10)  # warm up
    off: list[float] = []
    on: list[float] = []
    ratios: list[float] = []
    control: list[float] = []  # off against off: this machine's own noise

    with_tasks: list[float] = []
    task_ratios: list[float] = []
    with_steps: list[float] = []
    step_ratios: list[float] = []

    def with_health(tasks: bool = False, steps: bool = False) -> float:
        health.start(every=0.05, threshold=0.1, loops=[wl.loop], tasks=tasks, steps=steps)
        time.sleep(0.06)  # the first heartbeat installs the hooks
        try:
            return busy_rate(wl, total)
        finally:
            health.stop()

    for r in range(rounds):
        # ABBA order: neither setting always runs second (heap growth, GC state)
        if r % 2 == 0:
            a, b, c = busy_rate(wl, total), with_health(), busy_rate(wl, total)
        else:
            c, b, a = busy_rate(wl, total), with_health(), busy_rate(wl, total)
        off.append(a)
        on.append(b)
        ratios.append(b / a)
        control.append(c / a)

    def paired(option: str, rates: list[float], option_ratios: list[float]) -> None:
        """Off against health with one option on, in AB/BA rounds of their own (the
        option's allocations would shift the GC state of the rounds above)."""
        for r in range(max(rounds // 2, 2)):
            if r % 2 == 0:
                a, x = busy_rate(wl, total), with_health(**{option: True})
            else:
                x, a = with_health(**{option: True}), busy_rate(wl, total)
            rates.append(x)
            option_ratios.append(x / a)

    paired("tasks", with_tasks, task_ratios)
    paired("steps", with_steps, step_ratios)

    peer: dict[bool, tuple[list[float], list[float]]] = {}
    if has_peer:

        def with_peer(hook: bool) -> float:
            with aiomonitor_on(wl.loop, hook):
                time.sleep(0.06)
                return busy_rate(wl, total)

        for hook in (False, True):
            rates, peer_ratios = peer[hook] = ([], [])
            for r in range(max(rounds // 2, 2)):
                if r % 2 == 0:
                    a, x = busy_rate(wl, total), with_peer(hook)
                else:
                    x, a = with_peer(hook), busy_rate(wl, total)
                rates.append(x)
                peer_ratios.append(x / a)
    wl.close()
    med_off, med_on = statistics.median(off), statistics.median(on)
    print(f"\nBusy worker loop: {total:,} trivial tasks in waves of 1,000; {rounds} rounds\n")
    print("| health | tasks per second (median) | x off (median of the rounds' ratios) |")
    print("|---|---|---|")
    print(f"| off | {med_off:,.0f} | 1.000x |")
    print(f"| on, every 50 ms | {med_on:,.0f} | {statistics.median(ratios):.3f}x |")
    print(f"| off again (control: the noise) | | {statistics.median(control):.3f}x |")
    print(
        f"| on, with tasks=True (creation sites, termination log) | "
        f"{statistics.median(with_tasks):,.0f} | {statistics.median(task_ratios):.3f}x |"
    )
    print(
        f"| on, with steps=True (every task step timed; sampling every 10 ms) | "
        f"{statistics.median(with_steps):,.0f} | {statistics.median(step_ratios):.3f}x |"
    )
    for hook, (rates, peer_ratios) in peer.items():
        what = "with its task factory (termination log)" if hook else "console only"
        print(
            f"| aiomonitor instead, {what} | {statistics.median(rates):,.0f} | "
            f"{statistics.median(peer_ratios):.3f}x |"
        )
    if not has_peer:
        print("\n(aiomonitor is not installed: pip install aiomonitor to measure it alongside)")


if __name__ == "__main__":
    main()
