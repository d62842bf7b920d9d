"""6. Context variables behave as if the caller had awaited the coroutine."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import loopbridge

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
counter: contextvars.ContextVar[int] = contextvars.ContextVar("counter", default=0)


async def read() -> str:
    await asyncio.sleep(0)
    return request_id.get("<unset>")


async def write(value: str) -> None:
    await asyncio.sleep(0)
    request_id.set(value)
    counter.set(counter.get() + 1)


def test_caller_values_are_visible_inside(worker: loopbridge.WorkerLoop) -> None:
    token = request_id.set("abc")
    try:
        assert worker.run_sync(read(), timeout=5) == "abc"
    finally:
        request_id.reset(token)


def test_values_set_inside_are_visible_after(worker: loopbridge.WorkerLoop) -> None:
    def in_fresh_context() -> tuple[str, int]:
        worker.run_sync(write("set-inside"), timeout=5)
        return request_id.get(), counter.get()

    assert contextvars.Context().run(in_fresh_context) == ("set-inside", 1)


def test_same_as_await(worker: loopbridge.WorkerLoop) -> None:
    """Compare with what plain `await` does in a running loop."""

    async def via_await() -> tuple[str, int]:
        await write("x")
        return request_id.get(), counter.get()

    def via_bridge() -> tuple[str, int]:
        worker.run_sync(write("x"), timeout=5)
        return request_id.get(), counter.get()

    expected = contextvars.Context().run(asyncio.run, via_await())
    assert contextvars.Context().run(via_bridge) == expected


def test_values_set_before_an_exception_are_kept(worker: loopbridge.WorkerLoop) -> None:
    async def set_then_fail() -> None:
        request_id.set("before-error")
        raise ValueError("x")

    def body() -> str:
        with pytest.raises(ValueError, match="x"):
            worker.run_sync(set_then_fail(), timeout=5)
        return request_id.get()

    assert contextvars.Context().run(body) == "before-error"


def test_threads_do_not_see_each_others_values(worker: loopbridge.WorkerLoop) -> None:
    results: dict[int, str] = {}

    def thread_body(i: int) -> None:
        request_id.set(f"t{i}")
        for _ in range(20):
            assert worker.run_sync(read(), timeout=5) == f"t{i}"
        worker.run_sync(write(f"w{i}"), timeout=5)
        results[i] = request_id.get()

    threads = [threading.Thread(target=thread_body, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"w{i}" for i in range(8)}


def test_submit_runs_in_a_copy(worker: loopbridge.WorkerLoop) -> None:
    def body() -> tuple[str, str]:
        request_id.set("caller")
        seen = worker.submit(read()).result(timeout=5)
        worker.submit(write("not-copied-back")).result(timeout=5)
        return seen, request_id.get()

    assert contextvars.Context().run(body) == ("caller", "caller")
