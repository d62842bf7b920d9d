"""Applying fixes to source text, and showing them as a diff."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import re

from ._findings import Edit, Finding
from ._source import Source, blank_ipython

__all__ = ["apply_fixes", "fix_notebook", "unified_diff"]


def _offset(lines: list[str], line: int, col_bytes: int) -> int:
    """Character offset of (1-based line, UTF-8 byte column), as ``ast`` gives them."""
    before = sum(len(x) for x in lines[: line - 1])
    text = lines[line - 1] if line - 1 < len(lines) else ""
    return before + len(text.encode("utf-8")[:col_bytes].decode("utf-8", "replace"))


def _import_at(text: str, tree: ast.Module, cell: bool = False) -> int:
    """Where ``import loopbridge`` goes: after the last top-level import at the top of
    the module (or after its docstring and ``from __future__`` lines). In a notebook
    cell, after its leading imports, and never above a ``%%magic`` first line."""
    lines = text.splitlines(keepends=True)
    last = 1 if cell and text.startswith("%%") else 0
    for i, stmt in enumerate(tree.body):
        if cell and last and stmt.lineno == 1:
            continue  # the `%%time` line, blanked to `pass`
        is_doc = i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or is_doc:
            last = stmt.end_lineno or stmt.lineno
        else:
            break
    return sum(len(x) for x in lines[:last])


def _parse_py(text: str) -> ast.Module:
    return ast.parse(text)


def _parse_cell(text: str) -> ast.Module:
    """A notebook cell as the kernel reads it: IPython syntax blanked line for line,
    top-level ``await`` allowed; compiled to code, so an ``await`` the kernel would
    refuse (in a lambda, a class body, a sync ``def``) fails here too."""
    python = blank_ipython(text)
    if python is None:
        raise SyntaxError("not a Python cell")
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    compile(python, "<cell>", "exec", flags=flags)
    tree = compile(python, "<cell>", "exec", flags=flags | ast.PyCF_ONLY_AST)
    assert isinstance(tree, ast.Module)
    return tree


def apply_fixes(
    text: str, findings: list[Finding], unsafe: bool, cell: bool = False
) -> tuple[str, list[Finding]]:
    """The text with the fixes of *findings* applied (safe ones, and the others if
    *unsafe*); overlapping edits after the first are left for another run. Returns
    the new text and the findings fixed; if the result would not compile (a fix
    that does not fit where it landed), the text unchanged and no findings.
    *cell*: the text is one notebook cell (IPython syntax, top-level ``await``)."""
    parse = _parse_cell if cell else _parse_py
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
    try:
        tree = parse(out)
        if imports:
            at = _import_at(out, tree, cell)
            eol = "\r\n" if "\r\n" in text else "\n"  # the file's own line endings
            block = "".join(f"import {name}{eol}" for name in sorted(imports))
            if at and not out[:at].endswith("\n"):
                block = eol + block
            out = out[:at] + block + out[at:]
            parse(out)
    except (SyntaxError, ValueError):
        return text, []
    return out, fixed


# -- notebooks --------------------------------------------------------------------


def _cell_finding(f: Finding, first: int) -> Finding:
    """*f* with its fix's edits moved from the notebook's virtual lines to its cell's."""
    assert f.fix is not None
    edits = tuple(
        dataclasses.replace(e, line=e.line - first + 1, end_line=e.end_line - first + 1)
        for e in f.fix.edits
    )
    return dataclasses.replace(f, fix=dataclasses.replace(f.fix, edits=edits))


def _edits_in_code(edits: tuple[Edit, ...], blanked: list[str], original: list[str]) -> bool:
    """Every edited line is Python as written (not a magic the loader blanked)."""
    for e in edits:
        for n in range(e.line, e.end_line + 1):
            if n > len(original) or blanked[n - 1] != original[n - 1]:
                return False
    return True


def _indent_of(raw: str) -> int | None:
    m = re.match(r"\{\r?\n( +)\"", raw)
    return len(m.group(1)) if m else None


def fix_notebook(
    src: Source, findings: list[Finding], unsafe: bool
) -> tuple[str | None, list[tuple[int, str, str]], list[Finding]]:
    """Apply the fixes of *findings* to the code cells of notebook *src*, each cell
    on its own text (magics and all). Returns the notebook's new JSON text (None when
    nothing changed), (cell number, before, after) per changed cell, and the findings
    fixed. The JSON keeps the file's own layout when it is Jupyter's (indent, key
    order, non-ASCII text as written); outputs and metadata are left as they are."""
    raw = src.path.read_bytes().decode("utf-8")
    nb = json.loads(raw)
    keep_layout = _plain_layout(nb, raw)  # asked before the cells change
    code_cells = [c for c in nb.get("cells", []) if isinstance(c, dict)]
    code_cells = [c for c in code_cells if c.get("cell_type") == "code"]
    firsts = {number: first for first, number, _count in src.cells}
    by_cell: dict[int, list[Finding]] = {}
    for f in findings:
        if f.cell is not None and f.fix is not None and f.cell in firsts:
            by_cell.setdefault(f.cell, []).append(f)
    changed: list[tuple[int, str, str]] = []
    fixed: list[Finding] = []
    for number, found in sorted(by_cell.items()):
        if number > len(code_cells):
            continue
        cell = code_cells[number - 1]
        source = cell.get("source", "")
        was_list = isinstance(source, list)
        before = "".join(source) if was_list else str(source)
        blanked = (blank_ipython(before) or "").splitlines()
        first = firsts[number]
        local = [_cell_finding(f, first) for f in found]
        lines = before.splitlines()
        local = [
            f for f in local if f.fix is not None and _edits_in_code(f.fix.edits, blanked, lines)
        ]
        after, done = apply_fixes(before, local, unsafe, cell=True)
        if not done or after == before:
            continue
        cell["source"] = after.splitlines(keepends=True) if was_list else after
        changed.append((number, before, after))
        fixed.extend(done)
    if not changed:
        return None, [], []
    if keep_layout is not None:
        text = json.dumps(nb, indent=keep_layout, ensure_ascii=False)
        return (text + "\n" if raw.endswith("\n") else text), changed, fixed
    # not a layout we can keep: as Jupyter writes it
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n", changed, fixed


def _plain_layout(nb: object, raw: str) -> int | None:
    """The indent of *raw* when it is a plain ``json.dumps`` layout of *nb* (Jupyter's
    is: indent 1, non-ASCII as written); None for any other layout."""
    indent = _indent_of(raw)
    if indent is None:
        return None
    same = json.dumps(nb, indent=indent, ensure_ascii=False) == raw.rstrip("\n")
    return indent if same else None


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff of one file (or one notebook cell: *path* ``nb.ipynb:cell 3``)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    # a last line without a newline is marked as patch(1) and git do
    return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n" for x in lines)
