"""Task and loop inspection without IPython: what %aio shows, checked on real loops."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import sys
import threading
import time
import weakref
from typing import Any

import pytest

import loopbridge
from loopbridge import _inspect

pytestmark = pytest.mark.timeout(60)


async def sleeper(n: float) -> None:
    await asyncio.sleep(n)


KEEP: list[Any] = []  # strong references to tasks the tests make and cancel later


def rows_by_name(view: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in view.to_records()}


def test_each_kind_of_wait_is_named(worker: loopbridge.WorkerLoop) -> None:
    async def setup() -> list[asyncio.Task[Any]]:
        ev, q, lock = asyncio.Event(), asyncio.Queue[int](), asyncio.Lock()
        await lock.acquire()
        kept: list[Any] = []
        srv = await asyncio.start_server(lambda r, w: kept.append(w), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        kept.append(writer)

        async def parent() -> None:
            await asyncio.create_task(sleeper(50), name="lb-child")

        async def gatherer() -> None:
            await asyncio.gather(sleeper(50), sleeper(50))

        made = [
            asyncio.create_task(sleeper(50), name="lb-sleep"),
            asyncio.create_task(ev.wait(), name="lb-event"),
            asyncio.create_task(q.get(), name="lb-queue"),
            asyncio.create_task(lock.acquire(), name="lb-lock"),
            asyncio.create_task(reader.readline(), name="lb-socket"),
            asyncio.create_task(parent(), name="lb-parent"),
            asyncio.create_task(gatherer(), name="lb-gather"),
        ]
        await asyncio.sleep(0.05)
        made.append(kept)  # type: ignore[arg-type]
        return made

    made = worker.run_sync(setup())
    made.pop()
    view = loopbridge.inspect_tasks(name="^lb-", full=True)
    rows = rows_by_name(view)
    assert rows["lb-sleep"]["waits_on"].startswith("sleep(50s, ")
    assert rows["lb-event"]["waits_on"] == "Event.wait()"
    assert rows["lb-queue"]["waits_on"] == "Queue.get() (empty)"
    assert rows["lb-lock"]["waits_on"] == "Lock.acquire() (held)"
    assert rows["lb-socket"]["waits_on"].startswith("socket read (127.0.0.1:")
    assert rows["lb-parent"]["waits_on"] == f"task {rows['lb-child']['id']} lb-child"
    assert rows["lb-child"]["awaited_by"] == (rows["lb-parent"]["id"],)
    assert rows["lb-gather"]["waits_on"] == "gather (2 children, 0 done)"
    line = sleeper.__code__.co_firstlineno + 1
    assert rows["lb-sleep"]["location"] == f"{__file__}:{line} in sleeper"
    assert all(r["loop"] == "loopbridge-test" and r["state"] == "pending" for r in rows.values())
    full = loopbridge.inspect_tasks(loop="loopbridge-test", full=True)
    children = [r for r in full.rows if r.awaited_by == (rows["lb-gather"]["id"],)]
    assert len(children) == 2  # the gather's children name the gathering task
    for t in made:
        worker.loop.call_soon_threadsafe(t.cancel)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_task_group_children_name_their_parent(worker: loopbridge.WorkerLoop) -> None:
    async def owner() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
            tg.create_task(sleeper(50), name="tg-a")
            tg.create_task(sleeper(50), name="tg-b")

    fut = worker.submit(owner())
    time.sleep(0.1)
    rows = rows_by_name(loopbridge.inspect_tasks(name="^tg-|Task-", full=True))
    parent = next(r for r in rows.values() if r["coro"].endswith("owner"))
    assert parent["waits_on"] == "TaskGroup (2 children)"
    assert rows["tg-a"]["awaited_by"] == (parent["id"],)
    where = loopbridge.where_task("tg-a").text()
    assert f"<- {parent['id']}" in where
    fut.cancel()


def test_where_follows_the_chain_down_and_up(worker: loopbridge.WorkerLoop) -> None:
    async def leaf() -> None:
        await asyncio.sleep(50)

    async def middle() -> None:
        await leaf()  # a plain await: same task, another frame

    async def top() -> None:
        await asyncio.create_task(middle(), name="w-inner")

    fut = worker.submit(top())
    time.sleep(0.1)
    view = loopbridge.where_task("w-inner")
    text = view.text()
    assert "in middle" in text and "in leaf" in text and "await leaf()" in text
    assert "waits on: sleep(50s" in text
    outer = [r for r in view.to_records() if r["function"] == "middle"]
    assert outer and outer[0]["line"] == "await leaf()  # a plain await: same task, another frame"
    assert "awaited by:" in text and "<- " in text
    down = loopbridge.where_task(view.trace.awaited_by[0][0]).text()
    assert "w-inner" in down and "in leaf" in down  # from the parent, down into the child
    fut.cancel()


def test_snapshot_holds_no_task_and_no_frame(worker: loopbridge.WorkerLoop) -> None:
    box: list[weakref.ref[Any]] = []

    async def make() -> None:
        t = asyncio.create_task(sleeper(50), name="gone-soon")
        box.append(weakref.ref(t))
        await asyncio.sleep(0.01)

    worker.run_sync(make())
    views = [
        loopbridge.inspect_tasks(name="gone-soon", full=True),
        loopbridge.where_task("gone-soon"),
        loopbridge.inspect_loops(),
    ]
    assert views[0].to_records()
    worker.run_sync(_cancel_named("gone-soon"))
    for _ in range(20):
        gc.collect()
        if box[0]() is None:
            break
        time.sleep(0.05)
    assert box[0]() is None, "a view kept the task alive"
    assert views[0].to_records()[0]["name"] == "gone-soon"  # the data outlives the task


async def _cancel_named(name: str) -> None:
    for t in asyncio.all_tasks():
        if t.get_name() == name:
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)


def test_pages_groups_and_filters(worker: loopbridge.WorkerLoop) -> None:
    async def many() -> None:
        for i in range(25):
            KEEP.append(asyncio.create_task(sleeper(50), name=f"pg-{i}"))
        KEEP.append(asyncio.create_task(asyncio.Event().wait(), name="pg-event"))
        await asyncio.sleep(0.01)

    worker.run_sync(many())
    view = loopbridge.inspect_tasks(name="^pg-", sort="name", per_page=10)
    assert len(view.rows) == 26 and len(view.shown) == 10
    assert [r.name for r in view.shown][:3] == ["pg-0", "pg-1", "pg-2"]  # natural order
    assert "page 1/3" in view.text() and "--page N" in view.text()
    assert view.shown[0].waits_on is not None  # the page shown is detailed
    assert view.rows[20].waits_on is None  # the rest is not, until asked (full=True)
    page3 = view.page(3)
    assert [r.name for r in page3.shown] == [
        "pg-20",
        "pg-21",
        "pg-22",
        "pg-23",
        "pg-24",
        "pg-event",
    ]
    grouped = loopbridge.inspect_tasks(name="^pg-", group=True)
    text = grouped.text()
    assert "sleeper" in text and "25" in text and "26 task(s) in 2 group(s)" in text
    assert loopbridge.inspect_tasks(coro="^Event", name="^pg-").rows[0].name == "pg-event"
    assert loopbridge.inspect_tasks(name="^pg-", state="cancelling").rows == ()
    worker.run_sync(_cancel_prefix("pg-"))


def test_a_page_past_the_end_shows_the_last_page_detailed(
    worker: loopbridge.WorkerLoop,
) -> None:
    async def five() -> None:
        for i in range(5):
            KEEP.append(asyncio.create_task(sleeper(50), name=f"pe-{i}"))
        await asyncio.sleep(0.01)

    worker.run_sync(five())
    try:
        for per_page, page, shown in [(2, 9, ["pe-4"]), (50, 2, [f"pe-{i}" for i in range(5)])]:
            view = loopbridge.inspect_tasks(name="^pe-", sort="name", per_page=per_page, page=page)
            assert [r.name for r in view.shown] == shown
            # detailed like any page: no "?" in suspended at / waits on / awaited by
            assert all(r.waits_on is not None and r.location is not None for r in view.shown)
            assert "?" not in "".join(row[7] + row[8] for row in view._task_rows())
            assert f"page {page} is past the end" in view.text()
        # by role as well as by label: the example in %aio tasks' own help
        assert {r.loop for r in loopbridge.inspect_tasks(loop="worker", name="^pe-").rows} == {
            worker.thread_name
        }
    finally:
        worker.run_sync(_cancel_prefix("pe-"))


async def _cancel_prefix(prefix: str) -> None:
    ts = [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix)]
    for t in ts:
        t.cancel()
    await asyncio.gather(*ts, return_exceptions=True)


def test_html_is_escaped_and_needs_no_javascript(worker: loopbridge.WorkerLoop) -> None:
    async def make() -> None:
        KEEP.append(asyncio.create_task(sleeper(50), name="<b>x</b>&"))
        await asyncio.sleep(0.01)

    worker.run_sync(make())
    view = loopbridge.inspect_tasks(name="<b>")
    page = view._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;&amp;" in page and "<b>x</b>" not in page
    assert "<script" not in page.lower()
    where = loopbridge.where_task("<b>x</b>&")._repr_html_()
    assert "<details" in where and "&lt;b&gt;" in where
    worker.run_sync(_cancel_named("<b>x</b>&"))


def test_cancel_reports_what_finished(worker: loopbridge.WorkerLoop) -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(50)
            except asyncio.CancelledError:
                continue  # ignores cancellation

    async def polite() -> None:
        await asyncio.sleep(50)

    f1 = worker.submit(stubborn())
    f2 = worker.submit(polite())
    time.sleep(0.05)
    dry = loopbridge.cancel_tasks(match="stubborn|polite", dry_run=True)
    assert {r["outcome"] for r in dry.to_records()} == {"would cancel (dry run)"}
    assert not f1.done() and not f2.done()
    t0 = time.monotonic()
    view = loopbridge.cancel_tasks(match="stubborn|polite", timeout=0.5)
    took = time.monotonic() - t0
    outcomes = {r["name"]: r["outcome"] for r in view.to_records()}
    assert len(outcomes) == 2
    assert "cancelled" in outcomes.values()
    assert any(o.startswith("still running after 0.5s") for o in outcomes.values())
    assert took < 3, f"the wait was not bounded: {took:.1f}s"
    assert f2.cancelled() or f2.exception(timeout=2)
    with pytest.raises(LookupError, match="no pending task"):
        loopbridge.cancel_tasks(["no-such-task"])
    with pytest.raises(ValueError, match="say which tasks"):
        loopbridge.cancel_tasks()
    with pytest.raises(LookupError, match="not a valid regular expression"):
        loopbridge.cancel_tasks(match="(")
    with pytest.raises(ValueError, match=r"timeout=\.\.\.\) must be a non-negative number"):
        loopbridge.cancel_tasks(match="x", timeout=-1)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in 3.11")
def test_a_task_that_swallows_cancel_shows_as_cancelling(worker: loopbridge.WorkerLoop) -> None:
    async def sulky() -> None:
        try:
            await asyncio.sleep(50)
        except asyncio.CancelledError:
            await asyncio.sleep(50)  # cleanup that takes its time

    fut = worker.submit(sulky())
    time.sleep(0.05)
    loopbridge.cancel_tasks(match="sulky", timeout=0.1)
    rows = loopbridge.inspect_tasks(coro="sulky", state="cancelling").rows
    assert [r.state for r in rows] == ["cancelling"]
    assert loopbridge.inspect_tasks(coro="sulky", state="pending").rows == ()
    fut.cancel()


def test_a_blocked_loop_still_answers_best_effort(worker: loopbridge.WorkerLoop) -> None:
    async def make() -> None:
        KEEP.append(asyncio.create_task(sleeper(50), name="behind-a-block"))
        await asyncio.sleep(0.01)

    worker.run_sync(make())
    release = threading.Event()
    worker.loop.call_soon_threadsafe(lambda: release.wait(20))  # blocks the loop's thread
    time.sleep(0.05)
    t0 = time.monotonic()
    view = loopbridge.inspect_tasks(name="behind-a-block", timeout=0.3)
    took = time.monotonic() - t0
    release.set()
    assert took < 3
    assert [r.name for r in view.rows] == ["behind-a-block"]
    text = view.text()
    assert "did not answer in time" in text and "best-effort" in text
    assert "release.wait(20)" in text  # the blocked thread's stack, down to the culprit
    assert "<details>" in view._repr_html_()


def test_loops_lists_workers_and_the_caller(worker: loopbridge.WorkerLoop) -> None:
    worker.start()

    async def main() -> list[dict[str, Any]]:
        return loopbridge.inspect_loops().to_records()

    records = asyncio.run(main())
    mine = [r for r in records if r["current"]]
    assert len(mine) == 1 and mine[0]["thread"] == threading.current_thread().name
    w = [r for r in records if r["loop"] == "loopbridge-test"]
    assert w and w[0]["role"] == "worker" and w[0]["running"]
    assert w[0]["thread"] == "loopbridge-test"
    assert "asyncio" in w[0]["class"]


def test_loops_finds_a_foreign_thread_loop() -> None:
    ready, stop = threading.Event(), threading.Event()

    def other() -> None:
        async def main() -> None:
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)

        asyncio.run(main())

    th = threading.Thread(target=other, name="someone-elses-loop", daemon=True)
    th.start()
    assert ready.wait(5)
    try:
        records = loopbridge.inspect_loops().to_records()
        found = [r for r in records if r["thread"] == "someone-elses-loop"]
        assert found and found[0]["role"] == "other" and found[0]["tasks"] == 1
    finally:
        stop.set()
        th.join(5)


def test_lookup_errors_are_specific() -> None:
    with pytest.raises(LookupError, match="expected a task id or name"):
        loopbridge.where_task("  ")
    with pytest.raises(ValueError, match="sort must be one of"):
        loopbridge.inspect_tasks(sort="size")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        loopbridge.inspect_tasks(name="[")
    with pytest.raises(ValueError, match="page must be a positive int"):
        loopbridge.inspect_tasks(page=0)


def test_to_dataframe_says_what_it_needs() -> None:
    view = loopbridge.inspect_loops()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            view.to_dataframe()
    else:  # pragma: no cover - pandas is not a test dependency
        assert next(iter(view.to_dataframe().columns)) == "loop"


def test_tracking_factory_records_age_and_keeps_eager_start(
    worker: loopbridge.WorkerLoop,
) -> None:
    loop = worker.loop
    done = threading.Event()
    loop.call_soon_threadsafe(lambda: (_inspect.install_tracking(loop), done.set()))
    assert done.wait(5)
    ran_eagerly: list[bool] = []

    async def probe() -> None:
        ran_eagerly.append(True)
        await asyncio.sleep(50)

    fut = worker.submit(probe())
    time.sleep(0.2)
    row = next(r for r in loopbridge.inspect_tasks(coro="probe").rows)
    assert row.age is not None and 0.1 < row.age < 5
    assert ran_eagerly == [True]
    fut.cancel()
    assert _inspect.remove_tracking(loop)
    assert loop.get_task_factory() is None
    assert not _inspect.remove_tracking(loop)


def test_socket_wait_names_the_peer() -> None:
    a, b = socket.socketpair()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        t = asyncio.create_task(loop.sock_recv(a, 10), name="raw-recv")
        await asyncio.sleep(0.01)
        row = loopbridge.inspect_tasks(name="raw-recv").shown[0]
        t.cancel()
        return str(row.waits_on)

    a.setblocking(False)
    try:
        assert asyncio.run(main()).startswith("socket sock_recv(")
    finally:
        a.close()
        b.close()


def test_tracking_chains_to_a_users_factory(worker: loopbridge.WorkerLoop) -> None:
    seen: list[dict[str, Any]] = []

    def users_factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        seen.append(kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop = worker.loop
    done = threading.Event()

    def install() -> None:
        loop.set_task_factory(users_factory)
        _inspect.install_tracking(loop)
        done.set()

    loop.call_soon_threadsafe(install)
    assert done.wait(5)

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert worker.run_sync(answer(), timeout=5) == 42
    assert seen and all("eager_start" not in kw for kw in seen)  # not forced on it
    assert _inspect.remove_tracking(loop)
    assert loop.get_task_factory() is users_factory  # put back as it was


def test_snapshot_restores_the_gc_state() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        loopbridge.inspect_tasks()
        assert gc.isenabled()
        gc.disable()
        loopbridge.inspect_tasks()
        assert not gc.isenabled()  # left off when the caller had it off
    finally:
        (gc.enable if was else gc.disable)()


def test_an_aiohttp_request_stuck_on_its_response_names_the_socket(
    worker: loopbridge.WorkerLoop,
) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def silent_server() -> tuple[Any, list[Any], int]:
        conns: list[Any] = []  # accepts, reads nothing, never answers
        srv = await asyncio.start_server(lambda r, w: conns.append(w), "127.0.0.1", 0)
        return srv, conns, srv.sockets[0].getsockname()[1]

    srv, conns, port = worker.run_sync(silent_server(), timeout=5)

    async def fetch_stuck() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/") as resp,
        ):
            return str(await resp.text())

    fut = worker.submit(fetch_stuck())
    try:
        deadline = time.monotonic() + 5
        waits = ""
        while time.monotonic() < deadline and f":{port}" not in waits:
            time.sleep(0.05)
            rows = loopbridge.inspect_tasks(coro="fetch_stuck").shown
            waits = rows[0].waits_on or "" if rows else ""
        assert waits.startswith("Future in ResponseHandler."), waits
        assert f"(socket 127.0.0.1:{port})" in waits, waits
    finally:
        fut.cancel()

        async def stop() -> None:
            for w in conns:
                w.close()
            srv.close()
            await srv.wait_closed()

        worker.run_sync(stop(), timeout=5)


def test_html_cells_stay_on_one_line_long_text_is_clipped_and_the_footer_is_inside(
    worker: loopbridge.WorkerLoop,
) -> None:
    long_name = "an-extremely-long-task-name-that-someone-chose-for-ingest-worker-7"

    async def make() -> None:
        KEEP.append(asyncio.create_task(sleeper(50), name=long_name))
        await asyncio.sleep(0.01)

    worker.run_sync(make())
    try:
        page = loopbridge.inspect_tasks(name="ingest-worker")._repr_html_()
        cells = re.findall(r"<td style='([^']*)'", page)
        assert cells and all("white-space:nowrap" in st for st in cells)  # never mid-word
        # the name column is clipped with an ellipsis, the full text is on hover
        assert "text-overflow:ellipsis" in page and f"title='{long_name}'" in page
        # the footer belongs to the table: it scrolls with it
        assert "<tfoot>" in page and "1 task(s)" in page.split("<tfoot>")[1]
        where = loopbridge.where_task(long_name)._repr_html_()
        assert "<p>awaited by: no task is known to await it</p>" in where
        report = loopbridge.cancel_tasks(match="ingest-worker", dry_run=True)
        assert report.text().splitlines()[-1] == "dry run, 1 task(s): 1 would cancel"
        assert "dry run, 1 task(s): 1 would cancel" in report._repr_html_().split("<tfoot>")[1]
    finally:
        worker.run_sync(_cancel_named(long_name))
