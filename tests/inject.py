"""Fault injection: raise KeyboardInterrupt at the Nth bytecode that loopbridge runs.

A real Ctrl-C is delivered between two bytecodes of the main thread, at a moment
nobody chooses. Tracing opcodes (``frame.f_trace_opcodes``) lets a test raise it
at *each* of those moments in turn, in the calling thread, and check that every
one of them leaves the bridge whole. Only loopbridge's own frames are counted:
the scheduling and waiting paths of a call, nothing of the test or the stdlib.

On 3.10 and 3.11 the injector traces opcodes with ``sys.settrace``; on 3.12+, where
opcode tracing set from a trace function no longer fires, it uses ``sys.monitoring``
INSTRUCTION events on loopbridge's code objects (only in the arming thread).

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
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
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
        self._prev_code: dict[CodeType, str] = {}

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(PKG) or frame.f_code in _gc_codes():
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

    def _instruction(self, code: CodeType, offset: int) -> Any:
        """sys.monitoring's INSTRUCTION callback (3.12+): the same rule, per code object."""
        if self.fired_at is not None or threading.get_ident() != self.thread:
            return None
        op = _opnames(code).get(offset, "")
        prev = self._prev_code.get(code)
        self._prev_code[code] = op
        if not (op in _ENTRY or prev in _AFTER or prev is None):
            return None
        self.count += 1
        if self.count == self.n:
            self.fired_at = f"{code.co_name}:{offset}"
            raise KeyboardInterrupt(f"injected at point {self.n} ({self.fired_at})")
        return None

    @contextmanager
    def armed(self) -> Iterator[None]:
        if sys.version_info >= (3, 12):
            mon = sys.monitoring
            event = mon.events.INSTRUCTION
            mon.use_tool_id(_TOOL, "loopbridge-inject")
            skip = _gc_codes()
            codes = [c for c in _package_codes() if c not in skip]
            try:
                mon.register_callback(_TOOL, event, self._instruction)
                for code in codes:
                    mon.set_local_events(_TOOL, code, event)
                yield
            finally:
                for code in codes:
                    mon.set_local_events(_TOOL, code, 0)
                mon.register_callback(_TOOL, event, None)
                mon.free_tool_id(_TOOL)
            return
        old = sys.gettrace()
        sys.settrace(self._global)
        try:
            yield
        finally:
            sys.settrace(old)


_TOOL = 4  # a sys.monitoring tool id left free by debuggers (0-2) and profilers (5)


def _gc_codes() -> set[CodeType]:
    """loopbridge's garbage-collector callbacks (``gc.callbacks``). They run at
    whatever allocation starts a collection, which is not a point of the call's path
    and moves from run to run; and CPython swallows what is raised in them
    ("Exception ignored in"), so a Ctrl-C landing there is CPython's business.
    Counting them made the walk depend on when the collector ran."""
    from loopbridge import _faces

    out = {_faces._gc_phase.__code__}  # registered on first use: maybe not yet
    for cb in gc.callbacks:
        code = getattr(getattr(cb, "__func__", cb), "__code__", None)
        if isinstance(code, CodeType) and code.co_filename.startswith(PKG):
            out.add(code)
    return out


@functools.cache
def _opnames(code: CodeType) -> dict[int, str]:
    return {ins.offset: ins.opname for ins in dis.get_instructions(code)}


def _package_codes() -> list[CodeType]:
    """Every code object of the loaded loopbridge modules, nested ones included."""
    out: dict[int, CodeType] = {}

    def add(code: CodeType) -> None:
        if id(code) in out or not code.co_filename.startswith(PKG):
            return
        out[id(code)] = code
        for const in code.co_consts:
            if isinstance(const, CodeType):
                add(const)

    def add_obj(obj: Any) -> None:
        obj = getattr(obj, "__func__", obj)
        if isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    add_obj(f)
        code = getattr(obj, "__code__", None)
        if isinstance(code, CodeType):
            add(code)

    for name, module in list(sys.modules.items()):
        if name != "loopbridge" and not name.startswith("loopbridge."):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, type) and obj.__module__ == module.__name__:
                for member in vars(obj).values():
                    add_obj(member)
            else:
                add_obj(obj)
    return list(out.values())


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
