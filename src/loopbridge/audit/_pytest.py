"""pytest-asyncio's event loops, read statically: which loop each async test and
fixture runs in, from ``loop_scope=``/``scope=`` and the defaults a project sets in
``pytest.ini``, ``pyproject.toml``, ``tox.ini`` or ``setup.cfg``.

pytest-asyncio's rules (0.24 and later): a test runs in the loop named by the
``loop_scope`` of its *closest* ``asyncio`` mark (its own, one a
``pytest_collection_modifyitems`` hook in a conftest adds, its class's, the module's
``pytestmark``), else ``asyncio_default_test_loop_scope``, else its own (function)
loop: a bare ``@pytest.mark.asyncio`` on the test hides a scoped mark on its module.
An async fixture runs in the loop of its ``loop_scope``, else
``asyncio_default_fixture_loop_scope``, else its caching ``scope``.

In strict mode (the default) pytest-asyncio runs only marked tests and
``@pytest_asyncio.fixture`` fixtures; ``asyncio_mode = auto`` (or ``--asyncio-mode=auto``
in ``addopts``) takes every async test and fixture. Tests marked ``anyio`` (or asking
for ``anyio_backend``) run in AnyIO's runner instead: one runner lives while any test
or async fixture holds it, so a wider async fixture shares its loop with the tests.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._config import ConfigError, load_toml
from ._index import Func, Module, Project, root_name
from ._loopbound import is_bound_expr

__all__ = ["PytestIndex", "read_pytest_ini"]

# loop-bound types that take the running loop in their constructor (aiohttp reads it
# in ClientSession/TCPConnector.__init__), not at their first use
BOUND_WHEN_MADE = frozenset(
    {
        "aiohttp.ClientSession",
        "aiohttp.TCPConnector",
        "aiokafka.AIOKafkaProducer",
        "aiokafka.AIOKafkaConsumer",
    }
)
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
    asyncio_fixture: bool = False  # decorated with pytest_asyncio.fixture


@dataclass
class Test:
    func: Func
    loop_scope: str
    label: str
    unit: str  # the loop it runs in: one per test, class, module, package or session
    ini: dict[str, str] = field(default_factory=dict)
    plugin: str = "asyncio"  # or "anyio": AnyIO's pytest plugin runs it


@dataclass
class _Mark:
    plugin: str  # "asyncio" or "anyio"
    scope: str | None  # loop_scope= (or the older scope=) of an asyncio mark


def _disabled(ini: dict[str, str], plugin: str) -> bool:
    """``-p no:<plugin>`` in addopts: pytest does not load that plugin."""
    return re.search(rf"-p\s*no:{plugin}\b", ini.get("addopts", "")) is not None


def asyncio_mode(ini: dict[str, str]) -> str:
    """pytest-asyncio's mode: "off" when addopts has ``-p no:asyncio``, else
    ``--asyncio-mode`` in addopts, else ``asyncio_mode``, else its default, strict."""
    if _disabled(ini, "asyncio"):
        return "off"
    m = re.search(r"--asyncio-mode[= ]+(\w+)", ini.get("addopts", ""))
    if m:
        return m.group(1)
    return ini.get("asyncio_mode", "").strip().strip("\"'") or "strict"


def _is_test_file(path: Path, ini: dict[str, str]) -> bool:
    """pytest collects the file: its name matches ``python_files`` (default
    ``test_*.py *_test.py``)."""
    patterns = ini.get("python_files", "").replace(",", " ").split() or ["test_*.py", "*_test.py"]
    patterns = [p.strip("[]'\"") for p in patterns]
    return path.suffix == ".py" and any(fnmatch.fnmatch(path.name, p) for p in patterns)


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
        # conftest folder -> (marks its pytest_collection_modifyitems adds, put first?)
        self._hooks: dict[Path, tuple[list[_Mark], bool]] = {}
        self._spans: set[str] | None = None
        for mod in project.modules.values():
            path = mod.source.path
            if mod.source.is_notebook:
                continue
            if _is_test_file(path, self.ini(path.parent)) or path.name == "conftest.py":
                self._read_fixtures(project, mod)
        for mod in project.modules.values():
            path = mod.source.path
            if not mod.source.is_notebook and _is_test_file(path, self.ini(path.parent)):
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
            if mod.source.path.name == "conftest.py" and func.name == (
                "pytest_collection_modifyitems"
            ):
                self._read_hook(project, mod, func)
                continue
            d = self._decorator(project, mod, func)
            if d is None:
                continue
            kw = _kwargs(d)
            name = kw.get("name", func.name)
            target = d.func if isinstance(d, ast.Call) else d
            fx = Fixture(
                name,
                func,
                kw.get("scope", "function"),
                kw.get("loop_scope"),
                mod.source.path.parent,
                (project.qualify(target, mod, None) or "").startswith("pytest_asyncio"),
            )
            self.fixtures.setdefault(name, []).append(fx)

    def _read_hook(self, project: Project, mod: Module, func: Func) -> None:
        """Marks a conftest's ``pytest_collection_modifyitems`` adds to the tests under
        it (``item.add_marker(pytest.mark.asyncio(loop_scope="session"))``, the form
        pytest-asyncio's docs give, the mark often first bound to a name)."""
        node = func.node
        if isinstance(node, ast.Lambda):
            return
        names: dict[str, ast.expr] = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Assign) and len(n.targets) == 1:
                target = n.targets[0]
                if not isinstance(target, ast.Name):
                    continue
                names[target.id] = n.value
        marks: list[_Mark] = []
        first = False
        for n in ast.walk(node):
            if not (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "add_marker"
                and n.args
            ):
                continue
            arg = n.args[0]
            if isinstance(arg, ast.Name) and arg.id in names:
                arg = names[arg.id]
            got = self._marks(project, mod, [arg])
            if got:
                marks.extend(got)
                # add_marker(mark, append=False) puts it before the test's own marks
                append = n.args[1] if len(n.args) > 1 else None
                for k in n.keywords:
                    if k.arg == "append":
                        append = k.value
                if isinstance(append, ast.Constant) and append.value is False:
                    first = True
        if marks:
            self._hooks[mod.source.path.parent] = (marks, first)

    def _hook_for(self, folder: Path) -> tuple[list[_Mark], bool]:
        """The marks the nearest conftest hook above *folder* adds to its tests."""
        for d in [folder, *folder.parents]:
            if d in self._hooks:
                return self._hooks[d]
        return [], False

    def _marks(self, project: Project, mod: Module, decorators: list[ast.expr]) -> list[_Mark]:
        """The ``asyncio`` and ``anyio`` marks among *decorators*, in order."""
        out = []
        for d in decorators:
            target = d.func if isinstance(d, ast.Call) else d
            q = project.qualify(target, mod, None) or ""
            if q.endswith("mark.asyncio"):
                kw = _kwargs(d)
                out.append(_Mark("asyncio", kw.get("loop_scope") or kw.get("scope")))
            elif q.endswith("mark.anyio"):
                out.append(_Mark("anyio", None))
        return out

    def _module_marks(self, project: Project, mod: Module) -> list[_Mark]:
        out: list[_Mark] = []
        for stmt in mod.source.tree.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
            ):
                value = stmt.value
                marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
                out = self._marks(project, mod, list(marks))
        return out

    def _read_tests(self, project: Project, mod: Module) -> None:
        ini = self.ini(mod.source.path.parent)
        mode = asyncio_mode(ini)
        module_marks = self._module_marks(project, mod)
        hook_marks, hook_first = self._hook_for(mod.source.path.parent)
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
            # pytest's order, closest first: the test's own marks (a hook's added
            # first or last), then its class's, then its module's
            own = self._marks(project, mod, node.decorator_list)
            own = [*hook_marks, *own] if hook_first else [*own, *hook_marks]
            cls_marks = self._marks(project, mod, cls_node.decorator_list) if cls_node else []
            marks = [*own, *cls_marks, *module_marks]
            closest = next((m for m in marks if m.plugin == "asyncio"), None)
            if mode == "off":
                closest = None
            if closest is None:
                anyio = any(m.plugin == "anyio" for m in marks) or "anyio_backend" in func.params
                if anyio and not _disabled(ini, "anyio"):
                    label = self._label(mod, func)
                    self.tests.append(Test(func, "function", label, "", ini, plugin="anyio"))
                    continue
                if mode != "auto":
                    continue  # strict mode: pytest-asyncio does not run it
            scope = (closest.scope if closest else None) or default
            if scope not in SCOPES:
                scope = "function"
            unit = {
                "function": f"test:{func.key}",
                "class": f"class:{func.cls or func.key}",
                "module": f"module:{mod.name}",
                "package": f"package:{mod.source.path.parent}",
                "session": "session",
            }[scope]
            self.tests.append(Test(func, scope, self._label(mod, func), unit, ini))

    @staticmethod
    def _label(mod: Module, func: Func) -> str:
        return f"{mod.source.shown}::{func.key.split('.', 1)[-1] if func.cls else func.name}"

    def test_loops(self, project: Project) -> list[tuple[str, str, list[Func]]]:
        """One entry per event loop the async tests run in: (loop id, label, tests).

        AnyIO's plugin keeps one runner while any test or async fixture holds it: a
        test that uses a wider async fixture shares its loop with the other tests of
        that fixture's span (class, module, package or session); other AnyIO tests
        get a runner, and a loop, each."""
        units: dict[str, tuple[str, list[Func]]] = {}
        for t in self.tests:
            unit = t.unit if t.plugin == "asyncio" else self._anyio_unit(t)
            _label, funcs = units.setdefault(unit, (t.label, []))
            funcs.append(t.func)
        return [(unit, label, funcs) for unit, (label, funcs) in units.items()]

    def _anyio_unit(self, t: Test) -> str:
        spans = self._anyio_spans()
        mod = t.func.module
        folder = mod.source.path.parent
        if "session" in spans:
            return "anyio:session"
        for d in [folder, *folder.parents]:
            if f"package:{d}" in spans:
                return f"anyio:package:{d}"
        for key in (f"module:{mod.name}", f"class:{t.func.cls}"):
            if key in spans:
                return f"anyio:{key}"
        return f"anyio:test:{t.func.key}"

    def _anyio_spans(self) -> set[str]:
        """Where a wider async fixture holds AnyIO's runner: "session", "package:<dir>",
        "module:<name>", "class:<class key>"."""
        if self._spans is not None:
            return self._spans
        spans: set[str] = set()
        for t in self.tests:
            if t.plugin != "anyio":
                continue
            mod = t.func.module
            for fx in self._closure(t, mod.source.path.parent):
                if not fx.func.is_async:
                    continue
                if fx.scope == "session":
                    spans.add("session")
                elif fx.scope == "package":
                    spans.add(f"package:{fx.folder}")
                elif fx.scope == "module":
                    spans.add(f"module:{mod.name}")
                elif fx.scope == "class" and t.func.cls:
                    spans.add(f"class:{t.func.cls}")
        self._spans = spans
        return spans

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
    ) -> list[tuple[Fixture, set[str], str, str, str, bool]]:
        """Loop-bound fixtures shared wider than the loops of the tests that use them:
        (fixture, tests, its scope, the tests' loop scope, constructor, bound when made).

        An object bound in the fixture's own loop (awaited when made, entered with
        ``async with``, awaited on in the fixture, or a type that takes the running
        loop when constructed) fails in any test of a narrower loop. One that binds
        lazily, to the loop of its first use, fails only when the fixture hands the
        same object to tests of two or more loops: the first test's loop takes it."""
        found: dict[int, tuple[Fixture, set[str], str, str, str, bool]] = {}
        # fixture -> (fixture, tests, their loops, their loop scopes, its scope, ctor)
        lazy_users: dict[int, tuple[Fixture, set[str], set[str], set[str], str, str]] = {}
        for t in self.tests:
            if t.plugin != "asyncio":
                continue  # AnyIO: a wider async fixture keeps its runner, loop and all
            folder = t.func.module.source.path.parent
            for fx in self._closure(t, folder):
                made = self._makes_bound(project, fx, table)
                if made is None:
                    continue
                ctor, eager = made
                if fx.func.is_async and not fx.asyncio_fixture and asyncio_mode(t.ini) != "auto":
                    continue  # strict mode: pytest-asyncio does not run this fixture
                if fx.func.is_async and eager:
                    fx_loop = (
                        fx.loop_scope or t.ini.get("asyncio_default_fixture_loop_scope") or fx.scope
                    )
                    if fx_loop == "fixture":  # pytest-asyncio 1.5's explicit "its scope"
                        fx_loop = fx.scope
                    if SCOPES.get(fx_loop, 0) > SCOPES.get(t.loop_scope, 0):
                        entry = found.setdefault(
                            id(fx), (fx, set(), fx_loop, t.loop_scope, ctor, True)
                        )
                        entry[1].add(t.label)
                elif SCOPES.get(fx.scope, 0) > SCOPES.get(t.loop_scope, 0):
                    entry2 = lazy_users.setdefault(
                        id(fx), (fx, set(), set(), set(), fx.scope, ctor)
                    )
                    entry2[1].add(t.label)
                    entry2[2].add(t.unit)
                    entry2[3].add(t.loop_scope)
        out = list(found.values())
        for fx, tests, units, test_scopes, scope, ctor in lazy_users.values():
            if len(units) >= 2:  # the object binds to the first test's loop
                narrowest = min(test_scopes, key=lambda x: SCOPES.get(x, 0))
                out.append((fx, tests, scope, narrowest, ctor, False))
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

    def _makes_bound(
        self, project: Project, fx: Fixture, table: frozenset[str]
    ) -> tuple[str, bool] | None:
        """(constructor, bound when made) if the fixture hands out a loop-bound object;
        "bound when made": bound to the fixture's own loop before any test uses it."""
        func = fx.func
        node = func.node
        if isinstance(node, ast.Lambda):
            return None
        mod = func.module
        made: dict[str, tuple[str, bool]] = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Assign):
                ctor = is_bound_expr(n.value, project, mod, func, table)
                if ctor:
                    eager = isinstance(n.value, ast.Await) or ctor in BOUND_WHEN_MADE
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            made[t.id] = (ctor, eager)
            elif isinstance(n, (ast.With, ast.AsyncWith)):
                for item in n.items:
                    ctor = is_bound_expr(item.context_expr, project, mod, func, table)
                    if ctor and isinstance(item.optional_vars, ast.Name):
                        eager = isinstance(n, ast.AsyncWith) or ctor in BOUND_WHEN_MADE
                        made[item.optional_vars.id] = (ctor, eager)
        used = _awaited_names(node)
        for n in ast.walk(node):
            value = None
            if isinstance(n, (ast.Yield, ast.Return)):
                value = n.value
            if value is None:
                continue
            ctor = is_bound_expr(value, project, mod, func, table)
            if ctor:
                return ctor, isinstance(value, ast.Await) or ctor in BOUND_WHEN_MADE
            if isinstance(value, ast.Name) and value.id in made:
                ctor, eager = made[value.id]
                return ctor, eager or value.id in used
        return None


def _awaited_names(node: ast.AST) -> set[str]:
    """Names a function awaits on (``await c.ping()``, ``async with c``, ``async for x
    in c.scan()``): objects it uses on its own loop."""
    out: set[str] = set()
    for n in ast.walk(node):
        roots: list[ast.expr] = []
        if isinstance(n, ast.Await):
            roots.append(n.value)
        elif isinstance(n, ast.AsyncWith):
            roots.extend(item.context_expr for item in n.items)
        elif isinstance(n, ast.AsyncFor):
            roots.append(n.iter)
        for r in roots:
            name = root_name(r)
            if name is not None:
                out.add(name)
    return out
