"""pytest-asyncio's event loops, read statically: which loop each async test and
fixture runs in, from ``loop_scope=``/``scope=`` and the defaults a project sets in
``pytest.ini``, ``pyproject.toml``, ``tox.ini`` or ``setup.cfg``.

pytest-asyncio's rules (0.24 and later): a test runs in the loop of its
``@pytest.mark.asyncio(loop_scope=...)`` (on the test, its class, or the module's
``pytestmark``), else ``asyncio_default_test_loop_scope``, else its own (function)
loop. An async fixture runs in the loop of its ``loop_scope``, else
``asyncio_default_fixture_loop_scope``, else its caching ``scope``.
"""

from __future__ import annotations

import ast
import configparser
from dataclasses import dataclass, field
from pathlib import Path

from ._config import ConfigError, load_toml
from ._index import Func, Module, Project
from ._loopbound import is_bound_expr

__all__ = ["PytestIndex", "read_pytest_ini"]

SCOPES = {"function": 0, "class": 1, "module": 2, "package": 3, "session": 4}
_FIXTURE = frozenset(
    {"pytest.fixture", "pytest_asyncio.fixture", "pytest_asyncio.plugin.fixture", "fixture"}
)
_NOT_FIXTURES = frozenset({"self", "cls", "request"})


def read_pytest_ini(folder: Path) -> dict[str, str]:
    """The pytest options the nearest pytest configuration above *folder* sets, in
    pytest's own order of precedence (pytest.ini, pyproject.toml, tox.ini, setup.cfg)."""
    for d in [folder, *folder.parents]:
        ini = d / "pytest.ini"
        if ini.is_file():
            return _ini_section(ini, "pytest")
        pyproject = d / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = load_toml(pyproject)
            except ConfigError:  # a broken pyproject is not ours to judge here
                data = {}
            opts = data.get("tool", {}).get("pytest", {}).get("ini_options")
            if isinstance(opts, dict):
                return {k: str(v) for k, v in opts.items()}
        for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
            f = d / name
            if f.is_file():
                got = _ini_section(f, section)
                if got:
                    return got
    return {}


