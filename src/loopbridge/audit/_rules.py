"""The rules: each reads the :class:`~._index.Project` and returns findings."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

from ._findings import Edit, Finding, Fix
from ._index import (
    GET_EVENT_LOOP,
    GET_RUNNING,
    NEW_LOOP,
    Entry,
    Func,
    Module,
    Project,
    in_loop_body,
    names_made_by,
    root_name,
)
from ._loopbound import Bound, find_bound
from ._pytest import PytestIndex

__all__ = ["Checker"]

_TASK_DECORATORS = frozenset(
    {"task", "shared_task", "actor", "job", "periodic_task", "db_task", "db_periodic_task"}
)
_SUBMITTERS = {
    "submit": 0,
    "map": 0,
    "starmap": 0,
    "imap": 0,
    "imap_unordered": 0,
    "apply": 0,
    "apply_async": 0,
    "run_in_executor": 1,
    "to_thread": 0,
    "start_new_thread": 0,
}
_LOG_NAMES = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log", "print"}
)
_LOOP_NAMES = frozenset({"loop", "_loop", "event_loop", "ev_loop", "main_loop", "io_loop"})
_LOOP_MAKERS = GET_RUNNING | GET_EVENT_LOOP | NEW_LOOP
_CALLBACK_APIS = frozenset(
    {"call_soon", "call_soon_threadsafe", "call_later", "call_at", "add_done_callback"}
)


@dataclass
class _Run:
    """A loop entry with what it runs: a direct entry, or a call to a runner helper."""

    entry: Entry
    module: Module
    func: Func | None  # where the entry (or the call to the helper) is
    node: ast.Call  # the call that starts the loop (or calls the helper)
    coro: ast.expr | None
    label: str
    via: list[str] = field(default_factory=list)  # helper chain, e.g. ["utils.run_sync"]


class Checker:
    """Runs the selected rules over a project."""

    def __init__(
        self,
        project: Project,
        loop_bound: frozenset[str],
        task_decorators: frozenset[str],
        pytest_index: PytestIndex,
    ) -> None:
        self.p = project
        self.table = loop_bound
        self.task_decorators = _TASK_DECORATORS | task_decorators
        self.pytest = pytest_index
        self.bound = find_bound(project, loop_bound)
        self._bound_by_key = {b.key: b for b in self.bound}
        self._reach_cache: dict[str, frozenset[str]] = {}
        self._nested_cache: dict[str, list[str] | None] = {}
        self._used_cache: dict[int, list[Bound]] = {}  # id(run node) -> kept objects
        self.submitted = self._find_submitted()
        self.callers = self._find_callers()
        self.runs = self._find_runs()
        self.lb002_nodes: set[int] = set()

    # -- helpers ------------------------------------------------------------------------

    def finding(
        self,
        code: str,
        message: str,
        mod: Module,
        node: ast.AST,
        chain: Iterable[str] = (),
        fix: Fix | None = None,
    ) -> Finding:
        vline = getattr(node, "lineno", 1)
        cell, line = mod.source.locate(vline)
        end = getattr(node, "end_lineno", None)
        return Finding(
            code=code,
            message=message,
            path=mod.source.shown,
            line=line,
            col=getattr(node, "col_offset", 0) + 1,
            cell=cell,
            end_line=(mod.source.locate(end)[1] if end else None),
            end_col=(getattr(node, "end_col_offset", 0) or 0) + 1 if end else None,
            chain=tuple(chain),
            fix=fix,
            vline=vline,
        )

    def reach(self, funcs: Iterable[Func]) -> frozenset[str]:
        """Every checked function that may run when these run (calls, both kinds)."""
        out: frozenset[str] = frozenset()
        for f in funcs:
            out |= self._reach_one(f)
        return out

    def _reach_one(self, start: Func) -> frozenset[str]:
        cached = self._reach_cache.get(start.key)
        if cached is not None:
            return cached
        out: set[str] = set()
        todo = [start]
        while todo:
            f = todo.pop()
            if f.key in out:
                continue
            out.add(f.key)
            for _call, callees in f.calls:
                todo.extend(c for c in callees if c.key not in out)
            # a nested def or lambda defined here usually runs as part of it
            todo.extend(f.local_defs.values())
        found = self._reach_cache[start.key] = frozenset(out)
        return found

    def coro_funcs(self, coro: ast.expr | None, mod: Module, func: Func | None) -> list[Func]:
        """The coroutine function(s) a loop entry runs, when they can be told."""
        if coro is None:
            return []
        if isinstance(coro, ast.Call):
            target = coro.func
            got = self.p.lookup(self.p.qualify(target, mod, func))
            if not got and isinstance(target, ast.Attribute):
                got = self.p.method_of_instance(target, mod, func)
            if (
                not got
                and isinstance(target, ast.Attribute)
                and func is not None
                and func.cls
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                got = self.p.method(func.cls, target.attr)
            return got
        # anyio.run(main) takes the function itself
        return self.p.lookup(self.p.qualify(coro, mod, func))

    def _find_submitted(self) -> dict[str, str]:
        """Functions handed to an executor, a thread or a pool: key -> how."""
        out: dict[str, str] = {}
        for mod, func, call, _callees in self._all_calls():
            target = call.func
            q = self.p.qualify(target, mod, func)
            handed: ast.expr | None = None
            how = None
            if q in ("threading.Thread", "multiprocessing.Process"):
                for kw in call.keywords:
                    if kw.arg == "target":
                        handed, how = kw.value, "a thread's target"
            elif q == "asyncio.to_thread":
                handed, how = (call.args[0] if call.args else None), "asyncio.to_thread"
            elif isinstance(target, ast.Attribute) and target.attr in _SUBMITTERS:
                i = _SUBMITTERS[target.attr]
                if len(call.args) > i:
                    handed, how = call.args[i], f".{target.attr}() of an executor or pool"
            if handed is None or how is None:
                continue
            for f in self.p.lookup(self.p.qualify(handed, mod, func)):
                out.setdefault(f.key, how)
            lam = mod.func_by_node.get(id(handed))
            if lam is not None:
                out.setdefault(lam.key, how)
        return out

    def _find_callers(self) -> dict[str, list[tuple[Module, Func | None, ast.Call]]]:
        """Where each checked function is called: key -> (module, caller, call)."""
        out: dict[str, list[tuple[Module, Func | None, ast.Call]]] = {}
        for mod, func, call, callees in self._all_calls():
            for c in callees:
                out.setdefault(c.key, []).append((mod, func, call))
        return out

    def _all_calls(self) -> Iterable[tuple[Module, Func | None, ast.Call, list[Func]]]:
        """Every call of the tree, with the checked functions it was resolved to."""
        for mod in self.p.modules.values():
            for call, callees in mod.calls:
                yield mod, None, call, callees
            for func in mod.funcs.values():
                for call, callees in func.calls:
                    yield mod, func, call, callees

    def _find_runs(self) -> list[_Run]:
        """Every entry, and every call of a helper that runs its argument in a new loop
        (``def run(coro): return asyncio.run(coro)``), followed up to three levels."""
        runs: list[_Run] = []
        wrappers: dict[str, tuple[int, list[str], Entry]] = {}  # key -> (arg index, via)
        for mod in self.p.modules.values():
            for e in mod.entries:
                runs.append(_Run(e, mod, None, e.node, e.coro, _entry_label(e, mod)))
            for func in mod.funcs.values():
                for e in func.entries:
                    runs.append(_Run(e, mod, func, e.node, e.coro, _entry_label(e, mod)))
                    if isinstance(e.coro, ast.Name) and e.coro.id in func.params:
                        wrappers[func.key] = (func.params.index(e.coro.id), [func.key], e)
        seen = {id(r.node) for r in runs}
        for _level in range(3):
            new: dict[str, tuple[int, list[str], Entry]] = {}
            for mod, caller, call, callees in self._all_calls():
                for callee in callees:
                    w = wrappers.get(callee.key)
                    if w is None:
                        continue
                    index, via, entry = w
                    if callee.cls is not None and callee.params[:1] == ["self"]:
                        index -= 1
                    arg = call.args[index] if 0 <= index < len(call.args) else None
                    if arg is None:
                        continue
                    by = caller.key if caller is not None else "module level"
                    label = f"{_where(mod, call)} {by} -> {callee.key}()"
                    if id(call) not in seen:
                        seen.add(id(call))
                        runs.append(_Run(entry, mod, caller, call, arg, label, via))
                    if caller is not None and isinstance(arg, ast.Name) and arg.id in caller.params:
                        new[caller.key] = (
                            caller.params.index(arg.id),
                            [caller.key, *via],
                            entry,
                        )
            added = {k: v for k, v in new.items() if k not in wrappers}
            if not added:
                break
            wrappers.update(added)
        return runs

    def uses(self, reach: frozenset[str]) -> list[Bound]:
        """The kept loop-bound objects the functions in *reach* use."""
        out = []
        funcs = [self.p.funcs[k] for k in reach if k in self.p.funcs]
        for b in self.bound:
            for f in funcs:
                if b.kind == "module" and b.key in f.globals_used:
                    out.append(b)
                    break
                if b.kind in ("class", "instance") and b.cls is not None:
                    attr = b.key.rsplit(".", 1)[1]
                    if (f.cls == b.cls and attr in f.self_attrs_used) or b.key in f.globals_used:
                        out.append(b)
                        break
                if b.kind == "cached" and any(
                    any(c.key == b.key for c in callees) for _call, callees in f.calls
                ):
                    out.append(b)
                    break
        return out

    # -- LB001 nested loop entry ---------------------------------------------------------

    def _nested_chain(self, func: Func, depth: int = 0) -> list[str] | None:
        """For a sync function: a chain to an unguarded loop entry it runs, if any."""
        if func.key in self._nested_cache:
            return self._nested_cache[func.key]
        self._nested_cache[func.key] = None  # cycles end here
        found: list[str] | None = None
        for e in func.entries:
            if _is_nested_kind(e):
                found = [func.key, _entry_name(e)]
                break
        if found is None and depth < 30:
            for _call, callees in func.calls:
                for c in callees:
                    if c.is_async:
                        continue
                    sub = self._nested_chain(c, depth + 1)
                    if sub is not None:
                        found = [func.key, *sub]
                        break
                if found is not None:
                    break
        self._nested_cache[func.key] = found
        return found

    def lb001(self) -> list[Finding]:
        out: list[Finding] = []
        roots: list[tuple[Module, Func | None, str]] = []
        for mod in self.p.modules.values():
            if mod.source.is_notebook:
                roots.append((mod, None, ""))
            for f in mod.funcs.values():
                if f.is_async:
                    roots.append((mod, f, f.key))
        for mod, func, label in roots:
            entries = func.entries if func else mod.entries
            calls = func.calls if func else mod.calls
            rerouted = mod.source.rerouted
            for e in entries:
                if not _is_nested_kind(e):
                    continue
                if (
                    func is None
                    and e.kind == "asyncio.run"
                    and (mod.source.locate(e.node.lineno)[0] in rerouted)
                ):
                    continue  # `%aio reroute on`: the kernel's asyncio.run goes to the worker
                root = label or f"cell {mod.source.locate(e.node.lineno)[0]}"
                chain = [root, _entry_name(e)]
                fix = self._await_fix(mod, func, e)
                why = (
                    "a notebook cell runs inside the kernel's running event loop"
                    if func is None
                    else f"{func.key}() is a coroutine: it runs inside a running event loop"
                )
                out.append(
                    self.finding(
                        "LB001",
                        f"{_entry_name(e)}() cannot start a loop here: {why}, so it raises "
                        f"'cannot be called from a running event loop'. {_lb001_advice(func)}",
                        mod,
                        e.node,
                        chain,
                        fix,
                    )
                )
            for call, callees in calls:
                for c in callees:
                    if c.is_async:
                        continue
                    sub = self._nested_chain(c)
                    if sub is None:
                        continue
                    if (
                        func is None
                        and sub[-1] == "asyncio.run"
                        and (mod.source.locate(call.lineno)[0] in rerouted)
                    ):
                        continue
                    root = label or f"cell {mod.source.locate(call.lineno)[0]}"
                    chain = [root, *sub]
                    where = (
                        "a notebook cell (inside the kernel's running loop)"
                        if func is None
                        else f"coroutine {func.key}()"
                    )
                    out.append(
                        self.finding(
                            "LB001",
                            f"{c.key}() starts an event loop ({' -> '.join(chain)}) and is "
                            f"called from {where}: it raises 'cannot be called from a running "
                            f"event loop'. {_lb001_advice(func, helper=c.key)}",
                            mod,
                            call,
                            chain,
                        )
                    )
                    break
        return out

    def _await_fix(self, mod: Module, func: Func | None, e: Entry) -> Fix | None:
        """``asyncio.run(coro)`` in a coroutine, or at the top level of a notebook cell
        (where top-level ``await`` works) -> ``await coro`` (a suggestion)."""
        if e.coro is None or (func is None and not mod.source.is_notebook):
            return None
        if func is None:
            anc = mod.parents.get(id(e.node))
            while anc is not None:
                if isinstance(anc, ast.ClassDef):
                    return None  # a class body: `await` is not allowed there
                anc = mod.parents.get(id(anc))
        call = e.node
        if e.kind not in ("asyncio.run", "run_until_complete") or len(call.args) != 1:
            return None
        if call.keywords:
            return None
        text = ast.get_source_segment(mod.source.text, e.coro)
        if text is None:
            return None
        return Fix(
            "await the coroutine instead of starting a loop",
            (_edit(call, f"await {text}"),),
            safe=False,
        )

    # -- LB002 new loop per call ---------------------------------------------------------

    def _per_call(self, run: _Run) -> str | None:
        e = run.entry
        if run.node is e.node:
            if e.kind == "submit":
                return "handed to an executor (executor.submit(asyncio.run, ...))"
            if e.in_loop_body:
                return "inside a loop body: one new loop per iteration"
        elif in_loop_body(run.module, run.node):
            return "inside a loop body: one new loop per iteration"
        f = run.func
        while f is not None:
            for d in f.decorators:
                if d.rsplit(".", 1)[-1] in self.task_decorators:
                    return f"in {f.key}(), a task (@{d}): one new loop per task run"
            how = self.submitted.get(f.key)
            if how is not None:
                return f"in {f.key}(), run as {how}: one new loop per call"
            if not isinstance(f.node, ast.Lambda):
                break
            f = f.parent
        return self._called_repeatedly(run)

    def _called_repeatedly(self, run: _Run) -> str | None:
        """A sync function that starts a loop itself and is called from two or more
        places in the tree, or from a loop body: every call makes a new loop."""
        f = run.func
        if run.node is not run.entry.node or f is None or f.is_async:
            return None
        if isinstance(f.node, ast.Lambda):
            return None
        sites = self.callers.get(f.key, [])
        for mod, caller, call in sites:
            if in_loop_body(mod, call):
                by = caller.key if caller is not None else "module-level code"
                return f"in {f.key}(), called in a loop body by {by}: one new loop per call"
        if len(sites) < 2:
            return None
        names = sorted({c.key + "()" if c is not None else "module level" for _m, c, _x in sites})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f"in {f.key}(), called from {len(sites)} places ({shown}): one new loop per call"

    def _kept_bound(self, run: _Run) -> list[str]:
        """The loop-bound objects made once and kept that the run's coroutine uses:
        in the code it runs, in the coroutine expression itself (``client.get(k)``),
        or handed in by the callers of the function that starts the loop."""
        names = [b.label for b in self._used_by_run(run)]
        return names + self._passed_bound(run)

    def _used_by_run(self, run: _Run) -> list[Bound]:
        # asked by LB002 and again by LB003 for the same runs
        cached = self._used_cache.get(id(run.node))
        if cached is not None:
            return cached
        starts = self.coro_funcs(run.coro, run.module, run.func)
        out = self.uses(self.reach(starts)) if starts else []
        for b in self._named_in_coro(run):
            if b not in out:
                out.append(b)
        self._used_cache[id(run.node)] = out
        return out

    def _named_in_coro(self, run: _Run) -> list[Bound]:
        """Kept objects the coroutine expression names: the object whose method makes
        the coroutine (``client.get(k)``, ``self.pool.fetch(q)``, ``session().get(u)``)
        and its arguments."""
        coro = run.coro
        if not isinstance(coro, ast.Call):
            return []
        parts: list[ast.expr] = [*coro.args, *(k.value for k in coro.keywords)]
        if isinstance(coro.func, ast.Attribute):
            parts.insert(0, coro.func.value)
        out: list[Bound] = []
        for part in parts:
            expr: ast.expr | None = part
            while expr is not None:  # down the chain: client.pipeline().execute()
                b = self._kept_object(expr, run.module, run.func)
                if b is not None:
                    if b not in out:
                        out.append(b)
                    break
                if isinstance(expr, ast.Attribute):
                    expr = expr.value
                elif isinstance(expr, ast.Call):
                    expr = expr.func
                else:
                    expr = None
        return out

    def _kept_object(self, expr: ast.expr, mod: Module, func: Func | None) -> Bound | None:
        """The kept loop-bound object *expr* refers to, read in *func* (None: module
        level): a module global, ``self.attr`` of a kept class or instance attribute,
        or a call to a cached maker."""
        by_key = self._bound_by_key
        if isinstance(expr, (ast.Name, ast.Attribute)):
            q = self.p.qualify(expr, mod, func)
            used = func.globals_used if func is not None else mod.globals_used
            if q is not None and q in used and q in by_key:
                return by_key[q]
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id in ("self", "cls")
            and func is not None
            and func.cls is not None
        ):
            b = by_key.get(f"{func.cls}.{expr.attr}")
            if b is not None:
                return b
        if isinstance(expr, ast.Call):
            q = self.p.qualify(expr.func, mod, func)
            b = by_key.get(f"{q}()") or by_key.get(q or "")
            if b is not None and b.kind == "cached":
                return b
        return None

    def lb002(self) -> list[Finding]:
        out: list[Finding] = []
        # a helper that hands each coroutine to an executor's asyncio.run: one finding
        # at the helper (where the fix goes), naming the callers whose code breaks
        through_executor: dict[int, list[tuple[_Run, list[str]]]] = {}
        for run in self.runs:
            if run.node is not run.entry.node and run.entry.kind == "submit":
                names = self._kept_bound(run)
                if names:
                    through_executor.setdefault(id(run.entry.node), []).append((run, names))
                    self.lb002_nodes.add(id(run.node))
        for run in self.runs:
            hits = through_executor.get(id(run.node)) if run.node is run.entry.node else None
            if hits:
                self.lb002_nodes.add(id(run.node))
                helper = run.func.key if run.func is not None else "this code"
                callers = sorted({r.label for r, _n in hits})
                names = sorted({n for _r, ns in hits for n in ns})
                out.append(
                    self.finding(
                        "LB002",
                        f"a new event loop per call: {helper}() hands each coroutine to an "
                        f"executor's asyncio.run, and its callers ({', '.join(callers)}) run "
                        f"code that uses loop-bound objects made once and kept: "
                        f"{', '.join(names)}. The second loop finds them bound to the first "
                        "('attached to a different loop', 'Event loop is closed'). Run every "
                        "call on one persistent loop: loopbridge.run_sync(coro).",
                        run.module,
                        run.node,
                        [*callers, helper],
                        self._run_sync_fix(run),
                    )
                )
                continue
            if run.node is not run.entry.node and run.entry.kind == "submit":
                continue  # reported at the helper
            why = self._per_call(run)
            if why is None:
                continue
            names = self._kept_bound(run)
            if not names:
                continue  # makes and closes its own clients: slow, but correct
            self.lb002_nodes.add(id(run.node))
            fix = self._run_sync_fix(run)
            out.append(
                self.finding(
                    "LB002",
                    f"a new event loop per call ({why}) runs code that uses loop-bound "
                    f"objects made once and kept: {', '.join(sorted(set(names)))}. The second "
                    "loop finds them bound to the first ('attached to a different loop', "
                    "'Event loop is closed'). Run every call on one persistent loop: "
                    "loopbridge.run_sync(coro).",
                    run.module,
                    run.node,
                    [run.label, *run.via],
                    fix,
                )
            )
        return out

    def _passed_bound(self, run: _Run) -> list[str]:
        """Parameters of the enclosing function that flow into the coroutine (as its
        arguments, or as the object whose method it is: ``conn.get(key)``) and hold a
        loop-bound object made by the caller, so it outlives the call: annotated with a
        loop-bound type, or given a kept one at a call site in the tree."""
        func = run.func
        coro = run.coro
        if func is None or not isinstance(coro, ast.Call) or isinstance(func.node, ast.Lambda):
            return []
        flowing: list[str] = []
        receiver = coro.func.value if isinstance(coro.func, ast.Attribute) else None
        for arg in [receiver, *coro.args, *(k.value for k in coro.keywords)]:
            name = root_name(arg) if arg is not None else None
            if name is not None and name in func.params and name not in flowing:
                flowing.append(name)
        if not flowing:
            return []
        annotated = {}
        for a in [*func.node.args.posonlyargs, *func.node.args.args, *func.node.args.kwonlyargs]:
            if a.annotation is not None:
                q = self.p.qualify(_unquote(a.annotation), func.module, func)
                if q is not None and (q in self.table or f"{q}.__init__" in self.table):
                    annotated[a.arg] = q
        out = []
        for name in flowing:
            if name in annotated:
                out.append(f"{name} (a {annotated[name]} passed in)")
                continue
            for label, by in sorted(self._given_kept(func, name).items()):
                out.append(f"{name} ({label}, passed in by {', '.join(sorted(by))})")
        return out

    def _given_kept(self, func: Func, param: str) -> dict[str, set[str]]:
        """The kept loop-bound objects call sites in the tree pass as *param*: label ->
        the callers that pass it."""
        index = func.params.index(param)
        if func.cls is not None and func.params[:1] in (["self"], ["cls"]):
            index -= 1  # called as a method: the receiver fills the first parameter
        out: dict[str, set[str]] = {}
        for mod, caller, call in self.callers.get(func.key, []):
            arg: ast.expr | None = call.args[index] if 0 <= index < len(call.args) else None
            for kw in call.keywords:
                if kw.arg == param:
                    arg = kw.value
            b = self._kept_object(arg, mod, caller) if arg is not None else None
            if b is not None:
                by = f"{caller.key}()" if caller is not None else "module-level code"
                out.setdefault(b.label, set()).add(by)
        return out

    def _run_sync_fix(self, run: _Run) -> Fix | None:
        """``ThreadPoolExecutor(...).submit(asyncio.run, c).result(t)`` ->
        ``loopbridge.run_sync(c, timeout=t)``: the same call, on one persistent loop."""
        e = run.entry
        mod = run.module
        if run.node is not e.node:
            return None
        if e.kind == "asyncio.run":
            return self._direct_run_sync_fix(run)
        if e.kind != "submit":
            return None
        submit = e.node
        parent = mod.parents.get(id(submit))
        outer = mod.parents.get(id(parent)) if parent is not None else None
        if not (
            isinstance(parent, ast.Attribute)
            and parent.attr == "result"
            and isinstance(outer, ast.Call)
            and outer.func is parent
            and len(submit.args) == 2
            and not submit.keywords
        ):
            return None
        coro = ast.get_source_segment(mod.source.text, submit.args[1])
        if coro is None:
            return None
        timeout = None
        if outer.args:
            timeout = ast.get_source_segment(mod.source.text, outer.args[0])
        for kw in outer.keywords:
            if kw.arg == "timeout":
                timeout = ast.get_source_segment(mod.source.text, kw.value)
        name = _loopbridge_name(mod)
        call = f"{name}.run_sync({coro}" + (f", timeout={timeout})" if timeout else ")")
        if name == "run_sync":
            call = call.replace("run_sync.run_sync", "run_sync")
        edits = [_edit(outer, call)]
        # `with ThreadPoolExecutor() as ex: return ex.submit(...).result()` -> one line
        stmt = mod.parents.get(id(outer))
        block = mod.parents.get(id(stmt)) if stmt is not None else None
        if (
            isinstance(block, ast.With)
            and len(block.body) == 1
            and block.body[0] is stmt
            and len(block.items) == 1
            and isinstance(block.items[0].optional_vars, ast.Name)
            and isinstance(submit.func, ast.Attribute)
            and isinstance(submit.func.value, ast.Name)
            and submit.func.value.id == block.items[0].optional_vars.id
        ):
            text = ast.get_source_segment(mod.source.text, stmt)
            outer_text = ast.get_source_segment(mod.source.text, outer)
            if text is not None and outer_text is not None:
                edits = [_edit(block, text.replace(outer_text, call, 1))]
        return Fix(
            "run it on one persistent loop: loopbridge.run_sync(coro)",
            tuple(edits),
            safe=True,
            add_import=(
                "loopbridge" if name == "loopbridge" and "loopbridge" not in mod.imports else None
            ),
        )

    def _direct_run_sync_fix(self, run: _Run) -> Fix | None:
        """``asyncio.run(coro)`` -> ``loopbridge.run_sync(coro)``, a suggestion: the
        call then runs on the worker's loop, in another thread, and the tasks it leaves
        are not cancelled at its end as ``asyncio.run`` cancels them."""
        call = run.entry.node
        mod = run.module
        if len(call.args) != 1 or call.keywords:
            return None
        coro = ast.get_source_segment(mod.source.text, call.args[0])
        if coro is None:
            return None
        name = _loopbridge_name(mod)
        text = f"{name}({coro})" if name == "run_sync" else f"{name}.run_sync({coro})"
        return Fix(
            "run it on one persistent loop: loopbridge.run_sync(coro) (it runs in the "
            "worker's thread, and leaves no new loop per call)",
            (_edit(call, text),),
            safe=False,
            add_import=(
                "loopbridge" if name == "loopbridge" and "loopbridge" not in mod.imports else None
            ),
        )

    # -- LB003 loop-bound object crossing loops ---------------------------------------

    def lb003(self) -> list[Finding]:
        out: list[Finding] = []
        loops: list[tuple[str, str, bool]] = []  # (id, label, per-call)
        used: list[set[str]] = []  # the kept objects each loop uses
        for run in self.runs:
            found = self._used_by_run(run)
            if not found:
                continue
            per_call = id(run.node) in self.lb002_nodes
            loops.append((f"run@{id(run.node)}", run.label, per_call))
            used.append({b.key for b in found})
        for loop_id, label, funcs in self.pytest.test_loops(self.p):
            loops.append((loop_id, label, False))
            used.append({b.key for b in self.uses(self.reach(funcs))})
        for b in self.bound:
            if b.kind == "instance":
                # each loop may well have its own instance: not provable statically
                continue
            users: dict[str, tuple[str, bool]] = {}
            for (loop_id, label, per_call), keys in zip(loops, used, strict=True):
                if b.key in keys:
                    users.setdefault(loop_id, (label, per_call))
            if len(users) < 2 or all(pc for _label, pc in users.values()):
                continue
            labels = sorted(label for label, _pc in users.values())
            shown = ", ".join(labels[:4]) + (
                f" and {len(labels) - 4} more" if len(labels) > 4 else ""
            )
            where = {
                "module": "made once at module level",
                "class": "a class attribute",
                "instance": "kept on the instance",
                "cached": "cached by its function",
            }[b.kind]
            out.append(
                self.finding(
                    "LB003",
                    f"{b.label} is {where} and used under {len(users)} event loops: {shown}. "
                    "It belongs to the loop it was first used in; on the next one it fails "
                    "('attached to a different loop', 'Event loop is closed'). Make one per "
                    f"loop: loopbridge.loop_local({b.ctor}, ...), or run everything on one "
                    "loop (loopbridge.run_sync).",
                    b.module,
                    b.node,
                    labels,
                )
            )
        return out

    # -- LB004 pytest loop scope mismatch -------------------------------------------------

    def lb004(self) -> list[Finding]:
        out: list[Finding] = []
        for fx, tests, fx_scope, test_scope, ctor, eager in self.pytest.mismatches(
            self.p, self.table
        ):
            names = ", ".join(sorted(tests)[:3]) + (
                f" and {len(tests) - 3} more" if len(tests) > 3 else ""
            )
            if eager:
                what = (
                    f"the async fixture binds it to a {fx_scope}-scoped event loop, but "
                    f"{names} run in {test_scope}-scoped loops, so they get an object of "
                    "another loop ('attached to a different loop')"
                )
            else:
                what = (
                    f"the fixture hands the same one, for the whole {fx_scope}, to {names}, "
                    f"which run in {test_scope}-scoped loops: it binds to the loop of the "
                    "first test that uses it and fails in the next ('attached to a "
                    "different loop')"
                )
            out.append(
                self.finding(
                    "LB004",
                    f"fixture {fx.name} makes a loop-bound {ctor}; {what}. Give the tests "
                    f'the fixture\'s loop (@pytest.mark.asyncio(loop_scope="{fx_scope}") or '
                    f"asyncio_default_test_loop_scope), or make the fixture "
                    f'{"loop_scope" if eager else "scope"}="{test_scope}".',
                    fx.func.module,
                    fx.func.node,
                    sorted(tests),
                )
            )
        return out

    # -- LB005 get_event_loop misuse ----------------------------------------------------

    def lb005(self) -> list[Finding]:
        out: list[Finding] = []
        for mod in self.p.modules.values():
            for e in [*mod.entries, *(x for f in mod.funcs.values() for x in f.entries)]:
                if e.kind == "run_until_complete" and e.under_is_running:
                    out.append(
                        self.finding(
                            "LB005",
                            "run_until_complete() decided by loop.is_running(): where a loop "
                            "already runs (a notebook, an async app) the other branch runs "
                            "and the work is only scheduled, or needs nest_asyncio. Call "
                            "loopbridge.run_sync(coro), which works in both cases.",
                            mod,
                            e.node,
                        )
                    )
            for scope, func in [(mod.calls, None), *((f.calls, f) for f in mod.funcs.values())]:
                if func is not None and func.is_async:
                    continue
                for call, _ in scope:
                    q = self.p.qualify(call.func, mod, func)
                    if q not in GET_EVENT_LOOP:
                        continue
                    parent = mod.parents.get(id(call))
                    tests_running = (
                        isinstance(parent, ast.Attribute) and parent.attr == "is_running"
                    ) or self._name_tested_for_running(mod, func, call)
                    if tests_running:
                        out.append(
                            self.finding(
                                "LB005",
                                "get_event_loop() used to ask whether a loop is running: "
                                "outside a loop it makes one (or raises, on 3.14) instead of "
                                "answering. Ask asyncio.get_running_loop() in a try/except "
                                "RuntimeError, or call loopbridge.run_sync(coro), which works "
                                "either way.",
                                mod,
                                call,
                            )
                        )
                    elif func is None and not mod.source.is_notebook:
                        out.append(
                            self.finding(
                                "LB005",
                                "get_event_loop() at module level, where no loop runs: "
                                "deprecated since Python 3.12 and an error on 3.14. Use "
                                "asyncio.run(main()) for a script's loop, or "
                                "loopbridge.run_sync(coro) for a call from sync code.",
                                mod,
                                call,
                            )
                        )
                    elif func is not None and self._then_runs_it(mod, func, call):
                        out.append(
                            self.finding(
                                "LB005",
                                f"{func.key}() takes get_event_loop() to run it: outside a "
                                "loop that is deprecated (an error on 3.14), inside one (a "
                                "notebook) run_until_complete() fails. Use "
                                "loopbridge.run_sync(coro), or asyncio.run() in a script.",
                                mod,
                                call,
                            )
                        )
        return out

    def _name_tested_for_running(self, mod: Module, func: Func | None, call: ast.Call) -> bool:
        names = _assigned_from(mod, call)
        return bool(names) and _method_called_on(mod, func, names, ("is_running",))

    def _then_runs_it(self, mod: Module, func: Func, call: ast.Call) -> bool:
        runs = ("run_until_complete", "run_forever")
        parent = mod.parents.get(id(call))
        if isinstance(parent, ast.Attribute) and parent.attr in runs:
            return True
        return _method_called_on(mod, func, _assigned_from(mod, call), runs)

    # -- LB006 swallowed running-loop error -------------------------------------------------

    def lb006(self) -> list[Finding]:
        out: list[Finding] = []
        for mod in self.p.modules.values():
            all_entries = [*mod.entries, *(x for f in mod.funcs.values() for x in f.entries)]
            tries: dict[int, ast.Try] = {}
            for e in all_entries:
                if e.kind == "submit":
                    continue
                child: ast.AST = e.node
                cur = mod.parents.get(id(child))
                while cur is not None and not isinstance(cur, _SCOPES):
                    if isinstance(cur, ast.Try) and any(child is s for s in cur.body):
                        tries[id(cur)] = cur
                    child, cur = cur, mod.parents.get(id(cur))
            for node in sorted(tries.values(), key=lambda t: t.lineno):
                for handler in node.handlers:
                    named = _names_runtime_error(handler.type)
                    if not named and not (
                        _catches_broadly(handler.type) and _mentions_loop(handler)
                    ):
                        continue  # a broad except is the business of ruff's S110/BLE001
                    if _skips(handler.body, handler.name):
                        out.append(
                            self.finding(
                                "LB006",
                                "the RuntimeError of a loop that is already running ('cannot "
                                "be called from a running event loop') is caught here and the "
                                "work is skipped: in a notebook or an async app it silently "
                                "never runs (and its coroutine is never awaited). Run it with "
                                "loopbridge.run_sync(coro), which works with or without a "
                                "running loop, or let the error out.",
                                mod,
                                handler,
                            )
                        )
        return out

    # -- LB007 lost task -----------------------------------------------------------------

    def lb007(self) -> list[Finding]:
        out: list[Finding] = []
        for mod in self.p.modules.values():
            for func in [None, *mod.funcs.values()]:
                calls = func.calls if func is not None else mod.calls
                for call, _ in calls:
                    msg = self._lost_task(mod, func, call)
                    if msg:
                        out.append(self.finding("LB007", msg, mod, call))
        return out

    def _is_task_maker(self, expr: ast.expr, mod: Module, func: Func | None) -> bool:
        q = self.p.qualify(expr, mod, func)
        if q in ("asyncio.create_task", "asyncio.ensure_future", "asyncio.tasks.ensure_future"):
            return True
        return (
            isinstance(expr, ast.Attribute)
            and expr.attr == "create_task"
            and self._is_loop(expr.value, mod, func)
        )

    def _is_loop(self, expr: ast.expr, mod: Module, func: Func | None) -> bool:
        if isinstance(expr, ast.Call):
            q = self.p.qualify(expr.func, mod, func)
            return q in _LOOP_MAKERS
        name = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", None)
        if name is None:
            return False
        return name in _LOOP_NAMES or name.endswith("_loop")

    def _lost_task(self, mod: Module, func: Func | None, call: ast.Call) -> str | None:
        target = call.func
        parent = mod.parents.get(id(call))
        # 1. loop.create_task(...) as a statement, on a loop ruff cannot trace
        if (
            isinstance(parent, ast.Expr)
            and isinstance(target, ast.Attribute)
            and target.attr == "create_task"
            and self._is_loop(target.value, mod, func)
            and not self._ruff_sees(target.value, mod, func)
        ):
            return (
                "the task made here is dropped: the loop keeps only a weak reference, so it "
                "can be garbage-collected before it finishes, and its exception is never "
                "seen. Keep it (a set of tasks, or asyncio.TaskGroup) and await or cancel it."
            )
        # 2. create_task/ensure_future handed to the loop as a callback: its task is dropped
        if isinstance(target, ast.Attribute) and target.attr in _CALLBACK_APIS:
            index = 1 if target.attr in ("call_later", "call_at") else 0
            cb = call.args[index] if len(call.args) > index else None
            if cb is not None and (
                self._is_task_maker(cb, mod, func)
                or (
                    isinstance(cb, ast.Lambda)
                    and isinstance(cb.body, ast.Call)
                    and self._is_task_maker(cb.body.func, mod, func)
                )
            ):
                return (
                    f"a task is made by a {target.attr}() callback and dropped (the loop "
                    "ignores a callback's return value): it can be garbage-collected before "
                    "it finishes, and its exception is never seen. Keep a reference in the "
                    "callback, or use asyncio.run_coroutine_threadsafe / loopbridge.submit "
                    "from another thread."
                )
        return None

    def _ruff_sees(self, recv: ast.expr, mod: Module, func: Func | None) -> bool:
        """RUF006 already reports ``loop.create_task`` on a local assigned from
        get_running_loop()/get_event_loop()/new_event_loop()."""
        return isinstance(recv, ast.Name) and recv.id in names_made_by(
            self.p, mod, func, _LOOP_MAKERS
        )


# -- small helpers ----------------------------------------------------------------------


def _is_nested_kind(e: Entry) -> bool:
    return e.kind != "submit" and not e.guarded and not e.under_is_running


def _entry_name(e: Entry) -> str:
    return {
        "asyncio.run": "asyncio.run",
        "anyio.run": "anyio.run",
        "run_until_complete": "loop.run_until_complete",
        "Runner.run": "asyncio.Runner.run",
        "submit": "asyncio.run",
    }[e.kind]


def _entry_label(e: Entry, mod: Module) -> str:
    return f"{_where(mod, e.node)} {_entry_name(e)}()"


def _where(mod: Module, node: ast.AST) -> str:
    cell, line = mod.source.locate(getattr(node, "lineno", 0))
    where = f"cell {cell}:" if cell else ""
    return f"{mod.source.shown}:{where}{line}"


def _lb001_advice(func: Func | None, helper: str | None = None) -> str:
    if func is None:
        return (
            "Await it in the cell (top-level await works in notebooks), or call "
            "loopbridge.run_sync(coro), which runs it on a worker loop."
        )
    if helper:
        return (
            f"Make {helper}() async and await it, or have it call "
            "loopbridge.run_sync(coro), which runs it on a worker loop from any thread."
        )
    return "Await the coroutine instead."


def _edit(node: ast.expr | ast.stmt, text: str) -> Edit:
    return Edit(
        node.lineno,
        node.col_offset,
        node.end_lineno or node.lineno,
        node.end_col_offset or 0,
        text,
    )


def _loopbridge_name(mod: Module) -> str:
    for local, target in mod.imports.items():
        if target == "loopbridge":
            return local
        if target == "loopbridge.run_sync":
            return "run_sync" if local == "run_sync" else local
    return "loopbridge"


def _method_called_on(
    mod: Module, func: Func | None, names: set[str], methods: tuple[str, ...]
) -> bool:
    """Whether the scope calls one of *methods* on a local named in *names*."""
    scope = func.node if func is not None else mod.source.tree
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in methods
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id in names
        for n in ast.walk(scope)
    )


def _assigned_from(mod: Module, call: ast.Call) -> set[str]:
    parent = mod.parents.get(id(call))
    if isinstance(parent, ast.Assign) and parent.value is call:
        return {t.id for t in parent.targets if isinstance(t, ast.Name)}
    return set()


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Module)


def _exc_names(t: ast.expr | None) -> list[str]:
    names = [t] if not isinstance(t, ast.Tuple) else list(t.elts)
    return [n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "") for n in names]


def _names_runtime_error(t: ast.expr | None) -> bool:
    return t is not None and "RuntimeError" in _exc_names(t)


def _catches_broadly(t: ast.expr | None) -> bool:
    return t is None or any(n in ("Exception", "BaseException") for n in _exc_names(t))


def _mentions_loop(handler: ast.ExceptHandler) -> bool:
    """A handler whose own words say it is about the running loop."""
    for n in ast.walk(handler):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            low = n.value.lower()
            if "running" in low or "event loop" in low:
                return True
    return False


def _skips(body: list[ast.stmt], exc_name: str | None) -> bool:
    """Does some path through this handler neither raise, hand the error on, nor do
    the work? Statements are followed in order; an ``if`` forks the path."""
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Raise):
            return False
        if isinstance(stmt, ast.If):
            rest = body[i + 1 :]
            return _skips([*stmt.body, *rest], exc_name) or _skips([*stmt.orelse, *rest], exc_name)
        if not _is_skip_stmt(stmt, exc_name):
            return False
    return True


def _is_skip_stmt(stmt: ast.stmt, exc_name: str | None = None) -> bool:
    if isinstance(stmt, (ast.Pass, ast.Continue, ast.Break)):
        return True
    if isinstance(stmt, ast.Expr):
        v = stmt.value
        if isinstance(v, ast.Constant):
            return True
        if isinstance(v, ast.Call):
            f = v.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            return name in _LOG_NAMES or (
                isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "warnings"
            )
        return False
    value = getattr(stmt, "value", None)
    handed_on = isinstance(value, ast.Name) and value.id == exc_name
    if isinstance(stmt, ast.Return):
        return not handed_on and (
            stmt.value is None or isinstance(stmt.value, (ast.Constant, ast.Name))
        )
    if isinstance(stmt, ast.Assign):
        return not handed_on and isinstance(stmt.value, (ast.Constant, ast.Name))
    return False


def _unquote(expr: ast.expr) -> ast.expr:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            return ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return expr
    return expr
