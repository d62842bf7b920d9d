"""What the rules read: every module's imports, functions, calls and loop entries.

One pass over each module's AST builds a :class:`Module`; :class:`Project` joins
them, so that a call can be followed into another module of the checked tree (a call
graph over the package). Names are resolved the way Python binds them, without
importing anything: ``import asyncio as aio``, ``from asyncio import run``, relative
imports, star imports of asyncio or of a checked module, imports inside functions,
conditional imports (both branches bind).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._source import Source

__all__ = [
    "Entry",
    "Func",
    "Module",
    "Project",
    "body_of",
    "in_loop_body",
    "module_name",
    "names_made_by",
    "root_name",
]

# What ``from asyncio import *`` binds that the rules care about.
ASYNCIO_NAMES = frozenset(
    {
        "run",
        "Runner",
        "new_event_loop",
        "get_event_loop",
        "get_running_loop",
        "set_event_loop",
        "create_task",
        "ensure_future",
        "Lock",
        "Event",
        "Queue",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "TaskGroup",
        "gather",
        "sleep",
        "to_thread",
        "run_coroutine_threadsafe",
    }
)
LOOP_RUNNERS = frozenset({"asyncio.run", "asyncio.runners.run"})
ANYIO_RUN = "anyio.run"
NEW_LOOP = frozenset({"asyncio.new_event_loop", "asyncio.events.new_event_loop"})
RUNNER = frozenset({"asyncio.Runner", "asyncio.runners.Runner"})
GET_RUNNING = frozenset(
    {"asyncio.get_running_loop", "asyncio._get_running_loop", "asyncio.events._get_running_loop"}
)
GET_EVENT_LOOP = frozenset({"asyncio.get_event_loop", "asyncio.events.get_event_loop"})
CACHES = frozenset(
    {
        "functools.cache",
        "functools.lru_cache",
        "functools.cached_property",
        "async_lru.alru_cache",
    }
)

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def module_name(path: Path) -> str:
    """The dotted name Python would import *path* as: up through the folders that
    have an ``__init__.py``. A notebook is named by its file stem."""
    if path.suffix == ".ipynb":
        return path.stem
    parts = [path.stem] if path.stem != "__init__" else []
    folder = path.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) or path.parent.name


@dataclass
class Entry:
    """A place that starts an event loop and runs a coroutine to completion there."""

    kind: str  # "asyncio.run" | "anyio.run" | "run_until_complete" | "Runner.run" | "submit"
    node: ast.Call
    coro: ast.expr | None  # the coroutine (or coroutine function, for anyio.run)
    guarded: bool  # only reached when no loop runs in this thread (a checked guard)
    in_loop_body: bool  # inside a for/while body of its function
    under_is_running: bool  # behind a loop.is_running() test


@dataclass
class Func:
    """One function, method or lambda of a checked module."""

    key: str  # "pkg.mod.Class.method", "pkg.mod.outer.inner", "pkg.mod.<lambda:12>"
    module: Module
    node: FuncNode
    is_async: bool
    cls: str | None  # the class key for a method
    parent: Func | None
    decorators: list[str]  # resolved (or dotted) decorator names
    calls: list[tuple[ast.Call, list[Func]]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    globals_used: set[str] = field(default_factory=set)  # qualified module globals read
    self_attrs_used: set[str] = field(default_factory=set)  # "self.x" read in a method
    imports: dict[str, str] = field(default_factory=dict)  # function-level imports
    local_defs: dict[str, Func] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    nodes: list[ast.AST] | None = None  # the nodes of its own scope (scope_nodes)

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


@dataclass
class Module:
    name: str
    source: Source
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified
    star_modules: list[str] = field(default_factory=list)
    funcs: dict[str, Func] = field(default_factory=dict)  # key -> Func (all, nested too)
    top_funcs: dict[str, Func] = field(default_factory=dict)  # module-level name -> Func
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)  # key -> node
    top_names: set[str] = field(default_factory=set)  # names assigned at module level
    entries: list[Entry] = field(default_factory=list)  # module-level ones
    calls: list[tuple[ast.Call, list[Func]]] = field(default_factory=list)  # module level
    globals_used: set[str] = field(default_factory=set)  # module-level code's reads
    parents: dict[int, ast.AST] = field(default_factory=dict)  # id(node) -> parent
    func_by_node: dict[int, Func] = field(default_factory=dict)  # id(def node) -> Func


class Project:
    """Every checked module, and the call graph between them."""

    def __init__(self, sources: list[Source]) -> None:
        self.modules: dict[str, Module] = {}
        for src in sources:
            name = module_name(src.path)
            parents = src.path.parent.parts
            depth = 1
            while name in self.modules and depth <= len(parents):
                # two files, one name (test_x.py in two test folders): name the folder
                name = ".".join([*parents[-depth:], module_name(src.path)])
                depth += 1
            self.modules[name] = Module(name, src)
        self.funcs: dict[str, Func] = {}
        # class key -> (its module, its node), over the whole tree
        self.classes: dict[str, tuple[Module, ast.ClassDef]] = {}
        self.problems: list[tuple[Source, str]] = []
        for name, mod in list(self.modules.items()):
            try:
                _Binder(self, mod).bind()
            except RecursionError:  # an expression nested thousands deep
                del self.modules[name]
                self.problems.append((mod.source, "too deeply nested to check"))
        for mod in self.modules.values():
            self.funcs.update(mod.funcs)
            self.classes.update((key, (mod, node)) for key, node in mod.classes.items())
        for name, mod in list(self.modules.items()):
            try:
                _Walker(self, mod).walk()
            except RecursionError:
                del self.modules[name]
                self.problems.append((mod.source, "too deeply nested to check"))

    # -- name resolution ------------------------------------------------------------

    def resolve_module(self, mod: Module, level: int, name: str | None) -> str:
        """The absolute module a relative import names."""
        if level == 0:
            return name or ""
        base = mod.name.split(".")
        is_package = mod.source.path.name == "__init__.py"
        keep = len(base) - level + (1 if is_package else 0)
        prefix = ".".join(base[: max(keep, 0)])
        if name:
            return f"{prefix}.{name}" if prefix else name
        return prefix

    def qualify(self, expr: ast.expr, mod: Module, func: Func | None = None) -> str | None:
        """The dotted name an expression refers to, e.g. ``asyncio.run`` for ``aio.run``
        after ``import asyncio as aio``; None when it is not a name we can follow."""
        if isinstance(expr, ast.Name):
            name = expr.id
            f = func
            while f is not None:
                if name in f.imports:
                    return f.imports[name]
                if name in f.local_defs:
                    return f.local_defs[name].key
                f = f.parent
            if name in mod.imports:
                return mod.imports[name]
            if name in mod.top_funcs:
                return mod.top_funcs[name].key
            key = f"{mod.name}.{name}"
            if key in mod.classes or name in mod.top_names:
                return key
            for star in mod.star_modules:
                if star == "asyncio" and name in ASYNCIO_NAMES:
                    return f"asyncio.{name}"
                other = self.modules.get(star)
                if other is not None and (
                    name in other.top_funcs
                    or f"{star}.{name}" in other.classes
                    or name in other.top_names
                ):
                    return f"{star}.{name}"
            return None
        if isinstance(expr, ast.Attribute):
            base = self.qualify(expr.value, mod, func)
            if base is None:
                return None
            return f"{base}.{expr.attr}"
        return None

    def lookup(self, qualified: str | None) -> list[Func]:
        """The checked function a qualified name is (a class: its ``__init__``)."""
        if qualified is None:
            return []
        f = self.funcs.get(qualified)
        if f is not None:
            return [f]
        # re-exported: "pkg.name" where pkg/__init__ imported name from pkg.mod
        head, _, tail = qualified.rpartition(".")
        mod = self.modules.get(head)
        if mod is not None and tail in mod.imports and mod.imports[tail] != qualified:
            return self.lookup(mod.imports[tail])
        init = self.funcs.get(f"{qualified}.__init__")
        if init is not None:
            return [init]
        return []

    def method(self, cls_key: str, name: str, seen: set[str] | None = None) -> list[Func]:
        """``name`` looked up on class *cls_key* and its checked bases."""
        found = self.funcs.get(f"{cls_key}.{name}")
        if found is not None:
            return [found]
        seen = seen or set()
        seen.add(cls_key)
        found_cls = self.classes.get(cls_key)
        if found_cls is None:
            return []
        mod, node = found_cls
        for expr in node.bases:  # resolved in the class's own module, as Python does
            base = self.qualify(expr, mod)
            if base is not None and base not in seen:
                got = self.method(base, name, seen)
                if got:
                    return got
        return []

    def is_class(self, key: str) -> bool:
        return key in self.classes

    def method_of_instance(
        self, target: ast.Attribute, mod: Module, func: Func | None
    ) -> list[Func]:
        """``Cls(...).method``: the method of a checked class called on a new instance."""
        recv = target.value
        if isinstance(recv, ast.Call):
            cls = self.qualify(recv.func, mod, func)
            if cls is not None and self.is_class(cls):
                return self.method(cls, target.attr)
        return []


class _Binder(ast.NodeVisitor):
    """First pass: what each module binds (imports, functions, classes, globals)."""

    def __init__(self, project: Project, mod: Module) -> None:
        self.project = project
        self.mod = mod
        self.stack: list[Func] = []
        self.cls: list[str] = []

    def bind(self) -> None:
        self.visit(self.mod.source.tree)

    _dispatch: dict[type, str | None] = {}

    def visit(self, node: ast.AST) -> None:
        # NodeVisitor's dispatch, with the method name cached per node type
        kind = type(node)
        try:
            name = self._dispatch[kind]
        except KeyError:
            name = f"visit_{kind.__name__}"
            # only this class's own visitors: NodeVisitor's visit_Constant is a
            # compatibility shim that ends in generic_visit after a slower search
            own = getattr(type(self), name, None) is not getattr(ast.NodeVisitor, name, None)
            name = self._dispatch[kind] = name if own else None
        if name is None:
            self.generic_visit(node)
        else:
            getattr(self, name)(node)

    def generic_visit(self, node: ast.AST) -> None:
        for child in child_nodes(node):
            self.visit(child)

    def _scope_imports(self) -> dict[str, str]:
        return self.stack[-1].imports if self.stack else self.mod.imports

    def visit_Import(self, node: ast.Import) -> None:
        target = self._scope_imports()
        for alias in node.names:
            if alias.asname:
                target[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                target[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.project.resolve_module(self.mod, node.level, node.module)
        target = self._scope_imports()
        for alias in node.names:
            if alias.name == "*":
                if not self.stack:
                    self.mod.star_modules.append(base)
                continue
            full = f"{base}.{alias.name}" if base else alias.name
            target[alias.asname or alias.name] = full

    def _decorators(self, node: FuncNode | ast.ClassDef) -> list[str]:
        out = []
        for d in getattr(node, "decorator_list", []):
            target = d.func if isinstance(d, ast.Call) else d
            out.append(_dotted(target) or "?")
        return out

    def _add_func(self, node: FuncNode, name: str) -> Func:
        parent = self.stack[-1] if self.stack else None
        if self.cls and (parent is None or self.cls[-1].startswith(parent.key + ".")):
            prefix = self.cls[-1]
            cls_key: str | None = self.cls[-1]
        else:
            prefix = parent.key if parent is not None else self.mod.name
            cls_key = None
        key = f"{prefix}.{name}"
        func = Func(
            key=key,
            module=self.mod,
            node=node,
            is_async=isinstance(node, ast.AsyncFunctionDef),
            cls=cls_key,
            parent=parent,
            decorators=self._decorators(node),
            params=[a.arg for a in _all_args(node.args)],
        )
        self.mod.funcs[key] = func
        self.mod.func_by_node[id(node)] = func
        if parent is not None and cls_key is None:
            parent.local_defs[name] = func
        elif parent is None and cls_key is None:
            self.mod.top_funcs[name] = func
        return func

    def _visit_func(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        func = self._add_func(node, node.name)
        saved_cls = self.cls
        self.cls = []  # a class's methods end at a nested def
        self.stack.append(func)
        for stmt in node.body:
            self.visit(stmt)
        self.stack.pop()
        self.cls = saved_cls

    visit_FunctionDef = _visit_func
    visit_AsyncFunctionDef = _visit_func

    def visit_Lambda(self, node: ast.Lambda) -> None:
        func = self._add_func(node, f"<lambda:{node.lineno}>")
        self.stack.append(func)
        self.visit(node.body)
        self.stack.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        parent = self.cls[-1] if self.cls else (self.stack[-1].key if self.stack else self.mod.name)
        key = f"{parent}.{node.name}"
        self.mod.classes[key] = node
        if not self.stack and not self.cls:
            self.mod.top_names.add(node.name)
        self.cls.append(key)
        for stmt in node.body:
            self.visit(stmt)
        self.cls.pop()

    def visit_Assign(self, node: ast.Assign) -> None:
        if not self.stack and not self.cls:
            for t in node.targets:
                for n in _names(t):
                    self.mod.top_names.add(n)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if not self.stack and not self.cls:
            self.mod.top_names.update(_names(node.target))
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.mod.top_names.update(node.names)


class _Walker:
    """Second pass: each function's calls (resolved to checked functions where they
    can be), loop entries, and the module globals and ``self`` attributes it reads."""

    def __init__(self, project: Project, mod: Module) -> None:
        self.project = project
        self.mod = mod
        self.local_names: dict[str, set[str]] = {}

    def walk(self) -> None:
        self._scan(self.mod.source.tree.body, None)
        for func in list(self.mod.funcs.values()):
            self._scan(body_of(func.node), func)

    def _scan(self, body: Sequence[ast.AST], func: Func | None) -> None:
        """Every node of *body* that runs in this scope (not nested defs' bodies)."""
        owner = func.node if func is not None else self.mod.source.tree
        nodes = scope_nodes(body, self.mod.parents, owner)
        if func is not None:
            func.nodes = nodes
        for node in nodes:
            if isinstance(node, ast.Call):
                self._call(node, func)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self._read(node, func)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
                and func is not None
            ):
                func.self_attrs_used.add(node.attr)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                q = self.project.qualify(node, self.mod, func)
                if q is not None:
                    (func.globals_used if func else self.mod.globals_used).add(q)

    def _locals(self, func: Func) -> set[str]:
        """Names local to *func* and the functions around it (not module globals)."""
        cached = self.local_names.get(func.key)
        if cached is not None:
            return cached
        out: set[str] = set()
        declared: set[str] = set()
        f: Func | None = func
        while f is not None:
            out.update(f.params)
            if f.nodes is None:  # not scanned yet (an enclosing function comes first)
                f.nodes = scope_nodes(body_of(f.node), self.mod.parents, f.node)
            for n in f.nodes:
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    out.add(n.id)
                elif isinstance(n, ast.Global) and f is func:
                    declared.update(n.names)
            f = f.parent
        out -= declared
        self.local_names[func.key] = out
        return out

    def _read(self, node: ast.Name, func: Func | None) -> None:
        if func is not None and node.id in self._locals(func):
            return
        q = self.project.qualify(node, self.mod, func)
        if q is not None:
            (func.globals_used if func else self.mod.globals_used).add(q)

    def _call(self, call: ast.Call, func: Func | None) -> None:
        project, mod = self.project, self.mod
        target = call.func
        q = project.qualify(target, mod, func)
        callees: list[Func] = project.lookup(q)
        if isinstance(target, ast.Lambda):  # (lambda: ...)() runs it here and now
            called = mod.func_by_node.get(id(target))
            callees = [called] if called is not None else []
        if not callees and isinstance(target, ast.Attribute):
            callees = project.method_of_instance(target, mod, func)
        if not callees and isinstance(target, ast.Attribute) and func is not None:
            recv = target.value
            if isinstance(recv, ast.Name) and recv.id in ("self", "cls") and func.cls:
                callees = project.method(func.cls, target.attr)
            elif isinstance(recv, ast.Name):
                # ClassName.method(...) / module-level instance of a checked class
                rq = project.qualify(recv, mod, func)
                if rq is not None and project.is_class(rq):
                    callees = project.method(rq, target.attr)
        if func is not None:
            func.calls.append((call, callees))
        else:
            mod.calls.append((call, callees))
        entry = self._entry(call, q, func)
        if entry is not None:
            (func.entries if func else mod.entries).append(entry)

    def _entry(self, call: ast.Call, q: str | None, func: Func | None) -> Entry | None:
        kind = None
        coro: ast.expr | None = call.args[0] if call.args else None
        target = call.func
        if q in LOOP_RUNNERS:
            kind = "asyncio.run"
        elif q == ANYIO_RUN:
            kind = "anyio.run"
        elif isinstance(target, ast.Attribute) and target.attr == "run_until_complete":
            kind = "run_until_complete"
        elif (
            isinstance(target, ast.Attribute)
            and target.attr == "run"
            and self._is_runner(target.value, func)
        ):
            kind = "Runner.run"
        elif (
            isinstance(target, ast.Attribute)
            and target.attr == "submit"
            and call.args
            and self.project.qualify(call.args[0], self.mod, func) in LOOP_RUNNERS
        ):
            kind = "submit"  # executor.submit(asyncio.run, coro)
            coro = call.args[1] if len(call.args) > 1 else None
        if kind is None:
            return None
        return Entry(
            kind=kind,
            node=call,
            coro=coro,
            guarded=self._guarded(call, func),
            in_loop_body=in_loop_body(self.mod, call),
            under_is_running=self._under_is_running(call, func),
        )

    def _is_runner(self, recv: ast.expr, func: Func | None) -> bool:
        if isinstance(recv, ast.Call):
            return self.project.qualify(recv.func, self.mod, func) in RUNNER
        return isinstance(recv, ast.Name) and recv.id in names_made_by(
            self.project, self.mod, func, RUNNER
        )

    def _ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        parents = self.mod.parents
        cur = parents.get(id(node))
        while cur is not None and not isinstance(cur, (*_DEFS, ast.Module)):
            yield cur
            cur = parents.get(id(cur))

    def _calls_running_check(self, nodes: list[ast.stmt], func: Func | None) -> bool:
        for stmt in nodes:
            for n in ast.walk(stmt):
                if (
                    isinstance(n, ast.Call)
                    and self.project.qualify(n.func, self.mod, func) in GET_RUNNING
                ):
                    return True
        return False

    def _guarded(self, call: ast.Call, func: Func | None) -> bool:
        """Reached only where no loop runs in this thread: the ``except RuntimeError``
        of a ``get_running_loop()`` try, or the no-loop branch of a test on it."""
        running = None
        child: ast.AST = call
        for anc in self._ancestors(call):
            if isinstance(anc, ast.ExceptHandler):
                try_node = self.mod.parents.get(id(anc))
                if isinstance(try_node, ast.Try) and self._calls_running_check(try_node.body, func):
                    return True
            if isinstance(anc, ast.If):
                if running is None:
                    running = names_made_by(self.project, self.mod, func, GET_RUNNING)
                polarity = _no_loop_branch(anc.test, running, self, func)
                if polarity is not None:
                    in_body = any(child is s for s in anc.body)
                    if polarity == in_body:
                        return True
            child = anc
        return False

    def _under_is_running(self, call: ast.Call, func: Func | None) -> bool:
        """Inside an ``if ... is_running()``, or after one that returns or raises."""
        child: ast.AST = call
        anc = self.mod.parents.get(id(call))
        while anc is not None:
            if isinstance(anc, (ast.If, ast.IfExp)) and _tests_running(anc.test):
                return True
            for block in ("body", "orelse", "finalbody"):
                stmts = getattr(anc, block, None)
                if not isinstance(stmts, list) or child not in stmts:
                    continue
                for earlier in stmts[: stmts.index(child)]:
                    if (
                        isinstance(earlier, ast.If)
                        and _tests_running(earlier.test)
                        and earlier.body
                        and isinstance(earlier.body[-1], (ast.Return, ast.Raise))
                    ):
                        return True
            if isinstance(anc, (*_DEFS, ast.Module)):
                break
            child, anc = anc, self.mod.parents.get(id(anc))
        return False


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.comprehension, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def body_of(node: FuncNode) -> list[ast.AST]:
    """A function's statements (a lambda's one expression)."""
    return [node.body] if isinstance(node, ast.Lambda) else list(node.body)


