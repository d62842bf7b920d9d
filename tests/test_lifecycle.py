"""7. Life cycle: close, exit, fork, recovery."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any

import pytest
from tests.conftest import run_script

import loopbridge


def _call_in_thread(
    wl: loopbridge.WorkerLoop, coro: Coroutine[Any, Any, Any]
) -> tuple[threading.Thread, list[BaseException]]:
    """run_sync(coro) in a daemon thread; what it raises lands in the list."""
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            wl.run_sync(coro)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=caller, daemon=True)
    t.start()
    return t, errors


async def value(v: object) -> object:
    await asyncio.sleep(0)
    return v


def test_lazy_start_and_states() -> None:
    wl = loopbridge.WorkerLoop(name="lazy")
    assert wl.state == "created" and wl.thread is None
    assert not any(t.name == "loopbridge-lazy" for t in threading.enumerate())
    assert wl.run_sync(value(1), timeout=5) == 1
    assert wl.state == "running" and wl.is_running
    assert wl.thread is not None and wl.thread.daemon and wl.thread.name == "loopbridge-lazy"
    wl.close()
    assert wl.state == "closed" and wl.closed
    assert not wl.thread.is_alive()


def test_close_is_idempotent_and_calls_after_close_fail(worker: loopbridge.WorkerLoop) -> None:
    worker.run_sync(value(1), timeout=5)
    loop = worker.loop
    worker.close()
    worker.close()
    assert loop.is_closed()
    coro = value(2)
    with pytest.raises(loopbridge.WorkerClosedError, match="'test' is closed; create a new"):
        worker.run_sync(coro)
    assert coro.cr_frame is None  # refused and closed: no "never awaited" warning on top
    with pytest.raises(loopbridge.WorkerClosedError):
        worker.submit(value(3))


def test_close_never_started_worker() -> None:
    wl = loopbridge.WorkerLoop(name="never")
    wl.close()
    assert wl.closed and wl.thread is None


def test_context_manager_closes() -> None:
    with loopbridge.WorkerLoop(name="cm") as wl:
        loop = wl.loop
        assert wl.run_sync(value("x"), timeout=5) == "x"
    assert loop.is_closed() and wl.closed


def test_default_worker_restarts_after_close() -> None:
    first = loopbridge.default_worker()
    loopbridge.run_sync(value(1), timeout=5)
    first.close()
    assert loopbridge.run_sync(value(2), timeout=5) == 2
    second = loopbridge.default_worker()
    assert second is not first and second.is_running


@pytest.mark.timeout(15)
def test_close_cancels_tasks_finalises_asyncgens_and_executor() -> None:
    events: list[str] = []
    wl = loopbridge.WorkerLoop(name="fin")

    async def background() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            events.append("task finally")

    async def agen():  # type: ignore[no-untyped-def]
        try:
            yield 1
            yield 2
        finally:
            events.append("agen finally")

    async def setup() -> None:
        asyncio.get_running_loop().create_task(background())  # noqa: LB007 - left on purpose
        it = agen()
        await it.__anext__()  # left suspended: only shutdown_asyncgens finalises it
        global _keep
        _keep = it
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)

    wl.run_sync(setup(), timeout=5)
    executor = wl.loop._default_executor  # type: ignore[attr-defined]
    assert executor is not None
    wl.close()
    assert "task finally" in events
    assert "agen finally" in events
    assert executor._shutdown  # shut down, not just abandoned


@pytest.mark.timeout(15)
def test_pending_calls_fail_when_closed_from_another_thread(worker: loopbridge.WorkerLoop) -> None:
    started = threading.Event()

    async def long() -> None:
        started.set()
        await asyncio.sleep(60)

    t, errors = _call_in_thread(worker, long())
    assert started.wait(5)
    worker.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1
    # cancelled by close, not by its caller: a clear error, not a bare CancelledError
    assert isinstance(errors[0], loopbridge.WorkerClosedError)
    assert "'test' was closed while this call was waiting" in str(errors[0])
    assert isinstance(errors[0].__cause__, asyncio.CancelledError)


@pytest.mark.timeout(20)
def test_clean_exit_with_pending_work_no_destroyed_pending_warning() -> None:
    proc = run_script(
        """
        import asyncio, threading, loopbridge

        async def forever(tag):
            try:
                await asyncio.sleep(3600)
            finally:
                print("cleanup", tag, flush=True)

        async def spawn():
            for i in range(3):
                asyncio.get_running_loop().create_task(forever(i))

        loopbridge.run_sync(spawn(), timeout=5)
        loopbridge.submit(forever("submitted"))
        loopbridge.run_sync(asyncio.sleep(0.05))  # it has started by now
        # Submitted at the last moment: it may be cancelled before it starts (then
        # its body never runs, as with asyncio.run), but never warned about.
        loopbridge.submit(forever("last-moment"))
        print("exiting", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "exiting" in out
    for tag in ("0", "1", "2", "submitted"):
        assert f"cleanup {tag}" in out
    assert "Task was destroyed but it is pending" not in proc.stderr
    assert "never awaited" not in proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.timeout(30)
def test_exit_is_bounded_when_a_coroutine_blocks_the_worker_thread() -> None:
    proc = run_script(
        """
        import time, loopbridge
        wl = loopbridge.WorkerLoop(name="blocked", shutdown_timeout=1)

        async def blocks():
            time.sleep(3600)  # a synchronous call: nothing can cancel it

        wl.submit(blocks())
        time.sleep(0.2)
        print("exiting", flush=True)
        """,
        timeout=20,
    )
    assert proc.returncode == 0
    assert "exiting" in proc.stdout
    assert "did not finish closing within 1.0s" in proc.stderr


@pytest.mark.timeout(20)
def test_exit_when_cancellation_is_ignored_is_bounded_and_explained() -> None:
    proc = run_script(
        """
        import asyncio, loopbridge
        wl = loopbridge.WorkerLoop(name="stubborn", shutdown_timeout=0.5)

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    pass

        wl.submit(stubborn())
        wl.run_sync(asyncio.sleep(0.1))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ignored cancellation" in proc.stderr
    assert "stubborn" in proc.stderr
    assert "Task was destroyed but it is pending" not in proc.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(30)
def test_fork_child_gets_a_fresh_worker() -> None:
    proc = run_script(
        """
        import asyncio, os, sys, threading, warnings, loopbridge
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads

        async def info():
            await asyncio.sleep(0.01)
            return os.getpid(), id(asyncio.get_running_loop()), threading.current_thread().name

        wl = loopbridge.WorkerLoop(name="explicit")
        parent = loopbridge.run_sync(info(), timeout=5)
        wl.run_sync(info(), timeout=5)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                child = loopbridge.run_sync(info(), timeout=5)
                explicit = wl.run_sync(info(), timeout=5)
                me = os.getpid()
                ok = child[0] == me and child[1] != parent[1] and explicit[0] == me
                os.write(w, b"ok" if ok else repr((child, parent)).encode())
            except BaseException as exc:
                os.write(w, repr(exc).encode())
            finally:
                os._exit(0)
        os.close(w)
        msg = os.read(r, 1000).decode()
        _, status = os.waitpid(pid, 0)
        # the parent's worker is untouched by the child
        again = loopbridge.run_sync(info(), timeout=5)
        print(msg, again[1] == parent[1])
        """,
        timeout=25,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok True", proc.stdout + proc.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(30)
def test_fork_while_another_thread_is_mid_call() -> None:
    proc = run_script(
        """
        import asyncio, os, threading, time, warnings, loopbridge
        warnings.simplefilter("ignore", DeprecationWarning)
        stop = False

        def hammer():
            while not stop:
                loopbridge.run_sync(asyncio.sleep(0), timeout=5)

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
        for t in threads: t.start()
        time.sleep(0.2)
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                v = loopbridge.run_sync(asyncio.sleep(0.01, "child-ok"), timeout=5)
                os._exit(0 if v == "child-ok" else 3)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
        stop = True
        print("ok")
        """,
        timeout=25,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.timeout(15)
def test_stopped_loop_is_replaced_with_a_warning(worker: loopbridge.WorkerLoop) -> None:
    async def stop_it() -> str:
        asyncio.get_running_loop().stop()  # user code stops the worker's loop
        return "stopped"

    old = worker.loop
    assert worker.run_sync(stop_it(), timeout=5) == "stopped"
    worker.thread.join(5)  # type: ignore[union-attr]
    assert old.is_closed()
    with pytest.warns(
        loopbridge.LoopBridgeWarning, match=r"'test' had its event loop stopped.*fresh"
    ):
        assert worker.run_sync(value("again"), timeout=5) == "again"
    assert worker.loop is not old and worker.is_running
    assert worker.thread is not None and worker.thread.name.startswith("loopbridge-test")


@pytest.mark.timeout(15)
def test_loop_stopped_from_outside_fails_waiting_calls_then_recovers() -> None:
    wl = loopbridge.WorkerLoop(name="outside", shutdown_timeout=1)
    started = threading.Event()

    async def wait() -> None:
        started.set()
        await asyncio.sleep(60)

    t, errors = _call_in_thread(wl, wait())
    assert started.wait(5)
    wl.loop.call_soon_threadsafe(wl.loop.stop)
    t.join(5)
    assert not t.is_alive() and len(errors) == 1
    assert isinstance(errors[0], loopbridge.WorkerClosedError)
    assert "its event loop stopped" in str(errors[0])
    with pytest.warns(loopbridge.LoopBridgeWarning):
        assert wl.run_sync(value(5), timeout=5) == 5
    wl.close()


def test_repr_is_informative(worker: loopbridge.WorkerLoop) -> None:
    worker.start()
    r = repr(worker)
    assert "name='test'" in r and "state=running" in r and "loopbridge-test" in r


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
def test_every_thread_the_library_starts_is_named() -> None:
    before = {t.ident for t in threading.enumerate()}
    with loopbridge.WorkerLoop(name="named") as wl:

        async def use_executor() -> None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: None)

        wl.run_sync(use_executor(), timeout=5)
        new = [t for t in threading.enumerate() if t.ident not in before]
        ours = [t for t in new if not t.name.startswith("asyncio")]
        assert [t.name for t in ours] == ["loopbridge-named"]
