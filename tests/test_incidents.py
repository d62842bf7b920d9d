"""The five incident shapes of issue 10, as the programs users wrote (tests/incidents/),
against real PostgreSQL, Redis and a local aiohttp server, with pytest-asyncio and
fork(): the failure as users meet it, then the fix the README teaches, with
assertions on what the user reads in both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import http_server_running
from tests.services import POSTGRES_DSN, REDIS_URL, require_port

for _module in ("aiohttp", "asyncpg", "redis", "pytest_asyncio"):
    pytest.importorskip(_module, reason=f"the incident programs use {_module} (the test extra)")

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parent / "incidents"


@pytest.fixture(scope="module")
def web_url() -> Iterator[str]:
    with http_server_running() as url:
        yield url


@pytest.fixture
def postgres() -> str:
    require_port("127.0.0.1", 5432, "PostgreSQL")
    return POSTGRES_DSN


@pytest.fixture
def redis_url() -> str:
    require_port("127.0.0.1", 6379, "Redis")
    return REDIS_URL


def run(
    program: str, mode: str, *, pytest_suite: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run an incident program (or its pytest-asyncio suite) as its user would."""
    args = (
        [sys.executable, "-m", "pytest", "-q", program]
        if pytest_suite
        else [
            sys.executable,
            program,
        ]
    )
    full_env = {**os.environ, "INCIDENT_MODE": mode, **env}
    full_env.pop("PYTEST_ADDOPTS", None)
    full_env.pop("PYTHONDEVMODE", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=90, env=full_env, cwd=HERE)


def note_of(text: str) -> str:
    """The loopbridge note in a program's output (one line)."""
    for line in text.splitlines():
        line = line.removeprefix("E").strip()
        if line.startswith("loopbridge:"):
            return line
    raise AssertionError(f"no loopbridge note in:\n{text[-3000:]}")


# 1. -------------------------------------------------------------------------------------------


def test_startup_code_that_nests_asyncio_run(web_url: str) -> None:
    env = {"SETTINGS_URL": f"{web_url}/settings"}
    broken = run("startup_nested_run.py", "broken", **env)
    assert "start-up failed: asyncio.run() cannot be called from a running event loop" in (
        broken.stdout
    )
    note = note_of(broken.stdout)
    assert "was already running on an event loop" in note
    assert "`loopbridge.run_sync(coro)`" in note and "`await loopbridge.run_async(coro)`" in note
    assert "notebook" not in note  # not a notebook: never mention one

    bridged = run("startup_nested_run.py", "bridge", **env)
    assert "started with settings from /settings" in bridged.stdout
    # It works, and says what it costs: the service's loop is blocked meanwhile.
    assert "LoopBridgeWarning: run_sync(fetch_settings(...)) blocks the event loop" in (
        bridged.stderr
    )
    assert "startup_nested_run.py:" in bridged.stderr  # the library's line, not ours
    assert "`await loopbridge.run_async(fetch_settings(...))`" in bridged.stderr

    fixed = run("startup_nested_run.py", "fixed", **env)
    assert fixed.stdout.strip() == "started with settings from /settings"
    assert "Warning" not in fixed.stderr


# 2. -------------------------------------------------------------------------------------------


def test_library_asyncio_run_under_pytest_asyncio_with_a_postgres_pool(postgres: str) -> None:
    env = {"POSTGRES_DSN": postgres}
    broken = run("pg_pool_pytest_asyncio.py", "broken", pytest_suite=True, **env)
    assert "RuntimeError: asyncio.run() cannot be called from a running event loop" in (
        broken.stdout
    )
    assert "1 failed" in broken.stdout

    # The README's recipe for sync code, with the fixture's pool: asyncpg's own error
    # surfaces, and the note (found down its chain) says whose loop the pool is on.
    bridged = run("pg_pool_pytest_asyncio.py", "bridge", pytest_suite=True, **env)
    assert "InterfaceError: cannot perform operation: another operation is in progress" in (
        bridged.stdout
    )
    note = note_of(bridged.stdout)
    assert "this code ran on loopbridge's worker loop 'default'" in note
    assert "created on another event loop: the event loop of thread 'MainThread'" in note
    assert "running in thread 'MainThread'" in note
    assert "further down this exception's chain: RuntimeError: Task <…> got Future <…>" in note
    assert "`client = loopbridge.loop_local(make_client)`" in note
    assert "notebook" not in note

    fixed = run("pg_pool_pytest_asyncio.py", "fixed", pytest_suite=True, **env)
    assert "1 passed, 1 skipped" in fixed.stdout, fixed.stdout[-3000:]


