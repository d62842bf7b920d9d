"""Fault injection: raise KeyboardInterrupt at the Nth bytecode that loopbridge runs.

A real Ctrl-C is delivered between two bytecodes of the main thread, at a moment
nobody chooses. Tracing opcodes (``frame.f_trace_opcodes``) lets a test raise it
at *each* of those moments in turn, in the calling thread, and check that every
one of them leaves the bridge whole. Only loopbridge's own frames are counted:
the scheduling and waiting paths of a call, nothing of the test or the stdlib.

Not every bytecode is such a moment. CPython runs Python signal handlers only
where it checks its "eval breaker": on entering a function (``RESUME``), after a
call returns (and inside blocking C calls such as ``lock.acquire``, which then
raise instead of returning) and after a backward jump. Raising anywhere else
would test states that no signal can produce (e.g. between the end of a
``with`` body and its ``__exit__`` call), so the injector counts only those
points: the first instruction of a function, and the instruction after a call
or a backward jump (a blocking call that raised leaves the same state as one
interrupted just before it, which is the point after the previous call).
"""

from __future__ import annotations

import dis
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import loopbridge

PKG = os.path.dirname(os.path.abspath(loopbridge.__file__))
_CALLS = {n for n in dis.opname if n.startswith("CALL")} - {"CALL_INTRINSIC_1", "CALL_INTRINSIC_2"}
_AFTER = _CALLS | {"JUMP_BACKWARD", "JUMP_ABSOLUTE"}
_ENTRY = {"RESUME"}


class Injector:
    """Raise ``KeyboardInterrupt`` at the *n*-th opcode of loopbridge code (1-based)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.fired_at: str | None = None
        self.thread = threading.get_ident()
        self._prev: dict[FrameType, str] = {}

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(PKG):
            return None
        frame.f_trace_opcodes = True
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode" and self.fired_at is None:
            op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
            prev = self._prev.get(frame)
            self._prev[frame] = op
            if not (op in _ENTRY or prev in _AFTER or prev is None):
                return self._local
            self.count += 1
            if self.count == self.n:
                code = frame.f_code
                self.fired_at = f"{code.co_name}:{frame.f_lineno}"
                raise KeyboardInterrupt(f"injected at opcode {self.n} ({self.fired_at})")
        return self._local

    @contextmanager
    def armed(self) -> Iterator[None]:
        old = sys.gettrace()
        sys.settrace(self._global)
        try:
            yield
        finally:
            sys.settrace(old)


def each_opcode(limit: int = 5000) -> Iterator[Injector]:
    """Injectors for opcode 1, 2, ... until one runs out of opcodes without firing."""
    for n in range(1, limit + 1):
        inj = Injector(n)
        yield inj
        if inj.fired_at is None:
            return
    raise AssertionError(f"still firing after {limit} opcodes: the path is longer than expected")


def outcome_of(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except KeyboardInterrupt:
        return "KeyboardInterrupt"
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return "value"