def _ini_section(path: Path, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    if not parser.has_section(section):
        return {}
    return {k: v.strip() for k, v in parser.items(section)}


@dataclass
class Fixture:
    name: str
    func: Func
    scope: str
    loop_scope: str | None
    folder: Path


@dataclass
class Test:
    func: Func
    loop_scope: str
    label: str
    unit: str  # the loop it runs in: one per test, class, module, package or session
    ini: dict[str, str] = field(default_factory=dict)


def _is_test_file(path: Path) -> bool:
    n = path.name
    return n.endswith(".py") and (n.startswith("test_") or n.endswith("_test.py"))


def _kwargs(call: ast.expr) -> dict[str, str]:
    out = {}
    if isinstance(call, ast.Call):
        for kw in call.keywords:
            if kw.arg and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                out[kw.arg] = kw.value.value
    return out


class PytestIndex:
    """The project's async tests and fixtures, with the loop each runs in."""

    def __init__(self, project: Project) -> None:
        self.fixtures: dict[str, list[Fixture]] = {}
        self.tests: list[Test] = []
        self._ini: dict[Path, dict[str, str]] = {}
        for mod in project.modules.values():
            path = mod.source.path
            if mod.source.is_notebook:
                continue
            if _is_test_file(path) or path.name == "conftest.py":
                self._read_fixtures(project, mod)
        for mod in project.modules.values():
            if not mod.source.is_notebook and _is_test_file(mod.source.path):
                self._read_tests(project, mod)

    def ini(self, folder: Path) -> dict[str, str]:
        got = self._ini.get(folder)
        if got is None:
            got = self._ini[folder] = read_pytest_ini(folder)
        return got

    def _decorator(self, project: Project, mod: Module, func: Func) -> ast.expr | None:
        node = func.node
        if isinstance(node, ast.Lambda):
            return None
        for d in node.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            q = project.qualify(target, mod, None) or ""
            if q in _FIXTURE or (q.endswith(".fixture") and q.startswith("pytest")):
                return d
        return None

    def _read_fixtures(self, project: Project, mod: Module) -> None:
        for func in mod.funcs.values():
            if func.parent is not None:
                continue
            d = self._decorator(project, mod, func)
            if d is None:
                continue
            kw = _kwargs(d)
            name = kw.get("name", func.name)
            fx = Fixture(
                name,
                func,
                kw.get("scope", "function"),
                kw.get("loop_scope"),
                mod.source.path.parent,
            )
            self.fixtures.setdefault(name, []).append(fx)

    def _mark_scope(self, project: Project, mod: Module, decorators: list[ast.expr]) -> str | None:
        for d in decorators:
            if not isinstance(d, ast.Call):
                continue
            q = project.qualify(d.func, mod, None) or ""
            if q.endswith("mark.asyncio"):
                kw = _kwargs(d)
                return kw.get("loop_scope") or kw.get("scope")
        return None

    def _module_mark(self, project: Project, mod: Module) -> str | None:
        for stmt in mod.source.tree.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
            ):
                value = stmt.value
                marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
                got = self._mark_scope(project, mod, list(marks))
                if got:
                    return got
        return None

    def _read_tests(self, project: Project, mod: Module) -> None:
        ini = self.ini(mod.source.path.parent)
        module_scope = self._module_mark(project, mod)
        default = ini.get("asyncio_default_test_loop_scope") or "function"
        for func in mod.funcs.values():
            node = func.node
            if not func.is_async or not func.name.startswith("test"):
                continue
            if isinstance(node, ast.Lambda):
                continue
            cls_node = None
            if func.cls is not None:
                cls_node = mod.classes.get(func.cls)
                if cls_node is None or not cls_node.name.startswith("Test"):
                    continue
            elif func.parent is not None:
                continue
            scope = self._mark_scope(project, mod, node.decorator_list)
            if scope is None and cls_node is not None:
                scope = self._mark_scope(project, mod, cls_node.decorator_list)
            scope = scope or module_scope or default
            if scope not in SCOPES:
                scope = "function"
            unit = {
                "function": f"test:{func.key}",
                "class": f"class:{func.cls or func.key}",
                "module": f"module:{mod.name}",
                "package": f"package:{mod.source.path.parent}",
                "session": "session",
            }[scope]
            label = f"{mod.source.shown}::{func.key.split('.', 1)[-1] if func.cls else func.name}"
            self.tests.append(Test(func, scope, label, unit, ini))

    def test_loops(self, project: Project) -> list[tuple[str, str, list[Func]]]:
        """One entry per event loop the async tests run in: (loop id, label, tests)."""
        units: dict[str, tuple[str, list[Func]]] = {}
        for t in self.tests:
            _label, funcs = units.setdefault(t.unit, (t.label, []))
            funcs.append(t.func)
        return [(unit, label, funcs) for unit, (label, funcs) in units.items()]

    def fixture_for(self, name: str, folder: Path) -> Fixture | None:
        """The fixture a test in *folder* gets for *name*: its own module's, else the
        nearest conftest's."""
        best: Fixture | None = None
        best_depth = -1
        for fx in self.fixtures.get(name, []):
            try:
                folder.relative_to(fx.folder)
            except ValueError:
                continue
            depth = len(fx.folder.parts)
            if depth > best_depth:
                best, best_depth = fx, depth
        return best

    def mismatches(
        self, project: Project, table: frozenset[str]
    ) -> list[tuple[Fixture, set[str], str, str, str]]:
        """Loop-bound fixtures shared wider than the loops of the tests that use them."""
        found: dict[int, tuple[Fixture, set[str], str, str, str]] = {}
        sync_users: dict[int, tuple[Fixture, set[str], set[str], str, str]] = {}
        for t in self.tests:
            folder = t.func.module.source.path.parent
            for fx in self._closure(t, folder):
                ctor = self._makes_bound(project, fx, table)
                if ctor is None:
                    continue
                if fx.func.is_async:
                    fx_loop = (
                        fx.loop_scope or t.ini.get("asyncio_default_fixture_loop_scope") or fx.scope
                    )
                    if fx_loop == "fixture":  # pytest-asyncio 1.5's explicit "its scope"
                        fx_loop = fx.scope
                    if SCOPES.get(fx_loop, 0) > SCOPES.get(t.loop_scope, 0):
                        entry = found.setdefault(id(fx), (fx, set(), fx_loop, t.loop_scope, ctor))
                        entry[1].add(t.label)
                elif SCOPES.get(fx.scope, 0) > SCOPES.get(t.loop_scope, 0):
                    entry2 = sync_users.setdefault(id(fx), (fx, set(), set(), fx.scope, ctor))
                    entry2[1].add(t.label)
                    entry2[2].add(t.unit)
        out = list(found.values())
        for fx, tests, units, scope, ctor in sync_users.values():
            if len(units) >= 2:  # the object binds to the first test's loop
                out.append((fx, tests, scope, "function", ctor))
        return out

    def _closure(self, t: Test, folder: Path) -> list[Fixture]:
        out: list[Fixture] = []
        seen: set[str] = set()
        todo = [p for p in t.func.params if p not in _NOT_FIXTURES]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            fx = self.fixture_for(name, folder)
            if fx is None:
                continue
            out.append(fx)
            todo.extend(p for p in fx.func.params if p not in _NOT_FIXTURES)
        return out

    def _makes_bound(self, project: Project, fx: Fixture, table: frozenset[str]) -> str | None:
        func = fx.func
        node = func.node
        if isinstance(node, ast.Lambda):
            return None
        mod = func.module
        made: dict[str, str] = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Assign):
                ctor = is_bound_expr(n.value, project, mod, func, table)
                if ctor:
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            made[t.id] = ctor
            elif isinstance(n, (ast.With, ast.AsyncWith)):
                for item in n.items:
                    ctor = is_bound_expr(item.context_expr, project, mod, func, table)
                    if ctor and isinstance(item.optional_vars, ast.Name):
                        made[item.optional_vars.id] = ctor
        for n in ast.walk(node):
            value = None
            if isinstance(n, (ast.Yield, ast.Return)):
                value = n.value
            if value is None:
                continue
            ctor = is_bound_expr(value, project, mod, func, table)
            if ctor:
                return ctor
            if isinstance(value, ast.Name) and value.id in made:
                return made[value.id]
        return None
