from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import loopbridge

ROOT = Path(__file__).resolve().parent.parent


def all_text(exc: BaseException) -> str:
    """An exception's message and its notes (PEP 678), as a user reads them."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


async def bind_event() -> asyncio.Event:
    """An Event bound to the loop this runs on (a waiter binds it)."""
    ev = asyncio.Event()
    waiter = asyncio.ensure_future(ev.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    return ev


@pytest.fixture
def worker() -> Iterator[loopbridge.WorkerLoop]:
    """A fresh, explicitly owned worker loop, closed after the test."""
    wl = loopbridge.WorkerLoop(name="test", cancel_timeout=2.0, shutdown_timeout=2.0)
    yield wl
    wl.close()


def run_script(
    code: str, *, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter (the one running the tests)."""
    full_env = {**os.environ, "PYTHONDEVMODE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def default_sigint() -> None:
    """For a child that must see Ctrl-C: a shell that starts jobs in the background
    (`make matrix &`) hands them SIGINT ignored, and Python keeps it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_script(code: str) -> subprocess.Popen[str]:
    """Start *code* unbuffered in a fresh interpreter, for tests that signal it."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 15) -> None:
    """Read *proc*'s stdout until a line contains *text*; kill it and fail if it never does."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never saw {text!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")


@contextmanager
def http_server_running() -> Iterator[str]:
    """A real aiohttp server on its own worker loop, like a separate service; yields its URL.

    It answers ``GET /<path>`` with ``{"path": "/<path>", "hit": <count>}``.
    """
    web = __import__("pytest").importorskip("aiohttp.web")
    hits = {"n": 0}

    async def handler(request: Any) -> Any:
        hits["n"] += 1
        return web.json_response({"path": request.path, "hit": hits["n"]})

    async def start() -> Any:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    with loopbridge.WorkerLoop(name="http-server") as server_loop:
        runner, port = server_loop.run_sync(start(), timeout=10)
        yield f"http://127.0.0.1:{port}"
        server_loop.run_sync(runner.cleanup(), timeout=10)