_FIELDS: dict[type, tuple[str, ...]] = {}


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """The child nodes of *node*, as ``ast.iter_child_nodes`` gives them, less the
    ``ctx`` markers (Load/Store/Del): the audit never needs those, and the fields of
    each node type are looked up once. Several times faster than the generator."""
    kind = type(node)
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = _FIELDS[kind] = tuple(f for f in kind._fields if f != "ctx")
    out: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if value is None:
            continue
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def root_name(expr: ast.expr) -> str | None:
    """The name an expression starts from: ``conn`` of ``conn.pool().get``."""
    while isinstance(expr, (ast.Attribute, ast.Call, ast.Subscript)):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def in_loop_body(mod: Module, node: ast.AST) -> bool:
    """Whether *node* runs once per iteration: in a ``for``/``while`` body or a
    comprehension of its own function (or of the module's code)."""
    child = node
    cur = mod.parents.get(id(node))
    while cur is not None and not isinstance(cur, (*_DEFS, ast.Module)):
        if isinstance(cur, (ast.For, ast.AsyncFor, ast.While)) and any(
            child is s for s in cur.body
        ):
            return True
        if isinstance(cur, _COMPREHENSIONS):
            return True
        child, cur = cur, mod.parents.get(id(cur))
    return False


def names_made_by(
    project: Project, mod: Module, func: Func | None, makers: frozenset[str]
) -> set[str]:
    """Names this scope binds to the result of a call of one of *makers*
    (``x = maker()``, ``with maker() as x``)."""
    out: set[str] = set()
    scope = func.node if func is not None else mod.source.tree
    for n in ast.walk(scope):
        if isinstance(n, ast.Assign):
            made, targets = n.value, n.targets
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            made, targets = n.context_expr, [n.optional_vars]
        else:
            continue
        if isinstance(made, ast.Call) and project.qualify(made.func, mod, func) in makers:
            for t in targets:
                out.update(_names(t))
    return out


