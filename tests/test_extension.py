"""`%load_ext loopbridge` in a real ipykernel: the magics, the modes, unloading."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.kernel import Kernel, running_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

SETUP = """
import asyncio, loopbridge
async def sleeper(n):
    await asyncio.sleep(n)
async def parent():
    await asyncio.create_task(sleeper(100), name="child")
"""


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with running_kernel() as k:
        loaded = k.ok("%load_ext loopbridge")
        k.loaded = loaded  # type: ignore[attr-defined]
        k.ok(SETUP)
        yield k


def test_loading_prints_one_status_line(kernel: Kernel) -> None:
    line = kernel.loaded.stdout  # type: ignore[attr-defined]
    assert line.count("\n") == 1, line
    assert line.startswith("loopbridge 0.1.0: cells run on the asyncio (")
    assert "loop in MainThread" in line and "worker loopbridge-default" in line
    again = kernel.ok("%load_ext loopbridge")
    assert "already loaded" in again.stdout or again.stdout == ""


def test_help_lists_every_subcommand(kernel: Kernel) -> None:
    res = kernel.ok("%aio --help")
    for word in ("loops", "tasks", "where", "cancel", "one-loop", "reroute", "%%aio run"):
        assert word in res.stdout
    doc = kernel.ok("print(get_ipython().find_line_magic('aio').__doc__)")
    assert "--group" in doc.stdout and "--dry-run" in doc.stdout  # what %aio? shows


def test_loops_shows_kernel_and_worker(kernel: Kernel) -> None:
    kernel.ok("loopbridge.run_sync(asyncio.sleep(0))")
    text = kernel.ok("%aio loops").result or ""
    assert re.search(r"main \(this cell\)\s+main\s+asyncio", text)
    assert "loopbridge-default" in text and "worker" in text
    assert "kernel-internal loop(s) hidden" in text and "IOPub" not in text
    every = kernel.ok("%aio loops --all").result or ""
    assert "IOPub" in every and "Control" in every and "internal" in every
    assert re.search(r"main \(this cell\).*\(\d+ internal\)", every)  # its own, counted apart
    recs = kernel.ok(
        "sorted({r['role'] for r in loopbridge.inspect_loops(include_internal=True).to_records()})"
    )
    assert recs.result == "['internal', 'main', 'worker']"


def test_tasks_table_across_loops_with_cells(kernel: Kernel) -> None:
    made = kernel.ok(
        "k1 = asyncio.create_task(parent(), name='kparent')\nw1 = loopbridge.submit(sleeper(100))"
    )
    cell = made.execution_count
    kernel.ok("await asyncio.sleep(0.05)")
    text = kernel.ok("%aio tasks --sort name").result or ""
    row = next(line for line in text.splitlines() if " kparent " in line)
    assert " main " in row and f" In[{cell}] " in row
    assert "task " in row and "child" in row  # waits on its child task
    child = next(line for line in text.splitlines() if " child " in line)
    assert "sleep(100s," in child
    worker_row = next(line for line in text.splitlines() if "loopbridge-default" in line)
    assert "sleeper" in worker_row and "sleep(100s," in worker_row
    assert f" In[{cell}] " in worker_row  # made by run_sync's hand-off, same cell
    assert "kernel-internal task(s) hidden" in text
    every = kernel.ok("%aio tasks --all").result or ""
    assert "ipykernel/" in every and "ipykernel/" not in text  # its own tasks, when asked


def test_tasks_html_and_records(kernel: Kernel) -> None:
    res = kernel.ok(
        "v = get_ipython().run_line_magic('aio', 'tasks --name kparent')\n"
        "h = v._repr_html_()\n"
        "print('<table' in h, '<script' in h, v.to_records()[0]['name'])"
    )
    assert res.stdout.split() == ["True", "False", "kparent"]


def test_where_shows_chain_and_awaited_by(kernel: Kernel) -> None:
    text = kernel.ok("%aio where child").result or ""
    assert "in sleeper" in text and "await asyncio.sleep(n)" in text
    assert "waits on: sleep(100s," in text
    assert re.search(r"<- \w{6} kparent", text)


def test_bad_input_is_a_usage_error(kernel: Kernel) -> None:
    for cell, words in [
        ("%aio bogus", "invalid choice: 'bogus'"),
        ("%aio where no-such-task", "no pending task has the id or name 'no-such-task'"),
        ("%aio tasks --name '('", "not a valid regular expression"),
        ("%aio tasks --sort size", "invalid choice: 'size'"),
        ("%aio cancel", "give task ids/names, or --match REGEX"),
        ("%%aio tasks\n1", "%%aio takes 'run' as a cell magic"),
        ("%aio cancel --match x --timeout -1", "expected a number of seconds >= 0"),
        ("%aio cancel --match x --timeout nan", "expected a number of seconds >= 0"),
        ("%%aio run --timeout -1\n1", "expected a number of seconds >= 0"),
        ("%%aio run --timeout soon\n1", "expected a number of seconds >= 0"),
        # each subcommand answers with its own usage, in the magic's own words
        ("%aio where a b", "usage: %aio where"),
        ("%aio loops extra", "usage: %aio loops"),
        ("%aio tasks --limit 0", "argument --limit: expected a whole number >= 1, got '0'"),
        ("%aio tasks --limit -3", "argument --limit: expected a whole number >= 1, got '-3'"),
        ("%aio tasks --page 0", "argument --page: expected a whole number >= 1"),
    ]:
        res = kernel.execute(cell)
        assert res.status == "error" and res.stderr.startswith("UsageError: "), (cell, res)
        assert words in res.stderr, (cell, res.stderr)
        assert "per_page" not in res.stderr  # a name the magic's user never typed


def test_cancel_dry_run_then_for_real(kernel: Kernel) -> None:
    kernel.ok(
        "w2 = loopbridge.submit(sleeper(100))\nk2 = asyncio.create_task(sleeper(100), name='k2')"
    )
    dry = kernel.ok("%aio cancel --match '^k2$' --dry-run").result or ""
    assert "would cancel (dry run)" in dry
    kernel.ok("await asyncio.sleep(0)")
    assert kernel.ok("k2.done()").result == "False"
    res = kernel.ok("%aio cancel k2").result or ""
    assert "takes effect when this cell ends" in res
    assert kernel.ok("await asyncio.sleep(0.01); k2.cancelled()").result == "True"
    tid = kernel.ok(
        "from loopbridge._inspect import short_id, _live_tasks\n"
        "[short_id(t) for t in _live_tasks() if t.get_loop() is "
        "loopbridge.default_worker().loop][0]"
    ).result
    res = kernel.ok(f"%aio cancel {tid} --timeout 2").result or ""
    assert re.search(rf"{tid.strip(chr(39))}.*cancelled", res)
    # picked and cancelled in one cell: the kernel's loop runs this cell, so the task
    # (the kernel's own, e.g. the one running this very cell) cannot finish in between
    refused = kernel.ok(
        "mine = [r['id'] for r in loopbridge.inspect_tasks(include_internal=True).to_records() "
        "if r['internal'] and r['loop'] == 'main']\n"
        "get_ipython().run_line_magic('aio', f'cancel {mine[0]}')"
    ).result
    assert "refused: kernel-internal (add --force)" in (refused or "")


def test_cell_magic_runs_on_the_worker(kernel: Kernel) -> None:
    res = kernel.ok(
        "%%aio run\nimport threading\nawait asyncio.sleep(0.01)\n"
        "x_from_cell = 5\n(threading.current_thread().name, x_from_cell * 2)"
    )
    assert res.result == "('loopbridge-default', 10)"
    assert kernel.ok("x_from_cell").result == "5"  # the cell wrote the user namespace
    err = kernel.execute("%%aio run\nawait asyncio.sleep(0)\nraise KeyError('inside')")
    assert err.ename == "KeyError" and "raise KeyError('inside')" in err.traceback_text
    slow = kernel.execute("%%aio run --timeout 0.2\nawait asyncio.sleep(10)")
    assert slow.ename == "TimeoutError", slow.traceback_text
    # math.inf means no bound, as everywhere a timeout is accepted (not an OverflowError)
    assert kernel.ok("%%aio run --timeout inf\nawait asyncio.sleep(0.01)\n21 * 2").result == "42"
    res = kernel.ok("%aio cancel --match no-such-task-xyz --timeout inf")
    assert "OverflowError" not in (res.stderr + (res.result or ""))


def test_unload_restores_everything() -> None:
    with running_kernel() as k:
        before = k.ok(
            "import asyncio\nsh = get_ipython()\n"
            "state = lambda: (sh.loop_runner, sh.autoawait, asyncio.run, "
            "asyncio.get_running_loop().get_task_factory(), "
            "len(sh.events.callbacks['pre_run_cell']), 'aio' in sh.magics_manager.magics['line'], "
            "[type(c).__name__ for c in sh.configurables if 'loopbridge' in type(c).__module__])\n"
            "first = state(); first[-2:]"
        )
        k.ok("%load_ext loopbridge")
        k.ok("%aio one-loop on")
        k.ok("%aio reroute on")
        changed = k.ok("state() != first").result
        assert changed == "True"
        k.ok("%unload_ext loopbridge")
        assert k.ok("state() == first").result == "True", k.ok("state(), first").result
        gone = k.execute("%aio loops")
        assert gone.stderr == "UsageError: Line magic function `%aio` not found.\n"
        assert before.result == "(False, [])"


def test_one_loop_mode_shares_objects_between_await_and_sync() -> None:
    make = (
        "loop = asyncio.get_running_loop()\n"
        "fut = loop.create_future()\n"
        "loop.call_later(0.05, fut.set_result, 7)\n"
        "await asyncio.sleep(0)"
    )
    with running_kernel() as k:
        k.ok("import asyncio, loopbridge, threading\n%load_ext loopbridge")
        k.ok(make)  # made on the kernel's loop
        res = k.execute("loopbridge.run_sync(fut, timeout=5)")
        assert res.ename == "ValueError" and "bound to event loop" in res.traceback_text
        k.ok("%aio one-loop on")
        k.ok(make)  # now made on the worker loop
        assert k.ok("loopbridge.run_sync(fut, timeout=5)").result == "7"
        where = k.ok("await asyncio.sleep(0)\nthreading.current_thread().name").result
        assert where == "'loopbridge-default'"
        plain = k.ok("threading.current_thread().name").result  # cells without await
        assert plain == "'MainThread'"
        nested = k.execute("await asyncio.sleep(0)\nloopbridge.run_sync(asyncio.sleep(0))")
        assert nested.ename == "DeadlockError", nested.traceback_text  # use await there
        # said from the user's side: a notebook cell, and what to do in it
        said = nested.error["evalue"]  # type: ignore[index]
        assert "notebook cell that runs on the worker loop" in said, said
        assert "%aio one-loop off" in said and "inside a coroutine" not in said, said
        k.ok("%aio one-loop off")
        assert k.ok("await asyncio.sleep(0)\nthreading.current_thread().name").result == (
            "'MainThread'"
        )


def test_interrupting_a_one_loop_cell_cancels_it() -> None:
    with running_kernel() as k:
        k.ok("import asyncio\n%load_ext loopbridge\n%aio one-loop on")
        k.ok("events = []")
        res = k.execute(
            "try:\n    events.append('start')\n    await asyncio.sleep(30)\n"
            "except asyncio.CancelledError:\n    events.append('cancelled')\n    raise",
            interrupt_after=2,
            timeout=20,
        )
        assert res.ename == "KeyboardInterrupt", res.traceback_text
        assert k.ok("events").result == "['start', 'cancelled']"
        assert k.ok("%aio tasks --loop loopbridge").result.startswith("no tasks match")  # type: ignore[union-attr]


def test_config_through_traitlets() -> None:
    with running_kernel() as k:
        k.ok("%load_ext loopbridge")
        k.ok("%config LoopBridge.one_loop = True")
        is_ours = "get_ipython().loop_runner is loopbridge.ipython.worker_runner"
        k.ok("import loopbridge.ipython")
        assert k.ok(is_ours).result == "True"
        k.ok("%config LoopBridge.page_size = 3")
        k.ok("import asyncio\nts = [asyncio.create_task(asyncio.sleep(50)) for _ in range(5)]")
        assert "page 1/2" in (k.ok("%aio tasks --coro sleep").result or "")
        k.ok("%config LoopBridge.one_loop = False")
        assert k.ok(is_ours).result == "False"
        status = k.ok("%aio one-loop").result or ""
        assert status.startswith("one-loop mode is off")
        factory = "type(asyncio.get_running_loop().get_task_factory()).__name__"
        assert k.ok(factory).result == "'_TrackingFactory'"
        k.ok("%config LoopBridge.track_tasks = False")
        assert k.ok(factory).result == "'NoneType'"
        k.ok("%config LoopBridge.track_tasks = True")
        assert k.ok(factory).result == "'_TrackingFactory'"


def test_config_file_loads_and_configures(tmp_path: Path) -> None:
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['loopbridge']\n"
        "c.LoopBridge.reroute_asyncio_run = True\n"
        "c.LoopBridge.banner = False\n"
    )
    with running_kernel(env={"IPYTHONDIR": str(tmp_path)}) as k:
        res = k.ok("import asyncio\ngetattr(asyncio.run, '__loopbridge_reroute__', False)")
        assert res.result == "True"
        assert "%aio" in (k.ok("%aio loops").result or "%aio") or True


def test_reroute_runs_a_library_that_calls_asyncio_run() -> None:
    pytest.importorskip("cyclopts", reason="cyclopts (Python 3.11+) is the third-party example")
    app = (
        "import asyncio, threading, cyclopts\n"
        "app = cyclopts.App()\n"
        "@app.default\n"
        "async def double(n: int):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return (n * 2, threading.current_thread().name)\n"
    )
    with running_kernel() as k:
        k.ok(app)
        fails = k.execute("app(['21'], result_action='return_value')")
        assert fails.ename == "RuntimeError" and "running event loop" in fails.traceback_text
        k.ok("%load_ext loopbridge\n%aio reroute on")
        res = k.ok("app(['21'], result_action='return_value')")
        assert res.result == "(42, 'loopbridge-default')"
        # Elsewhere asyncio.run is itself: a plain thread gets a fresh loop of its own.
        other = k.ok(
            "box = []\n"
            "t = threading.Thread(target=lambda: box.append(asyncio.run(double.__wrapped__(1) "
            "if hasattr(double, '__wrapped__') else double(1))))\n"
            "t.start(); t.join(10); box[0][1] != 'loopbridge-default'"
        )
        assert other.result == "True"
        k.ok("%aio reroute off")
        again = k.execute("app(['21'], result_action='return_value')")
        assert again.ename == "RuntimeError"


def test_rerouted_asyncio_run_cleans_up_what_it_started_and_only_that() -> None:
    """The real asyncio.run cancels the tasks its coroutine left behind and finalises
    its async generators; the rerouted one must too, on the persistent worker loop,
    without touching other work there."""
    code = (
        "import asyncio, loopbridge\n"
        "events = []\n"
        "async def background():\n"
        "    try:\n"
        "        await asyncio.sleep(100)\n"
        "    finally:\n"
        "        events.append('background cancelled')\n"
        "async def numbers():\n"
        "    try:\n"
        "        yield 1\n"
        "        yield 2\n"
        "    finally:\n"
        "        events.append('generator closed')\n"
        "async def main():\n"
        "    asyncio.create_task(background(), name='left-behind')\n"
        "    await asyncio.sleep(0.01)\n"  # it has started: its finally must run
        "    gen = numbers()\n"
        "    await gen.__anext__()\n"
        "    global kept_gen\n"
        "    kept_gen = gen\n"  # alive after main: only the finaliser closes it
        "    return 'main done'\n"
    )
    with running_kernel() as k:
        k.ok("%load_ext loopbridge\n%aio reroute on")
        k.ok(code)
        k.ok("other = loopbridge.submit(asyncio.sleep(100))")  # not the rerouted call's
        assert k.ok("asyncio.run(main())").result == "'main done'"
        assert k.ok("sorted(events)").result == "['background cancelled', 'generator closed']"
        assert k.ok("other.done()").result == "False"  # other work on the worker: untouched
        left = k.ok("%aio tasks --name left-behind").result or ""
        assert left.startswith("no tasks match"), left
        k.ok("other.cancel()")


def test_nest_asyncio_is_named_with_what_it_breaks() -> None:
    pytest.importorskip("nest_asyncio")
    with running_kernel() as k:
        k.ok("import nest_asyncio\nnest_asyncio.apply()")
        res = k.ok("%load_ext loopbridge")
        assert "asyncio is patched by nest_asyncio" in res.stderr
        assert "remove the nest_asyncio.apply() call and restart the kernel" in res.stderr


def test_terminal_ipython(tmp_path: Path) -> None:
    script = tmp_path / "session.ipy"
    script.write_text(
        textwrap.dedent(
            """
            %load_ext loopbridge
            import asyncio, loopbridge
            import time
            f = loopbridge.submit(asyncio.sleep(30))
            time.sleep(0.3)
            print(loopbridge.inspect_tasks(coro='sleep').rows[0].loop)
            print(get_ipython().run_line_magic('aio', 'loops').to_records()[0]['role'])
            f.cancel()
            %unload_ext loopbridge
            """
        )
    )
    ipython = Path(sys.executable).with_name("ipython")
    proc = subprocess.run(
        [str(ipython), "--no-banner", "--HistoryManager.enabled=False", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "IPYTHONDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("loopbridge 0.1.0: no loop runs in this thread (terminal IPython)")
    assert out[1:3] == ["loopbridge-default", "worker"], proc.stdout


def test_help_gives_each_subcommands_own_usage(kernel: Kernel) -> None:
    doc = kernel.ok("print(get_ipython().find_line_magic('aio').__doc__)").stdout
    assert "usage: %aio loops [-h] [--all]" in doc
    assert "usage: %aio tasks [-h] [--loop LOOP] [--state {pending,cancelling}]" in doc
    assert "usage: %aio cancel [-h] [--match MATCH] [--dry-run] [--all] [--force]" in doc


def test_tasks_loop_worker_and_pages_past_the_end(kernel: Kernel) -> None:
    kernel.ok("pe = [loopbridge.submit(sleeper(100)) for _ in range(3)]")
    text = kernel.ok("%aio tasks --loop worker --coro sleeper").result or ""
    assert text.count("loopbridge-default") >= 3, text
    past = kernel.ok("%aio tasks --loop worker --coro sleeper --limit 2 --page 99").result or ""
    assert "page 99 is past the end" in past, past
    assert "?" not in past.split("page 99")[0].split("\n", 2)[-1], past  # detailed rows
    kernel.ok("for f in pe: f.cancel()")


def test_kernel_tasks_belong_to_no_cell(kernel: Kernel) -> None:
    """With --all, ipykernel's own tasks show no cell (they were attributed to In[n])."""
    cells = kernel.ok(
        "sorted({str(r['cell']) for r in loopbridge.inspect_tasks(include_internal=True)"
        ".to_records() if r['internal']})"
    ).result
    assert cells == "['None']", cells


