"""Programs with two loops: run_async, the blocking warning, executor-like close, and
notes that name the loop an object belongs to (issue 10)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import time
import warnings
from typing import Any

import pytest
from tests.conftest import all_text, bind_event, run_script, start_script, wait_for_line

import loopbridge

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def _task_count(wl: loopbridge.WorkerLoop) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # not this one

    return wl.run_sync(count(), timeout=5)


# --- run_async -----------------------------------------------------------------------


def test_run_async_runs_on_the_worker_and_keeps_the_caller_loop_free(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def where() -> str:
        await asyncio.sleep(0.2)
        return threading.current_thread().name

    async def main() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        name = await worker.run_async(where(), timeout=5)
        t.cancel()
        return name, ticks

    name, ticks = asyncio.run(main())
    assert name == "loopbridge-test"
    assert ticks >= 5  # the caller's loop ran meanwhile (run_sync would have frozen it)


def test_run_async_context_variables_behave_as_for_run_sync(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def handler() -> str:
        seen = request_id.get()
        request_id.set("set-on-worker")
        return seen

    async def main() -> tuple[str, str]:
        request_id.set("req-42")
        seen = await worker.run_async(handler())
        return seen, request_id.get()

    assert asyncio.run(main()) == ("req-42", "set-on-worker")


def test_cancelling_the_caller_cancels_the_remote_task_and_waits_for_its_cleanup(
    worker: loopbridge.WorkerLoop,
) -> None:
    events: list[str] = []

    async def remote() -> None:
        events.append("started")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # a cleanup that takes a while
            events.append("cleaned up")
            raise

    async def main() -> int:
        task = asyncio.ensure_future(worker.run_async(remote()))
        while not events:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert events == ["started", "cleaned up"]  # cleanup done before CancelledError
        return len(asyncio.all_tasks()) - 1

    assert asyncio.run(main()) == 0  # nothing left on the caller's loop
    assert _task_count(worker) == 0  # nor on the worker's


def test_run_async_timeout_cancels_and_raises_timeout_error(
    worker: loopbridge.WorkerLoop,
) -> None:
    cleaned = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"run_async\(\) timed out after 0.2s.*slow"):
            await worker.run_async(slow(), timeout=0.2)
        assert time.monotonic() - t0 < 2
        assert cleaned.is_set()

    asyncio.run(main())
    assert _task_count(worker) == 0


def test_remote_errors_and_cancellations_come_back_as_they_are(
    worker: loopbridge.WorkerLoop,
) -> None:
    class Boom(Exception):
        pass

    async def fail() -> None:
        await asyncio.sleep(0)
        raise Boom("from the worker")

    async def cancelled_there() -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(1)

    async def main() -> None:
        with pytest.raises(Boom, match="from the worker") as info:
            await worker.run_async(fail())
        assert info.traceback[-1].name == "fail"  # the coroutine's own frame
        with pytest.raises(asyncio.CancelledError):
            await worker.run_async(cancelled_there())

    asyncio.run(main())


def test_run_async_on_the_worker_itself_just_awaits(worker: loopbridge.WorkerLoop) -> None:
    async def inner() -> str:
        return threading.current_thread().name

    async def outer() -> str:
        return await worker.run_async(inner(), timeout=5)  # no DeadlockError: it awaits

    assert worker.run_sync(outer(), timeout=5) == "loopbridge-test"

    async def too_slow() -> str:
        return await worker.run_async(asyncio.sleep(5), timeout=0.1)

    with pytest.raises(TimeoutError, match="on worker loop 'test'"):
        worker.run_sync(too_slow(), timeout=5)


def test_run_async_refuses_bad_input_before_scheduling(worker: loopbridge.WorkerLoop) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="awaitable"):
            await worker.run_async(42)  # type: ignore[arg-type]
        coro = asyncio.sleep(0)
        with pytest.raises(ValueError, match="timeout"):
            await worker.run_async(coro, timeout=-1)

    asyncio.run(main())
    assert _task_count(worker) == 0


def test_module_level_run_async_uses_the_default_worker() -> None:
    async def name() -> str:
        return threading.current_thread().name

    async def main() -> str:
        return await loopbridge.run_async(name(), timeout=5)

    assert asyncio.run(main()) == "loopbridge-default"


def test_a_closing_worker_fails_run_async_with_worker_closed_error() -> None:
    wl = loopbridge.WorkerLoop(name="closing", shutdown_timeout=1)

    async def main() -> None:
        fut = asyncio.ensure_future(wl.run_async(asyncio.sleep(60)))
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, wl.close)
        with pytest.raises(loopbridge.WorkerClosedError, match="'closing' was closed"):
            await fut

    asyncio.run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.run cancels on Ctrl-C in 3.11+")
def test_real_ctrl_c_under_asyncio_run_cancels_the_remote_task() -> None:
    proc = start_script(
        "import asyncio, loopbridge\n"
        "async def remote():\n"
        "    try:\n"
        "        await asyncio.sleep(60)\n"
        "    except asyncio.CancelledError:\n"
        "        await asyncio.sleep(0.2)\n"
        "        print('remote cleaned up', flush=True)\n"
        "        raise\n"
        "async def main():\n"
        "    print('waiting', flush=True)\n"
        "    await loopbridge.run_async(remote())\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except KeyboardInterrupt:\n"
        "    wl = loopbridge.default_worker()\n"
        "    async def left():\n"
        "        return len(asyncio.all_tasks()) - 1\n"
        "    print('KeyboardInterrupt; tasks left on the worker:', wl.run_sync(left()))\n"
    )
    try:
        wait_for_line(proc, "waiting")
        time.sleep(0.2)
        proc.send_signal(__import__("signal").SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert out.splitlines() == [
        "remote cleaned up",
        "KeyboardInterrupt; tasks left on the worker: 0",
    ]
    assert "Traceback" not in err


# --- a sync call that blocks a running loop says so ---------------------------------------


async def _two() -> int:
    await asyncio.sleep(0)
    return 2


def test_run_sync_in_a_coroutine_warns_once_per_call_site_and_still_works(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def app() -> list[int]:
        return [worker.run_sync(_two(), timeout=5) for _ in range(3)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: once per call site
        assert asyncio.run(app()) == [2, 2, 2]
    ours = [w for w in caught if issubclass(w.category, loopbridge.LoopBridgeWarning)]
    assert len(ours) == 1
    w = ours[0]
    assert w.filename == __file__  # the caller's line, not loopbridge's
    assert "run_sync(_two(...)) blocks the event loop running in this thread" in str(w.message)
    assert "in coroutine" in str(w.message) and "app()" in str(w.message)
    assert "`await loopbridge.run_async(_two(...))`" in str(w.message)


def test_no_warning_from_threads_or_module_level_code(worker: loopbridge.WorkerLoop) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert worker.run_sync(_two(), timeout=5) == 2  # a plain thread: no loop runs

        async def cell_like() -> Any:
            # Module-level code running while a loop runs (what a notebook cell is).
            scope = {"worker": worker, "_two": _two}
            exec(compile("result = worker.run_sync(_two(), timeout=5)", "<cell>", "exec"), scope)
            return scope["result"]

        assert asyncio.run(cell_like()) == 2


async def _two_later() -> int:
    # Long enough that the caller surely reaches result() before it is done: the
    # warning is for a call that would block, and a done future never blocks.
    await asyncio.sleep(0.5)
    return 2


def test_future_result_in_a_coroutine_warns(worker: loopbridge.WorkerLoop) -> None:
    async def app() -> int:
        fut = worker.submit(_two_later())
        with pytest.warns(loopbridge.LoopBridgeWarning, match=r"Future.result\(\) of a submit"):
            return fut.result(timeout=5)

    assert asyncio.run(app()) == 2


def test_result_of_a_done_future_in_a_coroutine_does_not_warn(
    worker: loopbridge.WorkerLoop,
) -> None:
    fut = worker.submit(_two())
    assert fut.result(timeout=5) == 2  # done now

    async def app() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return fut.result()  # returns at once: nothing is blocked

    assert asyncio.run(app()) == 2


def test_under_error_filter_the_refused_coroutine_is_closed(worker: loopbridge.WorkerLoop) -> None:
    async def app() -> None:
        coro = _two()
        with pytest.raises(loopbridge.LoopBridgeWarning):
            worker.run_sync(coro)
        assert coro.cr_frame is None  # closed: no "never awaited" warning follows

    with warnings.catch_warnings():
        warnings.simplefilter("error", loopbridge.LoopBridgeWarning)
        asyncio.run(app())


# --- WorkerLoop shuts down like an executor -----------------------------------------------


def test_leaving_with_lets_submitted_work_finish() -> None:
    finished: list[int] = []

    async def job(i: int) -> int:
        await asyncio.sleep(0.3)
        finished.append(i)
        return i

    with loopbridge.WorkerLoop(name="exec-like") as wl:
        futs = [wl.submit(job(i)) for i in range(5)]
    assert [f.result(timeout=0) for f in futs] == [0, 1, 2, 3, 4]
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert wl.state == "closed"


def test_leaving_with_cancels_what_outlasts_shutdown_timeout_with_worker_closed_error() -> None:
    with loopbridge.WorkerLoop(name="bounded", shutdown_timeout=0.5) as wl:
        fut = wl.submit(asyncio.sleep(60))
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 3
    with pytest.raises(loopbridge.WorkerClosedError, match="'bounded' was closed"):
        fut.result(timeout=0)
    assert not fut.cancelled()  # never a bare cancellation the caller did not ask for


def test_close_cancel_pending_is_the_hard_stop() -> None:
    wl = loopbridge.WorkerLoop(name="hard", shutdown_timeout=2)
    fut = wl.submit(asyncio.sleep(60))
    blocked: list[BaseException] = []

    def caller() -> None:
        try:
            wl.run_sync(asyncio.sleep(60))
        except BaseException as exc:
            blocked.append(exc)

    t = threading.Thread(target=caller)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    wl.close(cancel_pending=True)
    t.join(5)
    assert time.monotonic() - t0 < 1.5
    assert isinstance(blocked[0], loopbridge.WorkerClosedError)
    with pytest.raises(loopbridge.WorkerClosedError):
        fut.result(timeout=0)


def test_no_new_calls_while_closing_gracefully() -> None:
    wl = loopbridge.WorkerLoop(name="draining", shutdown_timeout=5)
    started = threading.Event()

    async def job() -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "done"

    fut = wl.submit(job())
    started.wait(5)
    closer = threading.Thread(target=wl.close, kwargs={"cancel_pending": False})
    closer.start()
    for _ in range(500):  # until the close has begun (it then waits for job())
        if wl.state == "closing":
            break
        time.sleep(0.01)
    with pytest.raises(loopbridge.WorkerClosedError, match="'draining' is closing"):
        wl.run_sync(asyncio.sleep(0))
    closer.join(5)
    assert fut.result(timeout=0) == "done"
    with pytest.raises(TypeError, match="cancel_pending must be True or False"):
        wl.close(cancel_pending="yes")  # type: ignore[arg-type]


# --- notes that name the object's loop -------------------------------------------------------


def test_note_names_the_worker_the_object_belongs_to(worker: loopbridge.WorkerLoop) -> None:
    with loopbridge.WorkerLoop(name="pool-home") as other:
        ev = other.run_sync(bind_event(), timeout=5)
        with pytest.raises(RuntimeError) as info:
            worker.run_sync(ev.wait(), timeout=5)
    text = all_text(info.value)
    assert "created on another event loop: loopbridge's worker loop 'pool-home'" in text
    assert "running in thread 'loopbridge-pool-home'" in text


def test_object_made_through_the_bridge_used_by_the_apps_own_loop(
    worker: loopbridge.WorkerLoop,
) -> None:
    ev = worker.run_sync(bind_event(), timeout=5)

    async def app() -> str | None:
        try:
            await ev.wait()
        except RuntimeError as exc:
            return loopbridge.explain(exc)
        return None

    note = asyncio.run(app())
    assert note is not None
    assert "created on another event loop: loopbridge's worker loop 'test'" in note
    assert "the object was made through the bridge, and async code on its own loop" in note
    assert "loopbridge.loop_local(make_client)" in note


def test_closed_loop_is_named_with_its_state(worker: loopbridge.WorkerLoop) -> None:
    async def make() -> asyncio.Event:
        return await bind_event()

    ev = asyncio.run(make())  # the loop-per-call pattern: this loop is gone now

    async def use() -> None:
        ev.set()
        await ev.wait()
        asyncio.get_running_loop()  # the Event is set: waiting did not touch its loop
        ev._loop.call_soon(print)  # type: ignore[attr-defined]

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(use(), timeout=5)
    text = all_text(info.value)
    assert "whose event loop is already closed: an event loop loopbridge has not seen" in text
    assert "closed)" in text
    assert "instead of asyncio.run() or a new loop per call" in text


def test_loop_local_loops_are_remembered(worker: loopbridge.WorkerLoop) -> None:
    events = loopbridge.loop_local(asyncio.Event, name="events")

    async def bound() -> asyncio.Event:
        ev = events()
        waiter = asyncio.ensure_future(ev.wait())
        await asyncio.sleep(0)
        waiter.cancel()
        return ev

    async def app() -> str | None:
        ev = await bound()  # this loop's instance
        try:
            worker.run_sync(ev.wait(), timeout=5)  # used on the worker: wrong loop
        except RuntimeError as exc:
            return all_text(exc)
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", loopbridge.LoopBridgeWarning)
        text = asyncio.run(app())
    assert text is not None
    assert "a loop on which loop_local 'events' made an instance" in text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_object_inherited_through_fork_is_named_and_the_fix_fits() -> None:
    proc = run_script(
        """
        import asyncio, os, loopbridge

        async def bind():
            ev = asyncio.Event()
            waiter = asyncio.ensure_future(ev.wait())
            await asyncio.sleep(0)
            waiter.cancel()
            return ev

        ev = loopbridge.run_sync(bind())          # the parent's worker loop
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                loopbridge.run_sync(ev.wait(), timeout=5)   # the child's fresh worker loop
            except RuntimeError as exc:
                print("\\n".join(getattr(exc, "__notes__", [str(exc)])))
                print("PARENT", parent)
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    assert proc.returncode == 0, proc.stderr
    parent = proc.stdout.split("PARENT ")[1].strip()
    assert f"made in process {parent} before it forked this process" in proc.stdout
    # its "running" flag and thread id came with the fork; no thread here runs it
    assert "inherited through fork(): it was running in the parent" in proc.stdout
    assert "create the object in the child" in proc.stdout
    assert "os.register_at_fork(after_in_child=...)" in proc.stdout


