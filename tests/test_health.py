"""Loop health (issue 13, first part): lag per loop, and stalls caught while they happen,
driven by real faults (a blocking sleep, a CPU loop, a big garbage collection)."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
import warnings
import weakref
from collections.abc import Iterator

import pytest
from tests.kernel import running_kernel

import loopbridge
import loopbridge.health as health
from loopbridge.health import LagHistogram


@pytest.fixture
def watched() -> Iterator[loopbridge.WorkerLoop]:
    """A worker loop under a heartbeat of 10 ms, stalls above 60 ms."""
    wl = loopbridge.WorkerLoop(name="watched", shutdown_timeout=2).start()
    health.clear()
    health.start(every=0.01, threshold=0.06, loops=[wl.loop])
    time.sleep(0.05)  # a few beats first
    yield wl
    health.stop()
    wl.close()


def _stalls_of(label: str, before: int) -> list[health.StallRecord]:
    return [s for s in health.stalls()[before:] if s.loop == label]


def _wait_for_stall(label: str, before: int) -> health.StallRecord:
    for _ in range(100):
        found = _stalls_of(label, before)
        if found:
            return found[-1]
        time.sleep(0.02)
    raise AssertionError(f"no stall recorded on {label}: {health.stalls()}")


def test_a_blocking_sleep_is_caught_with_its_function_line_and_cause(
    watched: loopbridge.WorkerLoop,
) -> None:
    before = len(health.stalls())

    async def slow_handler() -> None:
        time.sleep(0.4)  # the bug: a sync sleep on the loop

    watched.run_sync(slow_handler(), timeout=5)  # the line named as the submitter
    stall = _wait_for_stall("loopbridge-watched", before)
    assert stall.cause == "blocked"
    assert stall.submitted_by is not None and "test_health.py" in stall.submitted_by
    assert "in test_a_blocking_sleep_is_caught" in stall.submitted_by
    assert 0.35 < stall.duration < 1.5
    assert stall.coroutine is not None and stall.coroutine.endswith("<locals>.slow_handler()")
    assert stall.where is not None and "test_health.py" in stall.where
    assert "slow_handler" in stall.where
    assert stall.code == "time.sleep(0.4)  # the bug: a sync sleep on the loop"
    assert len(stall.samples) >= 2  # at 1x and 4x the threshold: where it still was
    assert stall.sampled_at[0] < stall.sampled_at[1]
    assert stall.thread == "loopbridge-watched"
    text = str(health.report())
    assert "loopbridge-watched stalled" in text and "(blocked)" in text


def test_a_cpu_loop_is_computing(watched: loopbridge.WorkerLoop) -> None:
    before = len(health.stalls())

    async def crunch() -> int:
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.4:
            n += 1
        return n

    watched.run_sync(crunch(), timeout=5)
    stall = _wait_for_stall("loopbridge-watched", before)
    assert stall.cause.startswith("computing"), stall
    assert stall.cpu is not None and stall.cpu > 0.2


def test_a_big_garbage_collection_is_gc(watched: loopbridge.WorkerLoop) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self
            self.pad = [None] * 4

    gc.disable()
    try:
        junk = [Node() for _ in range(600_000)]
        del junk
        before = len(health.stalls())

        async def collect() -> float:
            t0 = time.perf_counter()
            gc.collect()
            return time.perf_counter() - t0

        took = watched.run_sync(collect(), timeout=30)
    finally:
        gc.enable()
    if took < 0.15:
        pytest.skip(f"the collection took only {took * 1e3:.0f} ms here: too short to stall")
    stall = _wait_for_stall("loopbridge-watched", before)
    assert "gc" in stall.cause, stall
    assert stall.gc_pause > 0.5 * stall.duration


def test_short_pauses_are_lag_not_stalls_and_the_histogram_fills(
    watched: loopbridge.WorkerLoop,
) -> None:
    before = len(health.stalls())

    async def short_pause() -> None:
        time.sleep(0.02)  # under the 60 ms threshold: lag, not a stall

    watched.run_sync(short_pause(), timeout=5)
    time.sleep(0.3)
    view = health.report()
    (row,) = [r for r in view.to_records() if r["loop"] == "loopbridge-watched"]
    assert row["beats"] >= 10
    assert row["p50"] < 0.03 and row["max"] >= 0.01  # the pause shows as lag
    stalled = [s.coroutine for s in _stalls_of("loopbridge-watched", before)]
    assert not any("short_pause" in (c or "") for c in stalled)


def test_the_stalled_task_is_freed_after_its_record_is_taken(
    watched: loopbridge.WorkerLoop,
) -> None:
    before = len(health.stalls())

    async def blocker() -> None:
        time.sleep(0.2)

    async def hold() -> weakref.ref[asyncio.Task[None]]:
        task = asyncio.ensure_future(blocker())
        await task
        return weakref.ref(task)

    ref = watched.run_sync(hold(), timeout=5)
    _wait_for_stall("loopbridge-watched", before)
    gc.collect()
    assert ref() is None  # the record holds strings and numbers only


def test_stop_removes_every_hook_thread_and_tick() -> None:
    wl = loopbridge.WorkerLoop(name="undone").start()
    threads_before = {t.name for t in threading.enumerate()}
    callbacks_before = list(gc.callbacks)
    hooks_before = list(loopbridge._worker._new_loop_hooks)
    health.start(every=0.01, threshold=0.05)
    assert "loopbridge-health" in {t.name for t in threading.enumerate()}
    time.sleep(0.05)
    beats = list(health._the_monitor.beats.values())
    assert beats and all(b.hist.count > 0 for b in beats)  # they were ticking
    health.stop()
    time.sleep(0.05)
    counts = [b.hist.count for b in beats]
    time.sleep(0.1)
    assert [b.hist.count for b in beats] == counts  # and they tick no more
    assert {t.name for t in threading.enumerate()} == threads_before
    assert gc.callbacks == callbacks_before
    assert loopbridge._worker._new_loop_hooks == hooks_before

    async def timers() -> int:
        loop = asyncio.get_running_loop()
        return len([h for h in loop._scheduled if not h.cancelled()])  # type: ignore[attr-defined]

    assert wl.run_sync(timers(), timeout=5) == 0  # the heartbeat left nothing scheduled
    wl.close()


def test_workers_started_while_watching_are_watched() -> None:
    health.start(every=0.01, threshold=0.05)
    try:
        with loopbridge.WorkerLoop(name="late") as wl:
            wl.run_sync(asyncio.sleep(0.05), timeout=5)
            labels = [r["loop"] for r in health.report().to_records()]
        assert "loopbridge-late" in labels
    finally:
        health.stop()


def test_bad_input_is_refused_clearly() -> None:
    for bad in (0, -1, float("nan"), float("inf"), "50ms", True):
        with pytest.raises(ValueError, match="every must be a positive number of seconds"):
            health.start(every=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expects an asyncio event loop"):
        health.watch(None)  # type: ignore[arg-type]
    closed = asyncio.new_event_loop()
    closed.close()
    with pytest.raises(ValueError, match="closed event loop"):
        health.watch(closed)
    assert not health.is_running()


def test_histogram_percentiles() -> None:
    h = LagHistogram(keep=5)
    for v in [0.001] * 90 + [0.010] * 9 + [0.5]:
        h.add(v)
    assert h.count == 100 and h.max == 0.5
    assert 0.0009 < h.percentile(50) < 0.0011
    assert 0.009 < h.percentile(95) < 0.011
    assert h.percentile(100) == 0.5
    assert len(h.recent) == 5
    assert LagHistogram().percentile(99) == 0.0


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_in_a_kernel_a_sync_cell_is_not_a_stall_but_a_blocked_worker_is() -> None:
    with running_kernel() as k:
        k.ok("%load_ext loopbridge")
        k.ok("import asyncio, time, loopbridge")
        bad = k.execute("%aio health start --every 0")
        assert bad.status == "error"
        assert "UsageError: %aio health: argument --every: expected a duration above zero" in (
            bad.stderr
        )
        k.ok("%aio health start --every 10ms --threshold 60ms")
        k.ok("time.sleep(0.3)")  # a sync cell: the kernel doing its job
        k.ok("async def stuck():\n    time.sleep(0.3)\nloopbridge.run_sync(stuck(), timeout=5)")
        res = k.ok("time.sleep(0.2)\nprint(repr(loopbridge.health.report()))")
        out = res.stdout
        assert "the cell held the kernel's loop" in out
        assert "loopbridge-default stalled" in out and "(blocked) in stuck()" in out
        assert "time.sleep(0.3)" in out
        # the cell is named as the user sees it, not by ipykernel's temporary file
        assert re.search(r"at In\[\d+\]:2 in stuck, handed to the bridge at In\[\d+\]:3", out), out
        res = k.ok("print(repr(get_ipython().run_line_magic('aio', 'doctor')))")
        assert "loop doctor" in res.stdout and "what to do: a synchronous call" in res.stdout
        res = k.ok("print(repr(get_ipython().run_line_magic('aio', 'leaks')))")
        assert "lost errors" in res.stdout or "no lost errors recorded" in res.stdout
        k.ok("%aio health stop")
        res = k.ok("print(loopbridge.health.is_running())")
        assert res.stdout.strip() == "False"


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_in_a_kernel_a_task_left_by_a_cell_is_tied_to_that_cell() -> None:
    """%aio leaks names the cell that started a task still pending after it ended; a
    cell still running owns its tasks."""
    with running_kernel() as k:
        k.ok("%load_ext loopbridge")
        k.ok("import asyncio, time, loopbridge\n%aio health start --tasks")
        made = k.ok(
            "async def forgotten():\n    await asyncio.sleep(3600)\n"
            "t = asyncio.ensure_future(forgotten())"
        )
        number = made.execution_count
        k.ok("time.sleep(0.4)")
        res = k.ok("print(repr(get_ipython().run_line_magic('aio', 'leaks --older 0.2')))")
        out = res.stdout
        assert "forgotten()" in out, out
        assert f"after cell In[{number}] that made it ended" in out
        assert f"created at In[{number}]:3 in <module>" in out
        # a cell that still runs owns what it made
        res = k.ok(
            "async def busy():\n    await asyncio.sleep(3600)\n"
            "b = asyncio.ensure_future(busy())\n"
            "time.sleep(0.4)\n"
            "print(repr(loopbridge.health.leaks(older_than=0.2)))"
        )
        assert "busy()" not in res.stdout and "forgotten()" in res.stdout
        k.ok("t.cancel(); b.cancel()\n%aio health stop")


def test_lost_errors_are_caught_without_replacing_anyones_handlers(
    watched: loopbridge.WorkerLoop,
) -> None:
    seen_by_user: list[str] = []

    async def user_handler_on() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, ctx: seen_by_user.append(ctx["message"])
        )

    # A handler the user set after health started is theirs; put ours first again.
    health.unwatch(watched.loop)
    watched.run_sync(user_handler_on(), timeout=5)
    health.watch(watched.loop)
    time.sleep(0.05)

    async def lose_things() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        async def waits_forever(f: asyncio.Future[None]) -> None:
            await f

        asyncio.ensure_future(waits_forever(fut))  # noqa: RUF006 - dropped: the leak
        await asyncio.sleep(0)
        del fut
        lost = loop.create_future()
        lost.set_exception(ValueError("nobody looked"))
        del lost  # "Future exception was never retrieved"

    before = len(health.leaks().lost)
    watched.run_sync(lose_things(), timeout=5)

    async def collect() -> None:
        gc.collect()  # the pending task is in a cycle: destroyed here

    watched.run_sync(collect(), timeout=5)

    async def make_one() -> None:
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("always", RuntimeWarning)
        make_one()  # never awaited
        gc.collect()

    lost = health.leaks().lost[before:]
    kinds = sorted({e.kind for e in lost})
    assert kinds == ["exception never retrieved", "never awaited", "task destroyed pending"]
    pending = next(e for e in lost if e.kind == "task destroyed pending")
    assert pending.where is not None and "waits_forever" in pending.where
    assert pending.loop == "loopbridge-watched"
    never = next(e for e in lost if e.kind == "exception never retrieved")
    assert "ValueError: nobody looked" in never.message
    awaited = next(e for e in lost if e.kind == "never awaited")
    assert "make_one" in awaited.message
    # the user's own handler still saw both loop errors
    assert any("destroyed but it is pending" in m for m in seen_by_user)
    assert any("never retrieved" in m for m in seen_by_user)

    text = str(health.doctor())
    assert "task destroyed pending" in text and "keep a reference to every task" in text
    assert "never awaited" in text and "add `await`" in text


def test_stop_puts_back_the_exception_handler_and_showwarning() -> None:
    wl = loopbridge.WorkerLoop(name="handlers").start()

    async def handler_now() -> object:
        return asyncio.get_running_loop().get_exception_handler()

    before_handler = wl.run_sync(handler_now(), timeout=5)
    before_show = warnings.showwarning
    health.start(every=0.01, threshold=0.05, loops=[wl.loop])
    time.sleep(0.05)
    assert wl.run_sync(handler_now(), timeout=5) is not before_handler
    assert warnings.showwarning is not before_show
    health.stop()
    time.sleep(0.05)
    assert wl.run_sync(handler_now(), timeout=5) is before_handler
    assert warnings.showwarning is before_show
    wl.close()


def test_doctor_on_a_stall_gives_the_advice_for_its_cause(
    watched: loopbridge.WorkerLoop,
) -> None:
    async def blocking_io() -> None:
        time.sleep(0.3)

    before = len(health.stalls())
    watched.run_sync(blocking_io(), timeout=5)
    _wait_for_stall("loopbridge-watched", before)
    text = str(health.doctor())
    assert "loop doctor" in text
    assert "(blocked) in" in text and "blocking_io" in text
    assert "what to do: a synchronous call blocks the loop" in text


def test_tasks_mode_keeps_a_termination_log_and_finds_tasks_left_pending() -> None:
    wl = loopbridge.WorkerLoop(name="tasks", shutdown_timeout=2).start()
    health.clear()
    health.start(every=0.01, threshold=0.1, loops=[wl.loop], tasks=True)
    time.sleep(0.05)
    try:

        async def fails() -> None:
            raise KeyError("gone")

        async def forever() -> None:
            await asyncio.sleep(3600)

        async def plant() -> None:
            failing = asyncio.ensure_future(fails())  # the line named as its creation site
            cancelled = asyncio.ensure_future(forever())
            leftover = asyncio.ensure_future(forever())
            await asyncio.sleep(0)
            cancelled.cancel()
            await asyncio.sleep(0)
            plant.keep = (failing, leftover)  # type: ignore[attr-defined]

        wl.run_sync(plant(), timeout=5)
        time.sleep(0.2)
        view = health.leaks(older_than=0.1)
        outcomes = {t.coroutine: t for t in view.ended}
        failed = next(t for c, t in outcomes.items() if c.endswith("fails()"))
        assert failed.outcome == "KeyError: 'gone'"
        assert failed.created_at is not None and "test_health.py" in failed.created_at
        assert failed.created_at.endswith("plant")  # the function that made it (3.10: no qualname)
        cancelled = [t for c, t in outcomes.items() if c.endswith("forever()")]
        assert [t.outcome for t in cancelled] == ["cancelled"]
        pending = [p for p in view.pending if p.coroutine.endswith("forever()")]
        assert len(pending) == 1 and pending[0].loop == "loopbridge-tasks"
        # it outlived the run_sync call's task that made it
        assert pending[0].owner is not None and pending[0].owner.endswith("plant()")
        assert 0.1 <= pending[0].overdue < pending[0].age
        text = str(view)
        assert "termination log (2" in text and "tasks left pending (1;" in text
        assert "plant() that made it ended" in text
        # reading the failure did not mark it retrieved: asyncio still reports it
        failing, leftover = plant.keep  # type: ignore[attr-defined]
        assert failing._log_traceback is True
        failing.exception()  # (retrieved now, so the test leaves no log behind)
        leftover.cancel()
    finally:
        health.stop()
        wl.close()


def test_tasks_mode_puts_the_task_factory_back() -> None:
    wl = loopbridge.WorkerLoop(name="factory").start()

    async def factory_now() -> object:
        return asyncio.get_running_loop().get_task_factory()

    before = wl.run_sync(factory_now(), timeout=5)
    health.start(every=0.01, threshold=0.1, loops=[wl.loop], tasks=True)
    time.sleep(0.05)
    assert wl.run_sync(factory_now(), timeout=5) is not before
    health.stop()
    time.sleep(0.05)
    assert wl.run_sync(factory_now(), timeout=5) is before
    wl.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_slow_steps_show_where_each_loops_time_went(loop_kind: str) -> None:
    """Steps too short to be stalls (30 ms, under the 100 ms threshold) still show up, per
    coroutine, with the longest run and the line: sampled, so uvloop is covered too."""
    factory = None
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    wl = loopbridge.WorkerLoop(name=f"steps-{loop_kind}", loop_factory=factory).start()
    health.clear()
    health.start(every=0.02, threshold=0.1, loops=[wl.loop], steps=True)
    try:

        async def chunky() -> None:
            for _ in range(12):
                time.sleep(0.03)  # a 30 ms step: lag, never a stall
                await asyncio.sleep(0)

        async def light() -> None:
            for _ in range(12):
                await asyncio.sleep(0.001)

        async def both() -> None:
            await asyncio.gather(chunky(), light())

        wl.run_sync(both(), timeout=10)
        rows = health.slow_steps().to_records()
    finally:
        health.stop()
        wl.close()
    mine = [r for r in rows if r["loop"] == f"loopbridge-steps-{loop_kind}"]
    top = mine[0]
    assert top["what"].startswith("task ") and top["what"].endswith("chunky()")
    # timed exactly through the task factory: 12 suspensions make 13 steps
    assert top["timed"] is True and top["steps"] == 13
    assert 0.34 < top["total"] < 0.8  # 12 x 30 ms, and a little
    assert 0.029 <= top["longest"] <= 0.08  # one step of 30 ms, not the whole call
    span = top["span"]
    assert span is not None and "test_health.py" in span and "chunky" in span
    light_row = next(r for r in mine if r["what"].endswith("light()"))
    assert light_row["steps"] == 13 and light_row["longest"] < 0.01
    assert top["where"] is not None and "time.sleep(0.03)" not in top["where"]
    assert "test_health.py" in top["where"] and "chunky" in top["where"]
    assert not any("light()" in r["what"] and r["total"] > 0.1 for r in mine)
    text = str(health.slow_steps())  # still readable after stop
    assert "where the loops' time went" in text and "longest run" in text
    assert "timed exactly" in text
    assert not any("threading.py" in (r["where"] or "") for r in mine)  # idle is not work


def test_timed_tasks_look_like_their_own_coroutines_to_everyone() -> None:
    """steps=True wraps each task's coroutine to time its steps: inspection (%aio where,
    inspect.getcoroutinestate), anyio task groups, cancellation and errors must not see
    a difference."""
    import inspect

    anyio = pytest.importorskip("anyio")
    wl = loopbridge.WorkerLoop(name="timed").start()
    health.clear()
    health.start(every=0.01, threshold=0.1, loops=[wl.loop], steps=True)
    time.sleep(0.05)
    try:
        started = threading.Event()

        async def parked() -> None:
            started.set()
            await asyncio.sleep(3600)  # the line %aio where must show

        async def launch() -> asyncio.Task[None]:
            task = asyncio.ensure_future(parked())
            await asyncio.sleep(0)
            return task

        task = wl.run_sync(launch(), timeout=5)
        assert started.wait(5)
        coro = task.get_coro()
        assert type(coro).__name__ == "TimedCoroutine"  # the wrapping is really there
        assert inspect.iscoroutine(coro.__wrapped__)
        assert asyncio.iscoroutine(coro)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_SUSPENDED
        assert coro.__qualname__.endswith("parked") and "parked" in repr(task)
        where = str(loopbridge.where_task(task))
        assert "await asyncio.sleep(3600)" in where and "test_health.py" in where
        rows = loopbridge.inspect_tasks().to_records()
        assert any("parked" in r["coro"] and "sleep(" in r["waits_on"] for r in rows), rows

        async def stop(t: asyncio.Task[None]) -> bool:
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                return True
            return False

        assert wl.run_sync(stop(task), timeout=5) is True

        async def with_anyio() -> list[int]:
            got: list[int] = []

            async def child(n: int) -> None:
                await anyio.sleep(0.01)
                got.append(n)

            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(child, n)
            return sorted(got)

        assert wl.run_sync(with_anyio(), timeout=5) == [0, 1, 2]

        async def fails() -> None:
            await asyncio.sleep(0)
            raise KeyError("unchanged")

        async def run_failing() -> None:
            await asyncio.ensure_future(fails())

        with pytest.raises(KeyError, match="unchanged"):
            wl.run_sync(run_failing(), timeout=5)
    finally:
        health.stop()
        wl.close()
    rows = health.slow_steps().to_records()
    assert any(r["what"].endswith("parked()") and r["steps"] == 2 for r in rows)


def test_a_task_whose_maker_still_runs_is_not_a_leak() -> None:
    """Left pending is measured from the end of what made it: a child of a task that
    still runs is that task's business; once the maker ends, the child is a leak."""
    wl = loopbridge.WorkerLoop(name="owners", shutdown_timeout=2).start()
    health.clear()
    health.start(every=0.01, threshold=0.1, loops=[wl.loop], tasks=True)
    time.sleep(0.05)
    try:
        release = threading.Event()

        async def child() -> None:
            await asyncio.sleep(3600)

        async def maker() -> None:
            kids = [asyncio.ensure_future(child())]
            while not release.is_set():
                await asyncio.sleep(0.01)
            maker.kids = kids  # type: ignore[attr-defined]

        fut = wl.submit(maker())
        time.sleep(0.4)
        assert [p for p in health.leaks(older_than=0.1).pending if "child" in p.coroutine] == []
        release.set()
        fut.result(timeout=5)
        time.sleep(0.05)
        assert [p for p in health.leaks(older_than=0.1).pending if "child" in p.coroutine] == []
        time.sleep(0.2)
        left = [p for p in health.leaks(older_than=0.1).pending if "child" in p.coroutine]
        assert len(left) == 1 and left[0].owner is not None and "maker()" in left[0].owner
        assert left[0].created_at is not None and "in " in left[0].created_at
        assert 0.1 <= left[0].overdue < left[0].age
        records = health.leaks(older_than=0.1).pending_records()
        assert any(r["owner"] == left[0].owner for r in records)
        for kid in maker.kids:  # type: ignore[attr-defined]
            wl.loop.call_soon_threadsafe(kid.cancel)
    finally:
        health.stop()
        wl.close()


def test_steps_are_timed_again_after_clear() -> None:
    """clear() while steps are timed starts a fresh count, and the next tasks' steps are
    counted in it (the factory's per-function cache must not keep the old entries)."""
    wl = loopbridge.WorkerLoop(name="clear").start()
    health.start(every=0.01, threshold=0.1, loops=[wl.loop], steps=True)
    time.sleep(0.05)
    try:

        async def three_steps() -> None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        async def run_one() -> None:
            await asyncio.ensure_future(three_steps())

        def count() -> int:
            rows = health.slow_steps().to_records()
            return sum(r["steps"] or 0 for r in rows if r["what"].endswith("three_steps()"))

        wl.run_sync(run_one(), timeout=5)
        assert count() == 3
        health.clear()
        assert count() == 0
        wl.run_sync(run_one(), timeout=5)
        wl.run_sync(run_one(), timeout=5)
        assert count() == 6
    finally:
        health.stop()
        wl.close()
