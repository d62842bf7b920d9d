"""Faults: Ctrl-C at any moment, hostile task factories, odd inputs, close, fork and exit races.

The invariant (docs/architecture.md, "Faults"): whatever is interrupted, and
whatever user code raises where, every call ends within its bound (value,
exception, WorkerClosedError, TimeoutError, KeyboardInterrupt), and the worker
serves the next call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
import os
import sys
import threading
import time
import warnings
from typing import Any

import pytest
from tests.conftest import run_script
from tests.inject import Injector, each_opcode, outcome_of

import loopbridge

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals / fork")


async def quick() -> int:
    return 1


async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


def _served(wl: loopbridge.WorkerLoop) -> float:
    """Seconds the worker takes to serve a fresh call (fails if it cannot)."""
    t0 = time.monotonic()
    assert wl.run_sync(quick(), timeout=2) == 1
    return time.monotonic() - t0


def _tasks_left(wl: loopbridge.WorkerLoop) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return wl.run_sync(count(), timeout=2)


# -- 1 and 2: a KeyboardInterrupt at every bytecode of a call --------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("make_coro", "make_call"),
    [
        pytest.param(quick, lambda wl, c: wl.run_sync(c), id="run_sync-short"),
        pytest.param(quick, lambda wl, c: wl.run_sync(c, timeout=5), id="run_sync-timeout"),
        pytest.param(
            lambda: nap(0.01), lambda wl, c: wl.run_sync(c, timeout=5), id="run_sync-suspending"
        ),
        pytest.param(quick, lambda wl, c: wl.submit(c).result(5), id="submit"),
    ],
)
def test_interrupt_at_every_opcode_leaves_the_worker_whole(make_coro: Any, make_call: Any) -> None:
    """Ctrl-C at each bytecode of the scheduling and waiting paths, one at a time.

    Each must end the call at once (never the cancel_timeout grace for work that
    already finished), warn about nothing, and leave the worker serving the next
    call at once, with no task left behind on it.
    """
    wl = loopbridge.WorkerLoop(name="inject", cancel_timeout=3, shutdown_timeout=2)
    try:
        _served(wl)  # started: this test is about calls, the next about start-up
        points = 0
        for inj in each_opcode():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.monotonic()
                coro = make_coro()
                with inj.armed():
                    outcome = outcome_of(lambda: make_call(wl, coro))  # noqa: B023
                took = time.monotonic() - t0
                coro.close()  # a no-op unless the Ctrl-C came before the hand-off
            if inj.fired_at is None:
                assert outcome == "value"
                break
            points += 1
            where = f"interrupt at opcode {inj.n} ({inj.fired_at})"
            assert outcome == "KeyboardInterrupt", f"{where}: {outcome}"
            assert took < 1.0, f"{where}: the caller took {took:.2f}s to get its Ctrl-C"
            # Python's own "never awaited" is true for a Ctrl-C that lands before the
            # hand-off began (the coroutine never ran); loopbridge itself warns of nothing.
            assert not [str(w.message) for w in caught if "never awaited" not in str(w.message)], (
                where
            )
            assert _served(wl) < 1.0, f"{where}: the worker was slow to serve the next call"
            # the interrupted task is gone (cancelled or finished), never stranded
            deadline = time.monotonic() + 2
            while _tasks_left(wl) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _tasks_left(wl) == 0, where
        assert points > 20  # the path was really walked, not skipped
    finally:
        wl.close()


@pytest.mark.timeout(120)
def test_interrupt_while_the_worker_thread_starts_leaves_no_orphan() -> None:
    """Ctrl-C at each bytecode of a first call, which starts the thread."""
    for inj in each_opcode():
        wl = loopbridge.WorkerLoop(name=f"start-{inj.n}", shutdown_timeout=1)
        coro = quick()
        with inj.armed():
            outcome = outcome_of(lambda: wl.run_sync(coro))  # noqa: B023
        coro.close()
        if inj.fired_at is None:
            wl.close()
            break
        where = f"interrupt at opcode {inj.n} ({inj.fired_at})"
        assert outcome == "KeyboardInterrupt", f"{where}: {outcome}"
        assert _served(wl) < 1.0, where  # the worker starts on the next call
        wl.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            alive = [t.name for t in threading.enumerate() if t.name.startswith(wl.thread_name)]
            if not alive:
                break
            time.sleep(0.01)
        assert not alive, f"{where}: orphan loop thread(s) after close(): {alive}"


@POSIX
@pytest.mark.timeout(60)
def test_ctrl_c_right_after_the_result_is_fast_and_true() -> None:
    """Real SIGINTs racing a loop of short calls, under -W error (where a false "keeps
    running" warning would replace the KeyboardInterrupt): every one surfaces as a
    KeyboardInterrupt in well under cancel_timeout, and the worker keeps serving."""
    r = run_script(
        """
        import asyncio, os, signal, threading, time, warnings, loopbridge
        warnings.simplefilter("error")
        wl = loopbridge.WorkerLoop(name="race", cancel_timeout=5)
        async def quick():
            return 1
        me = threading.main_thread().ident
        slow = other = interrupts = 0
        for i in range(300):
            timer = threading.Timer(0.0003 * (i % 11), signal.pthread_kill, (me, signal.SIGINT))
            t0 = time.monotonic()
            try:
                timer.start()
                while True:
                    wl.run_sync(quick())
            except KeyboardInterrupt:
                interrupts += 1
                slow += (time.monotonic() - t0) > 0.1 + 0.0003 * (i % 11)
            except BaseException as exc:
                other += 1
                print("other:", repr(exc), flush=True)
            timer.join()
        wl.run_sync(quick(), timeout=2)
        print("interrupts", interrupts, "slow", slow, "other", other, flush=True)
        """,
        timeout=50,
    )
    assert r.stdout.splitlines()[-1] == "interrupts 300 slow 0 other 0", r.stdout + r.stderr


@POSIX
@pytest.mark.timeout(30)
def test_warning_under_w_error_does_not_replace_keyboard_interrupt() -> None:
    """The "keeps running" warning is true here (the task ignores cancellation); with
    warnings as errors it becomes a note on the KeyboardInterrupt, not a replacement."""
    r = run_script(
        """
        import asyncio, _thread, threading, warnings, loopbridge
        warnings.simplefilter("error")
        wl = loopbridge.WorkerLoop(name="stubborn", cancel_timeout=0.2, shutdown_timeout=0.5)
        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    pass
        import os, signal
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            wl.run_sync(stubborn())
        except KeyboardInterrupt as exc:
            notes = getattr(exc, "__notes__", [str(exc)])
            print("KeyboardInterrupt", any("keeps running" in n for n in notes))
        """,
        timeout=20,
    )
    assert r.stdout.strip().splitlines()[-1] == "KeyboardInterrupt True", r.stdout + r.stderr


# -- 3: task factories ------------------------------------------------------------------


def test_a_raising_task_factory_fails_its_call_not_the_worker() -> None:
    wl = loopbridge.WorkerLoop(name="factory", shutdown_timeout=1)
    try:
        loop = wl.loop
        calls = {"n": 0}

        def flaky(loop: Any, coro: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] % 2:
                raise LookupError("factory says no")
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.call_soon_threadsafe(loop.set_task_factory, flaky)
        # a burst of submits lands in one drain: a failure must not strand the rest
        futs = [wl.submit(nap(0.01)) for _ in range(10)]
        _, pending = concurrent.futures.wait(futs, timeout=5)
        assert not pending
        errors = [f.exception() for f in futs if f.exception() is not None]
        assert 4 <= len(errors) <= 6
        assert all(isinstance(e, LookupError) for e in errors)
        notes = getattr(errors[0], "__notes__", None) or [str(errors[0])]
        assert any("task factory" in n and "'factory'" in n for n in notes)
        outcomes = [outcome_of(lambda: wl.run_sync(quick(), timeout=2)) for _ in range(2)]
        assert sorted(o.split(":")[0] for o in outcomes) == ["LookupError", "value"]
        loop.call_soon_threadsafe(loop.set_task_factory, None)
        time.sleep(0.05)
        assert wl.run_sync(quick(), timeout=2) == 1
    finally:
        wl.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="context= exists from 3.11")
def test_a_classic_loop_coro_task_factory_works() -> None:
    """`factory(loop, coro)` without **kwargs is refused by create_task(context=...)."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    made: list[str] = []

    def classic(loop: Any, coro: Any) -> Any:
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop)

    async def sets() -> str:
        var.set("from the coroutine")
        await asyncio.sleep(0)
        return "ok"

    wl = loopbridge.WorkerLoop(name="classic", shutdown_timeout=1)
    try:
        loop = wl.loop
        loop.call_soon_threadsafe(loop.set_task_factory, classic)
        time.sleep(0.05)
        assert wl.run_sync(sets(), timeout=2) == "ok"
        assert var.get() == "from the coroutine"  # written back as `await` would
        assert wl.submit(quick()).result(2) == 1
        assert len(made) == 2
    finally:
        wl.close()


