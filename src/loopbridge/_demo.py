"""The demo behind ``python -m loopbridge demo``: plain asyncio fails, the bridge works."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import threading
import time

import loopbridge


def _title(n: int, text: str) -> None:
    print(f"\n{n}. {text}\n" + "-" * (len(text) + 3))


def _show(label: str, outcome: str) -> None:
    print(f"   {label:<44} {outcome}")


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.readline():
        writer.write(data.upper())
        await writer.drain()
    writer.close()


async def _start_echo_server() -> tuple[asyncio.base_events.Server, int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def scene_running_loop() -> None:
    _title(1, "Sync code called while a loop runs in this thread (a Jupyter cell)")

    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    async def cell() -> None:
        coro = fetch(1)
        try:
            asyncio.run(coro)  # noqa: LB001 - the demo shows this failure
        except RuntimeError as exc:
            coro.close()
            _show("asyncio.run(fetch(1))", f"RuntimeError: {exc}")
        _show("loopbridge.run_sync(fetch(21))", f"-> {loopbridge.run_sync(fetch(21), timeout=5)}")

    asyncio.run(cell())


def scene_loop_bound_client(port: int) -> None:
    _title(2, "A loop-bound client (a TCP connection) reused across calls")

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)

    async def ask(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], text: str) -> str:
        reader, writer = conn
        writer.write(text.encode() + b"\n")
        await writer.drain()
        return (await reader.readline()).decode().strip()

    conn = asyncio.run(connect())  # made on a loop that asyncio.run closes at once
    try:
        asyncio.run(ask(conn, "hello"))
    except RuntimeError as exc:
        _show("asyncio.run per call, 2nd call", f"{type(exc).__name__}: {exc}"[:70])
    # Its loop is closed, so the transport cannot be closed the asyncio way;
    # shut the socket down so that the server side ends cleanly.
    conn[1].get_extra_info("socket").shutdown(socket.SHUT_RDWR)

    conn = loopbridge.run_sync(connect(), timeout=5)  # lives on the worker loop
    for word in ("hello", "from", "the", "bridge"):
        _show(
            f"loopbridge.run_sync(ask(conn, {word!r}))",
            f"-> {loopbridge.run_sync(ask(conn, word), timeout=5)!r}",
        )
    loopbridge.run_sync(_close(conn[1]), timeout=5)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


def scene_timeout() -> None:
    _title(3, "A timeout cancels the work on the worker loop")
    cleaned = []

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally ran")

    t0 = time.monotonic()
    try:
        loopbridge.run_sync(slow(), timeout=0.2)
    except TimeoutError as exc:
        _show("run_sync(slow(), timeout=0.2)", f"TimeoutError after {time.monotonic() - t0:.2f}s")
        _show("", str(exc)[:70])
    _show("the task's cleanup", cleaned[0] if cleaned else "DID NOT RUN")


def scene_cancel() -> None:
    _title(4, "Cancelled calls: a cancelled future, and Ctrl-C")
    events: list[str] = []

    async def job(tag: str) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append(f"{tag}: cancelled on the worker loop")
            raise

    fut = loopbridge.submit(job("submitted"))
    time.sleep(0.05)
    fut.cancel()
    time.sleep(0.05)
    _show("fut = submit(job()); fut.cancel()", events[-1] if events else "still running?")

    if (
        sys.platform != "win32"
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            loopbridge.run_sync(job("run_sync"))
        except KeyboardInterrupt:
            _show("run_sync(job()) + Ctrl-C (a real SIGINT)", "KeyboardInterrupt")
            _show("", events[-1])

    async def tasks_left() -> int:
        return len(asyncio.all_tasks()) - 1

    _show("tasks left on the worker loop", str(loopbridge.run_sync(tasks_left(), timeout=5)))


def scene_deadlock() -> None:
    _title(5, "A call that would deadlock fails at once")

    async def inner() -> None:
        loopbridge.run_sync(asyncio.sleep(0))  # called on the worker loop itself

    try:
        loopbridge.run_sync(inner(), timeout=5)
    except loopbridge.DeadlockError as exc:
        _show("run_sync() inside a bridged coroutine", "DeadlockError:")
        print("   " + str(exc)[:150] + "...")


def run_demo() -> int:
    """Run every scene; return the process exit code."""
    print(f"loopbridge {loopbridge.__version__} demo, Python {sys.version.split()[0]}")
    server_loop = loopbridge.WorkerLoop(name="demo-server")
    server, port = server_loop.run_sync(_start_echo_server(), timeout=5)
    try:
        scene_running_loop()
        scene_loop_bound_client(port)
        scene_timeout()
        scene_cancel()
        scene_deadlock()
    finally:
        server.close()
        server_loop.close()
    print("\nAll calls above ran on one persistent loop:", loopbridge.default_worker())
    return 0


# -- the quickstart notebook, run headlessly --------------------------------------


def _quickstart_path() -> str | None:
    """The quickstart notebook: shipped in the wheel, or in a source checkout."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for path in (
        os.path.join(here, "quickstart.ipynb"),
        os.path.join(here, os.pardir, os.pardir, "notebooks", "quickstart.ipynb"),
    ):
        if os.path.exists(path):
            return os.path.normpath(path)
    return None


def _outputs_text(cell: object) -> list[str]:
    out = []
    for o in getattr(cell, "outputs", []):
        kind = o["output_type"]
        if kind == "stream":
            out.append(o["text"].rstrip("\n"))
        elif kind in ("execute_result", "display_data"):
            out.append(o["data"].get("text/plain", "").rstrip("\n"))
        elif kind == "error":
            out.append(f"{o['ename']}: {o['evalue']}")
    return out


def run_notebook_demo(path: str | None = None) -> int:
    """Run the quickstart notebook on a real kernel and print what each cell shows."""
    try:
        import nbclient
        import nbformat
    except ImportError:
        print(
            "The notebook demo needs a Jupyter kernel and nbclient:\n"
            "    pip install 'loopbridge[ipython]' nbclient\n"
            "Showing the scripted demo instead (python -m loopbridge demo --script).\n"
        )
        return run_demo()
    path = path or _quickstart_path()
    if path is None:
        print("quickstart.ipynb was not found next to the package or in ./notebooks")
        return 1
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    print(f"loopbridge {loopbridge.__version__}: running {path} on a fresh kernel...\n")
    with tempfile.TemporaryDirectory(prefix="loopbridge-demo-") as sockets:
        km = None
        if os.name == "posix":
            # IPC sockets in a private folder: local-only, and no "Kernel is running
            # over TCP without encryption" warning as the first thing a newcomer reads.
            from jupyter_client.manager import KernelManager

            km = KernelManager(
                kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel")
            )
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", km=km)
        try:
            client.execute()
        finally:
            if km is not None and km.has_kernel:  # ours, not nbclient's: stop it here
                km.shutdown_kernel(now=False)
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            title = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            if title.startswith("#"):
                print(f"\n{title.lstrip('# ').upper()}\n")
            continue
        count += 1
        print(f"In [{count}]:")
        for line in cell.source.splitlines():
            print(f"    {line}")
        for text in _outputs_text(cell):
            print("  -> " + text.replace("\n", "\n     "))
        print()
    print("Every cell above ran on a real kernel; open notebooks/quickstart.ipynb to try it.")
    return 0
