"""Drive a real ipykernel through jupyter_client, with a bound on every wait."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None  # ename, evalue, traceback
    result: str | None = None  # text/plain of the execute_result
    status: str = ""
    execution_count: int | None = None  # the cell's In[] number
    interrupted_at: float | None = None  # time.monotonic() of "Interrupt kernel"
    idle_at: float | None = None  # time.monotonic() when the kernel went idle
    presses: int = 0  # how many times "Interrupt kernel" was pressed

    @property
    def ename(self) -> str | None:
        return self.error["ename"] if self.error else None

    @property
    def traceback_text(self) -> str:
        import re

        tb = "\n".join(self.error["traceback"]) if self.error else ""
        return re.sub(r"\x1b\[[0-9;]*m", "", tb)


@dataclass
class Kernel:
    km: Any
    kc: Any
    history: list[CellResult] = field(default_factory=list)

    def execute(
        self,
        code: str,
        timeout: float = 30,
        interrupt_after: float | None = None,
        press_again_after: float | None = None,
    ) -> CellResult:
        """Run one cell; optionally press "Interrupt kernel" after some seconds, and
        press again, as a user would, if the cell is still running *press_again_after*
        seconds after the last press (``presses`` counts them)."""
        msg_id = self.kc.execute(code)
        res = CellResult()
        deadline = time.monotonic() + timeout
        interrupt_at = None if interrupt_after is None else time.monotonic() + interrupt_after
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"cell did not finish within {timeout}s:\n{code}\n{res}")
            if interrupt_at is not None and now >= interrupt_at:
                self.km.interrupt_kernel()
                res.interrupted_at = time.monotonic()
                res.presses += 1
                interrupt_at = (
                    None if press_again_after is None else res.interrupted_at + press_again_after
                )
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    res.stdout += content["text"]
                else:
                    res.stderr += content["text"]
            elif kind == "error":
                res.error = content
            elif kind == "execute_result":
                res.result = content["data"].get("text/plain")
            elif kind == "status" and content["execution_state"] == "idle":
                res.idle_at = time.monotonic()
                break
        # The reply to *this* request: jupyter_client's wait_for_ready() sends a new
        # kernel_info_request each second until one is answered, so a kernel slow to
        # start leaves extra kernel_info_replies on the shell channel. Taking the next
        # message instead shifted every cell's status by one (a UsageError read "ok").
        while True:
            reply = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        res.status = reply["content"]["status"]
        res.execution_count = reply["content"].get("execution_count")
        self.history.append(res)
        return res

    def ok(self, code: str, timeout: float = 30) -> CellResult:
        res = self.execute(code, timeout=timeout)
        assert res.error is None, res.traceback_text
        assert res.status == "ok", f"{code!r} failed: {res.stderr}"  # e.g. a UsageError
        return res


@contextmanager
def running_kernel(
    startup_timeout: float = 60,
    extra_arguments: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Kernel]:
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    km = jupyter_client.KernelManager(kernel_name="python3")
    kwargs: dict[str, Any] = {}
    if env is not None:
        import os

        kwargs["env"] = {**os.environ, **env}
    km.start_kernel(
        extra_arguments=["--HistoryManager.enabled=False", *(extra_arguments or [])], **kwargs
    )
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=startup_timeout)
        yield Kernel(km, kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