def scope_nodes(
    body: Sequence[ast.AST], parents: dict[int, ast.AST], owner: ast.AST
) -> list[ast.AST]:
    """The nodes that run in one scope: not the bodies of the functions and lambdas
    defined in it (their decorators and defaults do run here, and a class body runs
    where the class is defined). Notes each node's parent in *parents* on the way:
    every node is in exactly one scope, so one pass per scope fills the whole map."""
    out: list[ast.AST] = []
    for b in body:
        parents[id(b)] = owner
    todo = list(body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            here: list[ast.AST] = list(getattr(node, "decorator_list", ()))
            if isinstance(node, ast.ClassDef):
                here.extend(node.bases)
                here.extend(node.keywords)
                here.extend(s for s in node.body if not isinstance(s, _DEFS))
                # its methods' def nodes belong to the class for their parent links
                for s in node.body:
                    if isinstance(s, _DEFS):
                        parents[id(s)] = node
            else:
                here.extend(d for d in node.args.defaults if d is not None)
                here.extend(d for d in node.args.kw_defaults if d is not None)
            for child in here:
                parents[id(child)] = node
            todo.extend(here)
            continue
        for child in child_nodes(node):
            parents[id(child)] = node
            todo.append(child)
    return out


def _no_loop_branch(
    test: ast.expr, running: set[str], walker: _Walker, func: Func | None
) -> bool | None:
    """True if the if's body is the branch where no loop runs, False if its else is,
    None if the test is not about the running loop."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _no_loop_branch(test.operand, running, walker, func)
        return None if inner is None else not inner
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if (
            isinstance(right, ast.Constant)
            and right.value is None
            and _is_running_ref(left, running, walker, func)
        ):
            if isinstance(op, ast.Is):
                return True
            if isinstance(op, ast.IsNot):
                return False
        return None
    if _is_running_ref(test, running, walker, func):
        return False  # `if loop:` -> the body has a loop
    return None


def _tests_running(test: ast.expr) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "is_running"
        for n in ast.walk(test)
    )


def _is_running_ref(expr: ast.expr, running: set[str], walker: _Walker, func: Func | None) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id in running
    if isinstance(expr, ast.Call):
        return walker.project.qualify(expr.func, walker.mod, func) in GET_RUNNING
    return False


def _dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value)
        return f"{base}.{expr.attr}" if base else None
    if isinstance(expr, ast.Call):
        return _dotted(expr.func)
    return None


def _names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        out: list[str] = []
        for elt in target.elts:
            out.extend(_names(elt))
        return out
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        out.append(args.vararg)
    if args.kwarg:
        out.append(args.kwarg)
    return out
