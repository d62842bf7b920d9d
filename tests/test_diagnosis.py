"""9. Cross-loop failures keep their type and gain an explanation."""

from __future__ import annotations

import asyncio
import sys

import pytest

import loopbridge


def _all_text(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def test_object_bound_to_another_loop(worker: loopbridge.WorkerLoop) -> None:
    async def bind_event() -> asyncio.Event:
        ev = asyncio.Event()
        waiter = asyncio.ensure_future(ev.wait())
        await asyncio.sleep(0)
        waiter.cancel()
        return ev

    with loopbridge.WorkerLoop(name="other") as other:
        ev = other.run_sync(bind_event(), timeout=5)
        with pytest.raises(RuntimeError) as info:
            worker.run_sync(ev.wait(), timeout=5)
    exc = info.value
    text = _all_text(exc)
    assert "bound to a different event loop" in text  # the original message is kept
    assert "loopbridge: this code ran on loopbridge's worker loop 'test'" in text
    assert "created on another event loop" in text
    if sys.version_info >= (3, 11):
        assert "loopbridge:" not in str(exc)  # a real note, not a changed message


def test_caller_loop_is_named_when_one_runs(worker: loopbridge.WorkerLoop) -> None:
    async def main() -> str:
        ev = asyncio.Event()
        waiter = asyncio.ensure_future(ev.wait())
        await asyncio.sleep(0)
        try:
            worker.run_sync(ev.wait(), timeout=5)
        except RuntimeError as exc:
            return _all_text(exc)
        finally:
            waiter.cancel()
        return ""

    text = asyncio.run(main())
    assert "the loop running in the calling thread 'MainThread'" in text


def test_closed_loop(worker: loopbridge.WorkerLoop) -> None:
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    loop.close()

    async def touch() -> None:
        fut.get_loop().call_soon(print)

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(touch(), timeout=5)
    text = _all_text(info.value)
    assert text.startswith("Event loop is closed")
    assert "whose event loop is already closed" in text


def test_note_added_once_across_nested_bridges(worker: loopbridge.WorkerLoop) -> None:
    loop = asyncio.new_event_loop()
    loop.close()

    async def touch() -> None:
        loop.call_soon(print)

    with loopbridge.WorkerLoop(name="outer") as outer:

        async def nested() -> None:
            worker.run_sync(touch(), timeout=5)

        with pytest.raises(RuntimeError) as info:
            outer.run_sync(nested(), timeout=5)
    assert _all_text(info.value).count("loopbridge:") == 1


def test_unrelated_errors_get_no_note(worker: loopbridge.WorkerLoop) -> None:
    async def fail() -> None:
        raise RuntimeError("something else entirely")

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(fail(), timeout=5)
    assert _all_text(info.value) == "something else entirely"