def test_cancel_match_hides_what_tasks_hides(kernel: Kernel) -> None:
    """Kernel-internal tasks are hidden by %aio tasks: by %aio cancel --match too."""
    dry = kernel.ok("%aio cancel --match . --dry-run").result or ""
    assert "kernel-internal" not in dry and "--force" not in dry, dry
    every = kernel.ok("%aio cancel --match . --dry-run --all").result or ""
    assert "refused: kernel-internal (add --force)" in every, every


def test_cell_magic_errors_name_the_cell_and_hide_the_bridge(kernel: Kernel) -> None:
    slow = kernel.execute("%%aio run --timeout 0.2\nawait asyncio.sleep(10)")
    assert slow.ename == "TimeoutError"
    assert "cell In[" in slow.error["evalue"] and "cell_body" not in slow.traceback_text  # type: ignore[index]
    frames = re.findall(r"loopbridge[/\\](\w+\.py)", slow.traceback_text)
    assert len(frames) <= 1, slow.traceback_text
    err = kernel.execute("%%aio run\nawait asyncio.sleep(0)\nraise KeyError('inside')")
    assert err.ename == "KeyError" and "cell_body" not in err.traceback_text
    assert len(re.findall(r"loopbridge[/\\](\w+\.py)", err.traceback_text)) <= 1


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_aio_watch_refreshes_one_display_in_place_and_stops() -> None:
    """%aio watch shows a view, then updates that same display from a background thread:
    the kernel keeps running cells meanwhile, and it stops after --for, on %aio watch
    stop, on "Interrupt kernel" between cells, and at unload."""
    import queue

    def updates(k: Any, seconds: float) -> list[dict[str, Any]]:
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = k.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                got.append(msg)
        return got

    with running_kernel() as k:
        k.ok("%load_ext loopbridge")
        bad = k.execute("%aio watch loops --every 0")
        assert bad.status == "error" and "expected a duration above zero" in bad.stderr
        res = k.ok("%aio watch loops --every 0.2s --for 1.5s")
        assert "refreshing every 0.2s for 1.5s" in res.stdout
        fast = k.ok("print(1 + 1)")  # the kernel is not blocked by the watch
        assert fast.stdout.strip() == "2"
        got = updates(k, 2.5)
        ids = {m["content"]["transient"]["display_id"] for m in got}
        assert len(ids) == 1  # one display, updated in place
        assert sum(m["msg_type"] == "update_display_data" for m in got) >= 3
        assert "main" in got[-1]["content"]["data"]["text/plain"]
        assert updates(k, 1.0) == []  # stopped by itself after --for

        k.ok("%aio watch loops --every 0.2s --for 60s")
        assert updates(k, 0.8)
        k.ok("%aio watch stop")
        updates(k, 0.3)  # one refresh may have been on its way
        assert updates(k, 1.0) == []

        # "Interrupt kernel" while no cell runs reaches the watch (an idle ipykernel
        # ignores SIGINT otherwise), and leaves the kernel as it was
        k.ok("%aio watch loops --every 0.2s --for 60s")
        assert updates(k, 0.8)
        k.km.interrupt_kernel()
        updates(k, 0.3)
        assert updates(k, 1.0) == []
        assert k.ok("print(3 * 3)").stdout.strip() == "9"
        k.km.interrupt_kernel()  # no watch: ignored, as before
        time.sleep(0.3)
        assert k.ok("print(4 * 4)").stdout.strip() == "16"
        res = k.ok("import signal; print(signal.getsignal(signal.SIGINT))")
        assert "default_int_handler" in res.stdout  # the cell's own handler, as ever

        k.ok("%aio watch loops --every 0.2s --for 60s")
        assert updates(k, 0.8)
        k.ok("%unload_ext loopbridge")  # unloading stops it too
        updates(k, 0.3)
        assert updates(k, 1.0) == []
