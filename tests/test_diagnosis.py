"""9. Cross-loop failures keep their type and gain an explanation."""

from __future__ import annotations

import asyncio
import sys

import pytest
from tests.conftest import all_text, bind_event

import loopbridge


def test_object_bound_to_another_loop(worker: loopbridge.WorkerLoop) -> None:
    with loopbridge.WorkerLoop(name="other") as other:
        ev = other.run_sync(bind_event(), timeout=5)
        with pytest.raises(RuntimeError) as info:
            worker.run_sync(ev.wait(), timeout=5)
    exc = info.value
    text = all_text(exc)
    assert "bound to a different event loop" in text  # the original message is kept
    assert "loopbridge: this code ran on loopbridge's worker loop 'test'" in text
    assert "created on another event loop" in text
    if sys.version_info >= (3, 11):
        assert "loopbridge:" not in str(exc)  # a real note, not a changed message


@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
def test_caller_loop_is_named_when_one_runs(worker: loopbridge.WorkerLoop) -> None:
    async def main() -> str:
        ev = asyncio.Event()
        waiter = asyncio.ensure_future(ev.wait())
        await asyncio.sleep(0)
        try:
            worker.run_sync(ev.wait(), timeout=5)
        except RuntimeError as exc:
            return all_text(exc)
        finally:
            waiter.cancel()
        return ""

    text = asyncio.run(main())
    # The Event's loop is found in the failing frames and named: the caller's, still running.
    assert "created on another event loop: the event loop of thread 'MainThread'" in text
    assert "running in thread 'MainThread'" in text
    assert "may well use the object too" in text and "loop_local(make_client)" in text


def test_closed_loop(worker: loopbridge.WorkerLoop) -> None:
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    loop.close()

    async def touch() -> None:
        fut.get_loop().call_soon(print)

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(touch(), timeout=5)
    text = all_text(info.value)
    assert text.startswith("Event loop is closed")
    assert "whose event loop is already closed" in text


@pytest.mark.filterwarnings("ignore:.*blocks the event loop:loopbridge.LoopBridgeWarning")
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
    assert all_text(info.value).count("loopbridge:") == 1


def test_unrelated_errors_get_no_note(worker: loopbridge.WorkerLoop) -> None:
    async def fail() -> None:
        raise RuntimeError("something else entirely")

    with pytest.raises(RuntimeError) as info:
        worker.run_sync(fail(), timeout=5)
    assert all_text(info.value) == "something else entirely"


class InterfaceError(Exception):
    """Stands in for asyncpg's: raised *while handling* the cross-loop RuntimeError."""


def test_the_cause_is_found_down_the_chain_and_the_note_goes_on_what_the_user_sees(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def driver_call(ev: asyncio.Event) -> None:
        try:
            await ev.wait()
        except RuntimeError:  # a client library's own error on top, the real one as context
            raise InterfaceError(  # noqa: B904 - the implicit context is the point here
                "cannot perform operation: another operation is in progress"
            )

    with loopbridge.WorkerLoop(name="app-loop") as other:
        ev = other.run_sync(bind_event(), timeout=5)
        with pytest.raises(InterfaceError) as info:
            worker.run_sync(driver_call(ev), timeout=5)
    text = all_text(info.value)
    assert text.startswith("cannot perform operation: another operation is in progress")
    assert "loopbridge: this code ran on loopbridge's worker loop 'test'" in text
    assert "further down this exception's chain: RuntimeError:" in text
    assert "bound to a different event loop" in text
    assert "loopbridge.loop_local(make_client)" in text  # the fix for a two-loop program
    assert "notebook" not in text  # not a notebook: never mention one


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_members_of_an_exception_group_are_searched() -> None:
    inner = RuntimeError(
        "Task <Task pending> got Future <Future pending> attached to a different loop"
    )
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ValueError("x"), inner])  # noqa: F821
    note = loopbridge.explain(group)
    assert note is not None and note.startswith("loopbridge: this code ran on thread 'MainThread'")
    assert "attached to a different loop" in note


def test_explain_works_outside_the_bridge_and_changes_nothing() -> None:
    closed = RuntimeError("Event loop is closed")
    note = loopbridge.explain(closed)
    assert note is not None and "whose event loop is already closed" in note
    assert "persistent worker loop" in note
    assert getattr(closed, "__notes__", None) is None and str(closed) == "Event loop is closed"
    assert loopbridge.explain(ValueError("nothing to do with loops")) is None
    looped: BaseException = RuntimeError("outer")
    looped.__context__ = looped  # a cycle: the walk is bounded
    assert loopbridge.explain(looped) is None
    with pytest.raises(TypeError, match="expects an exception"):
        loopbridge.explain("Event loop is closed")  # type: ignore[arg-type]


def test_an_exceptions_attribute_that_is_not_a_group_is_not_walked() -> None:
    class Odd(Exception):
        exceptions = "not a list of exceptions"  # some library's own attribute

    assert loopbridge.explain(Odd("Event loop is closed")) is not None
    assert loopbridge.explain(Odd("unrelated")) is None