def test_object_constructed_outside_a_coroutine_gets_the_specific_fix() -> None:
    """`run_sync(asyncpg.create_pool(dsn))`: the pool is built in the caller, binding
    itself to asyncio.get_event_loop()'s loop there, before the bridge awaits it."""
    proc = run_script(
        """
        import asyncio, warnings, loopbridge
        warnings.simplefilter("ignore", DeprecationWarning)

        class Pool:                      # what asyncpg.create_pool(...) returns
            def __init__(self):
                self._loop = asyncio.get_event_loop()     # as asyncpg's Pool does
                self._ready = self._loop.create_future()
            def __await__(self):
                return self._init().__await__()
            async def _init(self):
                await self._ready        # its connections, on the loop it took
                return self

        try:
            loopbridge.run_sync(Pool(), timeout=5)
        except RuntimeError as exc:
            print("\\n".join(getattr(exc, "__notes__", [str(exc)])))
        """
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "asyncio.get_event_loop() returns outside a coroutine in thread 'MainThread'" in out
    assert "Construct it inside a coroutine" in out
    assert "pool = run_sync(make())" in out


def test_explain_returns_the_note_the_bridge_added(worker: loopbridge.WorkerLoop) -> None:
    with loopbridge.WorkerLoop(name="elsewhere") as other:
        ev = other.run_sync(bind_event(), timeout=5)
        with pytest.raises(RuntimeError) as info:
            worker.run_sync(ev.wait(), timeout=5)
    text = all_text(info.value)
    note = loopbridge.explain(info.value)  # e.g. in a log handler, far from the bridge
    assert note is not None and note.startswith("loopbridge: this code ran on")
    assert text.endswith(note)  # the same note (on 3.10: the message's tail), once
    assert text.count("loopbridge:") == 1


def test_leaving_with_by_ctrl_c_stops_at_once() -> None:
    t0 = time.monotonic()
    with (  # noqa: PT012 - the block is the scenario
        pytest.raises(KeyboardInterrupt),
        loopbridge.WorkerLoop(name="interrupted", shutdown_timeout=5) as wl,
    ):
        fut = wl.submit(asyncio.sleep(60))
        raise KeyboardInterrupt
    assert time.monotonic() - t0 < 2  # no wait for the pending work
    with pytest.raises(loopbridge.WorkerClosedError):
        fut.result(timeout=0)
