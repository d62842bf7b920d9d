"""Where the real services are, and a clear skip when one is not reachable."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("LOOPBRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "LOOPBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def require_port(host: str, port: int, what: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        if os.environ.get("LOOPBRIDGE_REQUIRE_SERVICES"):  # CI: a missing service is a failure
            pytest.fail(f"{what} is required but not reachable at {host}:{port}: {exc}")
        pytest.skip(f"{what} not reachable at {host}:{port} ({exc}); start it to run this test")
