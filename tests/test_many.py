"""gather_sync and map_sync: bounded concurrency, order, errors, interrupts, progress."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from tests.conftest import start_script, wait_for_line

import loopbridge

pytestmark = pytest.mark.timeout(30)


class Gauge:
    """Counts how many calls run at once."""

    def __init__(self) -> None:
        self.now = self.peak = self.calls = 0

    async def work(self, x: int) -> int:
        self.now += 1
        self.calls += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.001 * (x % 7))
            return x * x
        finally:
            self.now -= 1


def test_map_sync_keeps_order_and_bounds_concurrency(worker: loopbridge.WorkerLoop) -> None:
    gauge = Gauge()
    out = loopbridge.map_sync(gauge.work, range(200), concurrency=8, worker=worker)
    assert out == [x * x for x in range(200)]
    assert gauge.peak == 8


def test_map_sync_unordered_gives_completion_order(worker: loopbridge.WorkerLoop) -> None:
    async def delayed(x: float) -> float:
        await asyncio.sleep(x)
        return x

    out = loopbridge.map_sync(delayed, [0.3, 0.0, 0.15], ordered=False, worker=worker)
    assert out == [0.0, 0.15, 0.3]


def test_map_sync_consumes_a_generator_lazily(worker: loopbridge.WorkerLoop) -> None:
    pulled: list[int] = []
    gauge = Gauge()

    def items() -> Iterator[int]:
        for i in range(50):
            pulled.append(i)
            # never more than `concurrency` items are in flight ahead of the results
            assert len(pulled) - gauge.calls + gauge.now <= 5
            yield i

    out = loopbridge.map_sync(gauge.work, items(), concurrency=4, worker=worker)
    assert out == [i * i for i in range(50)]


def test_first_error_cancels_the_rest_and_says_how_many_finished(
    worker: loopbridge.WorkerLoop,
) -> None:
    cancelled: list[int] = []

    async def fetch(i: int) -> int:
        try:
            await asyncio.sleep(0.05 if i != 5 else 0.01)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        if i == 5:
            raise ValueError(f"bad item {i}")
        return i

    with pytest.raises(ValueError, match="bad item 5") as info:
        loopbridge.map_sync(fetch, range(20), concurrency=10, worker=worker)
    note = "\n".join(getattr(info.value, "__notes__", [])) or str(info.value)
    assert "map_sync() stopped at the first error, raised for item 5 (5)" in note
    assert "1 of 20 finished, 1 with an error, 9 running were cancelled, 10 never started" in note
    assert "return_exceptions=True" in note
    assert sorted(cancelled) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


def test_return_exceptions_collects_errors_in_place(worker: loopbridge.WorkerLoop) -> None:
    async def check(i: int) -> int:
        if i % 3 == 0:
            raise KeyError(i)
        return i

    out = loopbridge.map_sync(check, range(6), return_exceptions=True, worker=worker)
    assert [type(x).__name__ if isinstance(x, Exception) else x for x in out] == [
        "KeyError",
        1,
        2,
        "KeyError",
        4,
        5,
    ]


def test_timeout_cancels_everything_and_reports(worker: loopbridge.WorkerLoop) -> None:
    async def slow(i: int) -> int:
        await asyncio.sleep(0.05 if i < 4 else 10)
        return i

    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        loopbridge.map_sync(slow, range(8), concurrency=8, timeout=0.5, worker=worker)
    assert time.monotonic() - started < 3
    note = "\n".join(getattr(info.value, "__notes__", [])) or str(info.value)
    assert "map_sync() timed out: 4 of 8 finished, 4 running were cancelled" in note
    assert not [t for t in worker.run_sync(_tasks()) if "slow" in t]  # nothing left behind


async def _tasks() -> list[str]:
    me = asyncio.current_task()
    return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me]


def test_gather_sync_orders_results_and_bounds_concurrency(worker: loopbridge.WorkerLoop) -> None:
    gauge = Gauge()
    out = loopbridge.gather_sync(*(gauge.work(i) for i in range(30)), worker=worker)
    assert out == [i * i for i in range(30)]
    assert gauge.peak == 30  # unbounded by default, like asyncio.gather
    gauge = Gauge()
    out = loopbridge.gather_sync(*(gauge.work(i) for i in range(30)), concurrency=3, worker=worker)
    assert gauge.peak == 3
    assert loopbridge.gather_sync(worker=worker) == []


def test_gather_sync_error_closes_coroutines_that_never_started(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def fail() -> None:
        raise OSError("down")

    async def never() -> None:
        raise AssertionError("must not run")

    # never() coroutines are closed, not left to warn "never awaited" (an error here)
    with pytest.raises(OSError, match="down"):
        loopbridge.gather_sync(fail(), *(never() for _ in range(5)), concurrency=1, worker=worker)


def test_called_from_a_coroutine_warns_at_the_callers_line(worker: loopbridge.WorkerLoop) -> None:
    async def one(x: int) -> int:
        return x

    async def main() -> list[int]:
        return loopbridge.map_sync(one, [1, 2], worker=worker)

    with pytest.warns(
        loopbridge.LoopBridgeWarning, match=r"map_sync\(\) blocks the event loop"
    ) as rec:
        assert asyncio.run(main()) == [1, 2]
    assert rec[0].filename == __file__


def test_deadlock_is_not_reported_as_an_interrupt(worker: loopbridge.WorkerLoop) -> None:
    async def one(x: int) -> int:
        return x

    async def inside() -> list[int]:
        return loopbridge.map_sync(one, [1], worker=worker)

    with pytest.raises(loopbridge.DeadlockError) as info:
        worker.run_sync(inside(), timeout=5)
    assert "interrupted" not in "\n".join([str(info.value), *getattr(info.value, "__notes__", [])])


def test_bad_input_is_explained(worker: loopbridge.WorkerLoop) -> None:
    async def one(x: int) -> int:
        return x

    coro = one(1)
    with pytest.raises(TypeError, match=r"argument 0 is list: .*Unpack it: gather_sync\(\*aws\)"):
        loopbridge.gather_sync([coro])  # type: ignore[arg-type]
    coro.close()  # it was inside the list: not ours to close
    with pytest.raises(
        TypeError, match=r"map_sync\(\) expects an async function first, got coroutine"
    ):
        loopbridge.map_sync(one(2), [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expects an iterable of items second, got int"):
        loopbridge.map_sync(one, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"concurrency=...\) expects a whole number >= 1, got 0"):
        loopbridge.map_sync(one, [1], concurrency=0)
    with pytest.raises(TypeError, match=r"progress=...\) expects True, False or a dict"):
        loopbridge.map_sync(one, [1], progress="yes", worker=worker)  # type: ignore[arg-type]

    def not_async(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"returned int: 1 for item 0 \(1\), not an awaitable"):
        loopbridge.map_sync(not_async, [1], worker=worker)  # type: ignore[arg-type]
    assert loopbridge.map_sync(one, [], worker=worker) == []


def test_progress_bar_is_drawn_by_the_caller(
    worker: loopbridge.WorkerLoop, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")

    async def tick(i: int) -> int:
        await asyncio.sleep(0.004)
        return i

    out = loopbridge.map_sync(
        tick, range(100), concurrency=2, progress={"desc": "ticks", "mininterval": 0}, worker=worker
    )
    assert out == list(range(100))
    err = capsys.readouterr().err
    assert "ticks" in err
    assert "100/100" in err
    assert err.count("\r") >= 3  # updated while running, not just at the end


def test_progress_without_tqdm_says_how_to_install(
    worker: loopbridge.WorkerLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def one(x: int) -> int:
        return x

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    with pytest.raises(
        ImportError, match=r"pip install tqdm \(or pip install 'loopbridge\[progress\]'\)"
    ):
        loopbridge.map_sync(one, [1], progress=True, worker=worker)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_the_rest_and_says_how_many_finished() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys, loopbridge
        cancelled = 0
        async def item(i):
            global cancelled
            try:
                if i == 0:
                    print("ready", flush=True)
                await asyncio.sleep(0.01 if i < 5 else 60)
            except asyncio.CancelledError:
                cancelled += 1
                raise
            return i
        try:
            loopbridge.map_sync(item, range(50), concurrency=10)
        except KeyboardInterrupt as exc:
            notes = getattr(exc, "__notes__", None) or [str(exc)]
            print("interrupted:", notes[-1])
            print("cancelled:", cancelled)
        """
    )
    proc = start_script(code)
    try:
        wait_for_line(proc, "ready")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert "interrupted: loopbridge: map_sync() was interrupted: 5 of 50 finished, " in out, err
    assert "10 running were cancelled, 35 never started" in out
    assert "cancelled: 10" in out
