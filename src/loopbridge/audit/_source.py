"""Finding and reading what to check: Python files and notebooks, never imported.

A notebook becomes one module: its code cells are parsed one by one (a cell that
does not parse is reported and skipped; the others are still checked), and their
lines are laid end to end, so that each node's line maps back to (cell, line).
IPython syntax (``%magic``, ``!shell``, ``x = !cmd``, ``expr?``) is blanked out line
for line, so the line numbers stay those the user sees. Cells whose cell magic runs
something other than Python (``%%writefile``, ``%%bash``, ``%%html``...) are not code.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Problem", "Source", "blank_ipython", "discover", "load"]

# folders never walked into (as ruff's defaults), unless named on the command line
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "__pycache__",
        "node_modules",
        "build",
        "dist",
        "site-packages",
        ".ipynb_checkpoints",
        ".eggs",
    }
)
# cell magics whose body is Python run in the kernel's namespace
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "aio"})
_MAGIC_LINE = re.compile(r"^(\s*)(%{1,2}|!{1,2})")
_ASSIGN_MAGIC = re.compile(r"^(\s*[\w.\[\], ]+=\s*)(%|!)")
_HELP = re.compile(r"^(\s*)[\w.]+\?{1,2}\s*$")
_REROUTE = re.compile(r"^\s*%aio\s+reroute\s+(on|off)\b", re.M)


@dataclass
class Problem:
    """A file that could not be checked (LB000): what, where, and why."""

    path: str
    line: int
    col: int
    message: str
    cell: int | None = None


@dataclass
class Source:
    """One module to check: a .py file, or a notebook's code cells laid end to end."""

    path: Path  # absolute
    shown: str  # as given or relative to the working folder
    text: str  # the (virtual) module text
    tree: ast.Module
    is_notebook: bool = False
    # notebook: (first virtual line, cell number, cell's own line count) per code cell
    cells: list[tuple[int, int, int]] = field(default_factory=list)
    # notebook cells run while loopbridge's `%aio reroute on` is in force (from the cell
    # that turns it on to the one that turns it off): their asyncio.run goes to the
    # worker loop, so it does not fail
    rerouted: set[int] = field(default_factory=set)
    encoding: str = "utf-8"  # the file's own (a coding cookie), kept when a fix is written
    lines: list[str] = field(default_factory=list)

    def locate(self, line: int) -> tuple[int | None, int]:
        """A virtual line as (cell number, line within the cell); .py: (None, line)."""
        if not self.is_notebook:
            return None, line
        for first, number, _count in reversed(self.cells):
            if line >= first:
                return number, line - first + 1
        return None, line

    def line_text(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1]
        return ""


def _excluded(path: Path, root: Path, patterns: list[str]) -> bool:
    if not patterns:
        return False
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.as_posix()
    name = path.name
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def discover(paths: list[Path], exclude: list[str], root: Path) -> tuple[list[Path], list[Problem]]:
    """Every .py/.pyi/.ipynb file under *paths* (files named directly are always taken,
    whatever their suffix), in a stable order; a missing path is a problem."""
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for given in paths:
        p = given if given.is_absolute() else Path.cwd() / given
        if not p.exists():
            problems.append(Problem(str(given), 0, 0, f"no such file or folder: {given}"))
            continue
        if p.is_file():
            if p.resolve() not in seen:
                seen.add(p.resolve())
                found.append(p)
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in SKIP_DIRS
                and not d.endswith(".egg-info")
                and not _excluded(Path(dirpath) / d, root, exclude)
            )
            for name in sorted(filenames):
                if not name.endswith((".py", ".pyi", ".ipynb")):
                    continue
                f = Path(dirpath) / name
                if _excluded(f, root, exclude) or f.resolve() in seen:
                    continue
                seen.add(f.resolve())
                found.append(f)
    return found, problems


def shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def load(path: Path) -> tuple[Source | None, list[Problem]]:
    """Read and parse one file; a file that cannot be is a list of problems."""
    shown = shown_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(shown, 0, 0, f"cannot read: {exc.strerror or exc}")]
    if b"\0" in raw[:8192]:
        return None, [Problem(shown, 0, 0, "binary file (it has NUL bytes): not Python")]
    if path.suffix == ".ipynb":
        return _load_notebook(path, shown, raw)
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
        source = raw.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        return None, [Problem(shown, 0, 0, f"cannot decode: {exc}")]
    try:
        tree = ast.parse(source, filename=shown, type_comments=False)
    except SyntaxError as exc:
        return None, [Problem(shown, exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}")]
    except ValueError as exc:  # e.g. source with NUL after the first 8 KiB
        return None, [Problem(shown, 0, 0, f"cannot parse: {exc}")]
    except (RecursionError, MemoryError):
        return None, [Problem(shown, 0, 0, "too deeply nested for Python's parser to read")]
    lines = source.splitlines()
    if encoding == "utf-8-sig":
        source = source.removeprefix("\ufeff")
    return Source(path, shown, source, tree, lines=lines, encoding=encoding), []


def blank_ipython(source: str) -> str | None:
    """The cell as Python, line for line; None if it is not Python at all."""
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        magic = lines[0][2:].split(None, 1)[0] if lines[0][2:].strip() else ""
        if magic not in PYTHON_CELL_MAGICS:
            return None
        lines[0] = "pass"
    out = []
    for line in lines:
        m = _ASSIGN_MAGIC.match(line)
        if m and not line.rstrip().endswith(("%", "!")) and "==" not in m.group(1):
            out.append(m.group(1) + "None")
            continue
        m = _MAGIC_LINE.match(line)
        if m:
            out.append(m.group(1) + "pass")
            continue
        m = _HELP.match(line)
        if m:
            out.append(m.group(1) + "pass")
            continue
        out.append(line)
    return "\n".join(out)


def _load_notebook(path: Path, shown: str, raw: bytes) -> tuple[Source | None, list[Problem]]:
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [Problem(shown, 0, 0, f"not a valid notebook (not JSON): {exc}")]
    cells_json = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells_json, list):
        return None, [Problem(shown, 0, 0, "not a valid notebook: no 'cells' list")]
    problems: list[Problem] = []
    body: list[ast.stmt] = []
    text_lines: list[str] = []
    cells: list[tuple[int, int, int]] = []
    number = 0
    rerouted: set[int] = set()
    reroute = False
    for cell in cells_json:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1  # code cells are counted as Jupyter shows them: 1, 2, 3...
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        for m in _REROUTE.finditer(src):
            reroute = m.group(1) == "on"
        if reroute:
            rerouted.add(number)
        python = blank_ipython(src)
        if python is None:
            continue
        first = len(text_lines) + 1
        cell_lines = python.splitlines() or [""]
        try:
            tree = compile(
                python, shown, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
        except SyntaxError as exc:
            problems.append(
                Problem(shown, exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}", number)
            )
            continue
        except (RecursionError, MemoryError, ValueError) as exc:
            why = "too deeply nested to read" if not isinstance(exc, ValueError) else str(exc)
            problems.append(Problem(shown, 0, 0, f"cannot parse: {why}", number))
            continue
        ast.increment_lineno(tree, first - 1)
        body.extend(tree.body)
        cells.append((first, number, len(cell_lines)))
        text_lines.extend(cell_lines)
    module = ast.Module(body=body, type_ignores=[])
    text = "\n".join(text_lines)
    return (
        Source(
            path,
            shown,
            text,
            module,
            is_notebook=True,
            cells=cells,
            lines=text_lines,
            rerouted=rerouted,
        ),
        problems,
    )
