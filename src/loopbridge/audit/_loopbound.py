"""Which objects belong to one event loop, and where a project keeps them.

An object is *loop-bound* when it holds futures, transports or locks of the loop it
was first used in: using it from another loop fails ("attached to a different
loop", "Event loop is closed", "is bound to a different event loop"). The table
names the constructors of the usual clients; ``[tool.loopbridge.audit]
loop-bound = [...]`` adds a project's own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ._index import CACHES, Func, Module, Project

__all__ = ["LOOP_BOUND", "Bound", "find_bound", "is_bound_expr"]

LOOP_BOUND = frozenset(
    {
        # redis-py's asyncio client (and the old aioredis)
        "redis.asyncio.Redis",
        "redis.asyncio.StrictRedis",
        "redis.asyncio.from_url",
        "redis.asyncio.Redis.from_url",
        "redis.asyncio.client.Redis",
        "redis.asyncio.ConnectionPool",
        "redis.asyncio.ConnectionPool.from_url",
        "redis.asyncio.BlockingConnectionPool",
        "redis.asyncio.cluster.RedisCluster",
        "redis.asyncio.RedisCluster",
        "aioredis.Redis",
        "aioredis.from_url",
        # PostgreSQL
        "asyncpg.create_pool",
        "asyncpg.connect",
        "asyncpg.pool.create_pool",
        "asyncpg.Pool",
        "psycopg.AsyncConnection",
        "psycopg.AsyncConnection.connect",
        "psycopg_pool.AsyncConnectionPool",
        "aiopg.create_pool",
        "aiopg.connect",
        # HTTP
        "aiohttp.ClientSession",
        "aiohttp.TCPConnector",
        "httpx.AsyncClient",
        # ORMs and other stores
        "sqlalchemy.ext.asyncio.create_async_engine",
        "sqlalchemy.ext.asyncio.AsyncEngine",
        "aiosqlite.connect",
        "motor.motor_asyncio.AsyncIOMotorClient",
        "aiomysql.create_pool",
        "aiomysql.connect",
        "aio_pika.connect",
        "aio_pika.connect_robust",
        "aiokafka.AIOKafkaProducer",
        "aiokafka.AIOKafkaConsumer",
        "nats.connect",
        # asyncio's own primitives bind to the loop of their first use
        "asyncio.Lock",
        "asyncio.Event",
        "asyncio.Queue",
        "asyncio.PriorityQueue",
        "asyncio.LifoQueue",
        "asyncio.Semaphore",
        "asyncio.BoundedSemaphore",
        "asyncio.Condition",
        "asyncio.locks.Lock",
        "asyncio.queues.Queue",
    }
)


@dataclass
class Bound:
    """A loop-bound object the project keeps beyond one call."""

    key: str  # "pkg.mod.NAME", "pkg.mod.Class.attr" or "pkg.mod.get_client()"
    kind: str  # "module" | "class" | "instance" | "cached"
    ctor: str  # the constructor, e.g. "redis.asyncio.from_url"
    module: Module
    node: ast.AST  # where it is made (for the finding's location)
    cls: str | None = None  # for class/instance attributes: the class key

    @property
    def label(self) -> str:
        return f"{self.key} ({self.ctor})"


def is_bound_expr(
    expr: ast.expr | None, project: Project, mod: Module, func: Func | None, table: frozenset[str]
) -> str | None:
    """The constructor name if *expr* makes a loop-bound object (also ``await``ed)."""
    if expr is None:
        return None
    if isinstance(expr, ast.Await):
        expr = expr.value
    if isinstance(expr, ast.Call):
        q = project.qualify(expr.func, mod, func)
        if q is not None and q in table:
            return q
        # asyncio.Lock() etc. under `from asyncio import *`, or redis.asyncio.Redis(...).x
        if isinstance(expr.func, ast.Attribute) and q is None:
            inner = is_bound_expr(expr.func.value, project, mod, func, table)
            if inner is not None and expr.func.attr in ("from_url", "client"):
                return inner
    return None


def find_bound(project: Project, table: frozenset[str]) -> list[Bound]:
    """Every loop-bound object kept at module level (also set through ``global``), as a
    class attribute, as an instance attribute (``self.x = ...``), or returned by a
    ``functools.cache``-style function."""
    out: list[Bound] = []
    seen: set[str] = set()

    def add(b: Bound) -> None:
        if b.key not in seen:
            seen.add(b.key)
            out.append(b)

    for mod in project.modules.values():
        # module level, then each class body: (key prefix, statements, kind, class)
        bodies: list[tuple[str, list[ast.stmt], str, str | None]] = [
            (mod.name, mod.source.tree.body, "module", None)
        ]
        bodies.extend((key, node.body, "class", key) for key, node in mod.classes.items())
        for prefix, body, kind, cls in bodies:
            for stmt in body:
                for target, value in _assignments(stmt):
                    ctor = is_bound_expr(value, project, mod, None, table)
                    if ctor is None:
                        continue
                    for name in _target_names(target):
                        add(Bound(f"{prefix}.{name}", kind, ctor, mod, stmt, cls))
        for func in mod.funcs.values():
            node = func.node
            if isinstance(node, ast.Lambda):
                continue
            own = func.nodes or []
            declared: set[str] = set()
            for n in own:
                if isinstance(n, ast.Global):
                    declared.update(n.names)
            for n in own:
                if not isinstance(n, (ast.Assign, ast.AnnAssign)):
                    continue
                for target, value in _assignments(n):
                    ctor = is_bound_expr(value, project, mod, func, table)
                    if ctor is None:
                        continue
                    if isinstance(target, ast.Name) and target.id in declared:
                        add(Bound(f"{mod.name}.{target.id}", "module", ctor, mod, n))
                    elif (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                        and func.cls
                    ):
                        add(Bound(f"{func.cls}.{target.attr}", "instance", ctor, mod, n, func.cls))
            if any(d in CACHES or d.rsplit(".", 1)[-1] in _CACHE_NAMES for d in _resolved(func)):
                for n in own:
                    if isinstance(n, ast.Return):
                        ctor = is_bound_expr(n.value, project, mod, func, table)
                        if ctor is not None:
                            add(Bound(func.key, "cached", ctor, mod, node))
                            break
    return out


_CACHE_NAMES = frozenset({"cache", "lru_cache", "cached_property", "alru_cache"})


def _resolved(func: Func) -> list[str]:
    out = []
    for d in func.decorators:
        head = d.split(".")[0]
        q = func.module.imports.get(head)
        out.append(q + d[len(head) :] if q else d)
    return out


def _assignments(stmt: ast.AST) -> list[tuple[ast.expr, ast.expr | None]]:
    if isinstance(stmt, ast.Assign):
        return [(t, stmt.value) for t in stmt.targets]
    if isinstance(stmt, ast.AnnAssign):
        return [(stmt.target, stmt.value)]
    return []


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    return []
