"""Sync faces of real clients: aiohttp, redis.asyncio, asyncpg and aiosqlite.

For each client the same sync code (tests/face_recipes.py) runs in a script, in
threads, and across the cells of a real kernel with the client made in one cell
and used in later ones. Mixing loops is shown to be explained, not silent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import http_server_running, run_script
from tests.face_recipes import RECIPES, expected
from tests.kernel import Kernel, running_kernel
from tests.services import POSTGRES_DSN, REDIS_URL, require_port

pytestmark = pytest.mark.timeout(120)

CLIENTS = ["aiohttp", "redis", "asyncpg", "aiosqlite"]


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    with http_server_running() as url:
        yield url


def source(name: str, http_url: str, where: Path, mode: str) -> str:
    """The recipe of *name*, preceded by where its service is."""
    pytest.importorskip({"redis": "redis.asyncio"}.get(name, name))
    if name == "redis":
        require_port("127.0.0.1", 6379, "Redis")
    if name == "asyncpg":
        require_port("127.0.0.1", 5432, "PostgreSQL")
    url = {
        "aiohttp": http_url,
        "redis": REDIS_URL,
        "asyncpg": POSTGRES_DSN,
        "aiosqlite": str(where / f"{mode}.sqlite"),
    }[name]
    return f"URL = {url!r}\nPREFIX = 'loopbridge:test:faces:{mode}'\n" + RECIPES[name]


@pytest.mark.services
@pytest.mark.parametrize("name", CLIENTS)
def test_in_a_script(name: str, http_url: str, tmp_path: Path) -> None:
    code = source(name, http_url, tmp_path, "script") + (
        "\ndb = make()\nprint([use(db, i) for i in range(4)])\nclose(db)\n"
    )
    proc = run_script(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([expected(name, i) for i in range(4)])
    # PYTHONDEVMODE=1: unclosed sessions, unawaited coroutines and the like would show here
    assert proc.stderr == "", proc.stderr


@pytest.mark.services
@pytest.mark.parametrize("name", CLIENTS)
def test_in_threads(name: str, http_url: str, tmp_path: Path) -> None:
    ns: dict[str, Any] = {}
    exec(source(name, http_url, tmp_path, "threads"), ns)
    db = ns["make"]()
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(t * 5, t * 5 + 5):
                results[i] = ns["use"](db, i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert results == {i: expected(name, i) for i in range(30)}
    finally:
        ns["close"](db)


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with running_kernel() as k:
        yield k


@pytest.mark.kernel
@pytest.mark.services
@pytest.mark.parametrize("name", CLIENTS)
def test_across_kernel_cells(name: str, kernel: Kernel, http_url: str, tmp_path: Path) -> None:
    kernel.ok(source(name, http_url, tmp_path, "kernel") + f"\ndb_{name} = make()")
    assert kernel.ok(f"print(use(db_{name}, 1))").stdout.strip() == expected(name, 1)
    assert kernel.ok(f"print(use(db_{name}, 2))").stdout.strip() == expected(name, 2)
    res = kernel.ok(f"close(db_{name})")
    assert "Unclosed" not in res.stderr and "Warning" not in res.stderr, res.stderr


@pytest.mark.kernel
def test_a_session_made_on_the_kernel_loop_is_explained(kernel: Kernel, http_url: str) -> None:
    pytest.importorskip("aiohttp")
    kernel.ok(
        "import aiohttp, loopbridge\n"
        "s = aiohttp.ClientSession()   # made in a cell: bound to the kernel's loop\n"
        f"r = await s.get({http_url + '/k'!r})\n"
        "print(r.status)"
    )
    res = kernel.execute(f"loopbridge.sync_face(s).get({http_url + '/k'!r})")
    assert res.ename == "RuntimeError", res.traceback_text
    text = res.traceback_text
    assert "loopbridge:" in text, text
    assert "kernel" in text.lower() or "different loop" in text.lower(), text
    kernel.ok("await s.close()")


@pytest.mark.services
def test_loop_local_aiohttp_sessions_are_closed_with_their_loops(http_url: str) -> None:
    """One session per loop (the worker's, and each asyncio.run's), none left unclosed."""
    pytest.importorskip("aiohttp")
    proc = run_script(
        f"""
        import asyncio, aiohttp, loopbridge
        session = loopbridge.loop_local(aiohttp.ClientSession)

        async def get(path):
            async with session().get({http_url!r} + path) as r:
                return (await r.json())["path"], id(session())

        a = loopbridge.run_sync(get("/a"))
        b = loopbridge.run_sync(get("/b"))
        c = asyncio.run(get("/c"))          # a fresh loop: its own session, closed at its end
        assert a[1] == b[1] != c[1], (a, b, c)
        print(a[0], b[0], c[0])
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/a", "/b", "/c"]
    # PYTHONDEVMODE=1: aiohttp reports "Unclosed client session" on stderr otherwise
    assert proc.stderr == "", proc.stderr
