"""Applying fixes to source text, and showing them as a diff."""

from __future__ import annotations

import ast
import difflib

from ._findings import Finding

__all__ = ["apply_fixes", "unified_diff"]


def _offset(lines: list[str], line: int, col_bytes: int) -> int:
    """Character offset of (1-based line, UTF-8 byte column), as ``ast`` gives them."""
    before = sum(len(x) for x in lines[: line - 1])
    text = lines[line - 1] if line - 1 < len(lines) else ""
    return before + len(text.encode("utf-8")[:col_bytes].decode("utf-8", "replace"))


def _import_at(text: str, tree: ast.Module) -> int:
    """Where ``import loopbridge`` goes: after the last top-level import at the top of
    the module (or after its docstring and ``from __future__`` lines)."""
    lines = text.splitlines(keepends=True)
    last = 0
    for i, stmt in enumerate(tree.body):
        is_doc = i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or is_doc:
            last = stmt.end_lineno or stmt.lineno
        else:
            break
    return sum(len(x) for x in lines[:last])


def apply_fixes(text: str, findings: list[Finding], unsafe: bool) -> tuple[str, list[Finding]]:
    """The text with the fixes of *findings* applied (safe ones, and the others if
    *unsafe*); overlapping edits after the first are left for another run. Returns
    the new text and the findings fixed."""
    lines = text.splitlines(keepends=True)
    chosen: list[tuple[int, int, str, Finding]] = []
    imports: set[str] = set()
    fixed: list[Finding] = []
    for f in findings:
        fix = f.fix
        if fix is None or not (fix.safe or unsafe):
            continue
        spans = [
            (_offset(lines, e.line, e.col), _offset(lines, e.end_line, e.end_col), e.text)
            for e in fix.edits
        ]
        if any(s < ce and cs < e2 for s, e2, _t in spans for cs, ce, _x, _y in chosen):
            continue  # overlaps one already taken: next run
        chosen.extend((s, e2, t, f) for s, e2, t in spans)
        if fix.add_import:
            imports.add(fix.add_import)
        fixed.append(f)
    out = text
    for start, end, new, _f in sorted(chosen, key=lambda c: c[0], reverse=True):
        out = out[:start] + new + out[end:]
    if imports:
        tree = ast.parse(out)
        at = _import_at(out, tree)
        eol = "\r\n" if "\r\n" in text else "\n"  # the file's own line endings
        block = "".join(f"import {name}{eol}" for name in sorted(imports))
        if at and not out[:at].endswith("\n"):
            block = eol + block
        out = out[:at] + block + out[at:]
    return out, fixed


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