# 3. -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_celery_style_tasks_with_an_asyncpg_pool_after_fork(postgres: str) -> None:
    env = {"POSTGRES_DSN": postgres}
    bridged = run("celery_fork_pool.py", "bridge", **env)
    lines = bridged.stdout.splitlines()
    assert lines[0] == "parent: 42"  # the README's recipe works in the worker process ...
    assert any(line.startswith("child task failed: ") for line in lines)  # ... not in a child
    note = note_of(bridged.stdout)
    assert "before it forked this process" in note
    assert "inherited through fork(): it was running in the parent" in note
    assert "create the object in the child" in note
    assert "loopbridge.loop_local(make_client)" in note
    assert "os.register_at_fork(after_in_child=...)" in note

    fixed = run("celery_fork_pool.py", "fixed", **env)
    assert fixed.stdout.splitlines() == ["parent: 42", "child: 42", "parent again: 42"]


# 4. -------------------------------------------------------------------------------------------


def test_agent_tools_over_an_aiohttp_store_in_a_thread_pool(web_url: str) -> None:
    env = {"STORE_URL": web_url}
    broken = run("agent_tools_aiohttp.py", "broken", **env)
    # Which tool thread fails first decides which of aiohttp's two symptoms surfaces.
    assert re.search(
        r"tool failed: RuntimeError: (Task <.*> got Future <.*> attached to a different loop"
        r"|Timeout context manager should be used inside a task)",
        broken.stdout,
    ), broken.stdout
    note = note_of(broken.stdout)
    # explain(), called in the agent's except clause, still finds where the tool ran
    assert "this code ran on a loop of its own, run by asyncio.run()" in note
    assert "closed)" in note
    assert "running in thread 'MainThread'" in note  # the agent's loop, which owns the session
    assert "loopbridge.loop_local(make_client)" in note

    bridged = run("agent_tools_aiohttp.py", "bridge", **env)
    note = note_of(bridged.stdout)
    assert "this code ran on loopbridge's worker loop 'default'" in note
    assert "running in thread 'MainThread'" in note
    assert "async code there may well use the object too" in note
    # (whether the agent's own session survives the tools' misuse varies from run to run)

    fixed = run("agent_tools_aiohttp.py", "fixed", **env)
    assert fixed.stdout.splitlines() == [
        "agent warm-up: /warm-up",
        "tools: ['/doc-0', '/doc-1', '/doc-2', '/doc-3']",
        "agent again: /again",
    ]
    assert "Unclosed client session" not in fixed.stderr  # loop_local closed both sessions


# 5. -------------------------------------------------------------------------------------------


def test_redis_client_bound_to_the_pytest_fixture_loop(redis_url: str) -> None:
    env = {"REDIS_URL": redis_url}
    bridged = run("redis_fixture_loop.py", "bridge", pytest_suite=True, **env)
    assert "attached to a different loop" in bridged.stdout
    note = note_of(bridged.stdout)
    assert "created on another event loop: the event loop of thread 'MainThread'" in note
    assert "`client = loopbridge.loop_local(make_client)`" in note
    assert "1 failed" in bridged.stdout

    fixed = run("redis_fixture_loop.py", "fixed", pytest_suite=True, **env)
    assert "1 passed, 1 skipped" in fixed.stdout, fixed.stdout[-3000:]