# -- 5: close() and submit() -------------------------------------------------------------


def test_close_fails_pending_submit_futures_with_worker_closed_error() -> None:
    wl = loopbridge.WorkerLoop(name="closing", shutdown_timeout=1)
    fut = wl.submit(nap(3600))
    time.sleep(0.05)
    wl.close()
    assert fut.done() and not fut.cancelled()
    with pytest.raises(loopbridge.WorkerClosedError, match="was closed"):
        fut.result(0)


def test_cancelling_a_submit_future_still_says_cancelled(worker: loopbridge.WorkerLoop) -> None:
    fut = worker.submit(nap(3600))
    time.sleep(0.05)
    assert fut.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(1)
    # the task's cancellation runs on the loop after the future said "cancelled"
    deadline = time.monotonic() + 2
    while _tasks_left(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _tasks_left(worker) == 0


# -- 7: one rule for huge and infinite timeouts -----------------------------------------


@pytest.mark.parametrize("forever", [math.inf, 1e12, threading.TIMEOUT_MAX])
def test_infinite_and_huge_timeouts_mean_no_bound(forever: float) -> None:
    wl = loopbridge.WorkerLoop(name="inf", cancel_timeout=forever, shutdown_timeout=forever)
    try:
        assert wl.run_sync(nap(0.01), timeout=forever) == "slept"
        assert wl.submit(quick()).result(timeout=forever) == 1
        assert loopbridge.map_sync(nap, [0.01] * 3, timeout=forever, worker=wl) == ["slept"] * 3
        assert loopbridge.gather_sync(quick(), worker=wl, timeout=forever) == [1]

        async def make_queue() -> asyncio.Queue[int]:
            return asyncio.Queue()

        face = loopbridge.sync_face(make_queue(), worker=wl, timeout=forever)
        face.put_nowait(5)
        assert face.get() == 5
        assert loopbridge.syncify(nap, worker=wl, timeout=forever)(0.0) == "slept"
    finally:
        wl.close(timeout=forever)
    assert wl.closed


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (math.nan, ValueError), ("5", TypeError), (True, TypeError)],
)
def test_bad_timeouts_are_refused_before_anything_is_scheduled(
    worker: loopbridge.WorkerLoop, bad: object, error: type[Exception]
) -> None:
    coro = quick()
    with pytest.raises(error, match="timeout"):
        worker.run_sync(coro, timeout=bad)  # type: ignore[arg-type]
    assert coro.cr_frame is None  # closed, never scheduled
    with pytest.raises(error, match="cancel_timeout"):
        loopbridge.WorkerLoop(cancel_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(error, match="timeout"):
        loopbridge.cancel_tasks(match="x", timeout=bad)  # type: ignore[arg-type]


# -- 10: fork -----------------------------------------------------------------------------


@POSIX
@pytest.mark.timeout(30)
def test_submit_future_pending_at_fork_fails_in_the_child() -> None:
    r = run_script(
        """
        import asyncio, os, loopbridge
        async def slow():
            await asyncio.sleep(1)
            return "parent's"
        fut = loopbridge.submit(slow())
        pid = os.fork()
        if pid == 0:
            try:
                fut.result(timeout=5)
                print("child: got a value", flush=True)
            except loopbridge.WorkerClosedError as exc:
                print("child: WorkerClosedError", "forked" in str(exc), flush=True)
            except BaseException as exc:
                print("child:", type(exc).__name__, flush=True)
            yes = loopbridge.run_sync(asyncio.sleep(0, "yes"), timeout=5)
            print("child serves:", yes, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent:", fut.result(timeout=5), flush=True)
        """,
        timeout=25,
    )
    lines = r.stdout.splitlines()
    assert "child: WorkerClosedError True" in lines, r.stdout + r.stderr
    assert "child serves: yes" in lines
    assert "parent: parent's" in lines


# -- 11: a deadlock cycle through a future ----------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_deadlock_cycle_through_a_future_is_detected_both_ways() -> None:
    a = loopbridge.WorkerLoop(name="A", cancel_timeout=1, shutdown_timeout=1)
    b = loopbridge.WorkerLoop(name="B", cancel_timeout=1, shutdown_timeout=1)
    try:
        started = threading.Event()

        async def b_calls_into_a() -> str:
            started.set()
            await asyncio.sleep(0.2)  # A blocks on our future meanwhile
            return a.run_sync(quick(), timeout=5) and "b done"

        async def a_blocks_on_b() -> Any:
            fut = b.submit(b_calls_into_a())
            started.wait(5)
            return fut.result(timeout=10)  # on A's thread: a cycle A -> B -> A

        with pytest.raises(loopbridge.DeadlockError, match="deadlock"):
            a.run_sync(a_blocks_on_b(), timeout=10)

        # the other order: B's thread is already blocked in run_sync into A when
        # A's thread starts waiting on a future that only B can finish
        async def a_waits_on(fut: Any) -> Any:
            return fut.result(timeout=10)

        async def b_side() -> Any:
            fut = b.submit(quick())  # B must run it, but B's thread is about to block
            return a.run_sync(a_waits_on(fut), timeout=10)

        t0 = time.monotonic()
        with pytest.raises(loopbridge.DeadlockError, match="deadlock"):
            b.run_sync(b_side(), timeout=20)
        assert time.monotonic() - t0 < 5
        # both workers still serve
        assert _served(a) < 1 and _served(b) < 1
    finally:
        a.close()
        b.close()


# -- 12 and 13: exit and revival ---------------------------------------------------------


@pytest.mark.timeout(30)
def test_exit_does_not_hang_on_a_non_daemon_thread_blocked_in_run_sync() -> None:
    r = run_script(
        """
        import asyncio, threading, time, loopbridge
        async def forever():
            await asyncio.sleep(3600)
        def work():
            try:
                loopbridge.run_sync(forever())
            except loopbridge.WorkerClosedError:
                print("thread: WorkerClosedError", flush=True)
        threading.Thread(target=work).start()   # not a daemon
        time.sleep(0.3)
        print("main: done", flush=True)
        """,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["main: done", "thread: WorkerClosedError"]


@pytest.mark.timeout(30)
def test_stopped_worker_comes_back_under_w_error() -> None:
    r = run_script(
        """
        import asyncio, warnings, loopbridge
        warnings.simplefilter("error")
        wl = loopbridge.WorkerLoop(name="stopped")
        async def stop():
            asyncio.get_running_loop().stop()
        wl.run_sync(stop(), timeout=5)
        import time; time.sleep(0.2)
        try:
            wl.run_sync(asyncio.sleep(0, 1), timeout=5)
        except loopbridge.LoopBridgeWarning as w:
            print("warned:", "started a fresh event loop" in str(w), flush=True)
        print("served:", wl.run_sync(asyncio.sleep(0, 2), timeout=5), flush=True)
        wl.close()
        """,
        timeout=20,
    )
    assert r.stdout.splitlines() == ["warned: True", "served: 2"], r.stdout + r.stderr


# -- 14: the smaller ones ----------------------------------------------------------------


def test_worker_loop_follows_python_dev_mode() -> None:
    r = run_script(
        """
        import asyncio, loopbridge
        async def debug():
            return asyncio.get_running_loop().get_debug()
        print(loopbridge.run_sync(debug(), timeout=5), asyncio.run(debug()))
        print(loopbridge.WorkerLoop(debug=False).run_sync(debug(), timeout=5))
        """,
        env={"PYTHONDEVMODE": "1"},
    )
    assert r.stdout.split() == ["True", "True", "False"], r.stdout + r.stderr


def test_gather_sync_refuses_a_future_of_another_loop_up_front(
    worker: loopbridge.WorkerLoop,
) -> None:
    other = asyncio.new_event_loop()
    try:
        fut = other.create_future()
        coro = quick()
        with pytest.raises(ValueError, match="bound to event loop"):
            loopbridge.gather_sync(coro, fut, worker=worker)
        assert coro.cr_frame is None  # closed, never started
    finally:
        other.close()


@pytest.mark.parametrize("obj", [42, "text", None, 3.5])
def test_sync_face_refuses_plain_values(obj: object) -> None:
    with pytest.raises(TypeError, match="sync_face"):
        loopbridge.sync_face(obj)


def test_where_task_refuses_a_non_task_argument() -> None:
    with pytest.raises(TypeError, match="where_task"):
        loopbridge.where_task(print)  # type: ignore[arg-type]


def test_injector_really_interrupts() -> None:
    """The harness itself: opcode 1 of a call raises, the count grows with n."""
    wl = loopbridge.WorkerLoop(name="harness")
    try:
        _served(wl)
        inj = Injector(1)
        coro = quick()
        with inj.armed():
            assert outcome_of(lambda: wl.run_sync(coro)) == "KeyboardInterrupt"
        coro.close()
        assert inj.fired_at is not None
        _served(wl)
    finally:
        wl.close()
    assert os.path.isdir(os.path.dirname(loopbridge.__file__))


# -- 6: face iterators dropped inside a reference cycle ------------------------------------


@pytest.mark.timeout(30)
def test_face_iterators_collected_in_a_cycle_are_closed_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio's asyncgen finaliser and the face's own cleanup both used to aclose() the
    generator: "aclose(): asynchronous generator is already running" twice per iterator."""
    import gc

    closed: list[int] = []

    async def numbers() -> Any:
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0.01)  # cleanup that suspends: where the race bit
            closed.append(1)

    wl = loopbridge.WorkerLoop(name="cycles", shutdown_timeout=2)
    numbers_sync = loopbridge.syncify(numbers, worker=wl)

    def drop_in_a_cycle() -> None:
        it = iter(numbers_sync())
        assert next(it) == 0
        cycle: list[Any] = [it]
        cycle.append(cycle)

    async def collect_here() -> None:
        gc.collect()

    try:
        with caplog.at_level("ERROR"):
            for _ in range(10):
                drop_in_a_cycle()
            gc.collect()  # collected in this thread
            for _ in range(10):
                drop_in_a_cycle()
            wl.run_sync(collect_here(), timeout=5)  # collected on the worker thread
            deadline = time.monotonic() + 5
            while len(closed) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert len(closed) == 20
        assert not [r.getMessage() for r in caplog.records], caplog.text
    finally:
        wl.close()


def test_breaking_out_of_a_face_iterator_still_closes_it_at_once(
    worker: loopbridge.WorkerLoop,
) -> None:
    closed: list[str] = []

    async def numbers() -> Any:
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)
            closed.append("closed")

    for i in loopbridge.syncify(numbers, worker=worker)():
        if i == 2:
            break
    assert closed == ["closed"]  # deterministic: before the next line, not at some GC


# -- 8 and 9: map_sync inputs and concurrency -----------------------------------------------


@pytest.mark.timeout(30)
def test_map_sync_over_an_input_that_itself_uses_the_bridge(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def numbers(n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    items = loopbridge.syncify(numbers, worker=worker)(25)  # next() calls run_sync
    assert loopbridge.map_sync(double, items, worker=worker, timeout=10) == [
        2 * i for i in range(25)
    ]
    # a plain generator too, consumed lazily and in order
    seen: list[int] = []

    def gen() -> Any:
        for i in range(50):
            seen.append(i)
            yield i

    assert loopbridge.map_sync(double, gen(), concurrency=4, worker=worker, timeout=10) == [
        2 * i for i in range(50)
    ]
    assert seen == list(range(50))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sized", [True, False], ids=["list", "generator"])
def test_map_sync_starts_no_more_runners_than_items(
    worker: loopbridge.WorkerLoop, sized: bool
) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    async def count_tasks() -> int:
        return len(asyncio.all_tasks())

    counts: list[int] = []

    async def counting(x: int) -> int:
        counts.append(len(asyncio.all_tasks()))
        return await double(x)

    items = [1, 2, 3] if sized else (i for i in [1, 2, 3])
    t0 = time.monotonic()
    out = loopbridge.map_sync(counting, items, concurrency=200_000, timeout=2, worker=worker)
    assert out == [2, 4, 6]
    assert time.monotonic() - t0 < 1.0
    assert max(counts) <= 3 + 2  # three runners, the gather itself, at most one spare
    assert worker.run_sync(count_tasks(), timeout=2) == 1


def test_map_sync_refuses_a_future_as_its_items(worker: loopbridge.WorkerLoop) -> None:
    """An asyncio.Future is iterable (__iter__ is its __await__): found by the fuzz run."""
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="expects an iterable of items second"):
            loopbridge.map_sync(nap, loop.create_future(), worker=worker)
    finally:
        loop.close()
