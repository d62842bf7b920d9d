"""``[tool.loopbridge.audit]`` in pyproject.toml, and the command line on top of it."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._findings import RULES

__all__ = [
    "AuditConfig",
    "ConfigError",
    "find_pyproject",
    "load_config",
    "load_toml",
    "parse_codes",
]

_CODE = re.compile(r"^LB\d{0,3}$")
_KEYS = {
    "select",
    "ignore",
    "exclude",
    "extend-exclude",
    "per-file-ignores",
    "loop-bound",
    "task-decorators",
}


class ConfigError(ValueError):
    """A setting that cannot be used (exit status 2)."""


@dataclass
class AuditConfig:
    """What to check and how; every field has the default a bare run uses.

    Example::

        cfg = AuditConfig(select=["LB001", "LB002"])
    """

    select: list[str] = field(default_factory=lambda: ["LB"])
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    loop_bound: list[str] = field(default_factory=list)
    task_decorators: list[str] = field(default_factory=list)
    root: Path = field(default_factory=Path.cwd)
    source: Path | None = None  # the pyproject.toml read, if any

    def enabled(self, code: str) -> bool:
        """Whether *code* is selected and not ignored (longest prefix wins, as ruff)."""
        sel = max((len(s) for s in self.select if code.startswith(s)), default=-1)
        ign = max((len(s) for s in self.ignore if code.startswith(s)), default=-1)
        return sel >= 0 and sel > ign

    def ignored_for(self, path: Path) -> set[str]:
        import fnmatch

        try:
            rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = path.as_posix()
        out: set[str] = set()
        for pattern, codes in self.per_file_ignores.items():
            if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(path.name, pattern):
                out.update(codes)
        return out


def parse_codes(value: object, where: str) -> list[str]:
    """A list of rule codes or prefixes (``LB001``, ``LB00``, ``LB``); else ConfigError."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(f'{where}: expected rule codes like "LB001" or ["LB001"], got {value!r}')
    for code in items:
        if code.upper() == "ALL":
            continue
        if not _CODE.match(code) or not any(c.startswith(code) for c in RULES):
            known = ", ".join(RULES)
            raise ConfigError(f"{where}: unknown rule code {code!r}; the codes are {known}")
    return ["LB" if c.upper() == "ALL" else c for c in items]


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above *start*."""
    start = start.resolve()
    if start.is_file():
        start = start.parent
    for d in [start, *start.parents]:
        p = d / "pyproject.toml"
        if p.is_file():
            return p
    return None


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError if it cannot be read or parsed."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:  # pragma: no cover
            raise ConfigError(
                f"{path}: reading pyproject.toml on Python 3.10 needs tomli "
                "(pip install tomli), or pass --isolated"
            ) from exc
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_config(path: Path | None) -> AuditConfig:
    """The settings of ``[tool.loopbridge.audit]`` in *path* (None: the defaults)."""
    if path is None:
        return AuditConfig()
    data = load_toml(path)
    section = data.get("tool", {}).get("loopbridge", {}).get("audit", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.loopbridge.audit] must be a table")
    unknown = set(section) - _KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) in [tool.loopbridge.audit]: {', '.join(sorted(unknown))}; "
            f"the keys are {', '.join(sorted(_KEYS))}"
        )
    where = f"{path}: [tool.loopbridge.audit]"
    cfg = AuditConfig(root=path.parent, source=path)
    if "select" in section:
        cfg.select = parse_codes(section["select"], f"{where} select")
    if "ignore" in section:
        cfg.ignore = parse_codes(section["ignore"], f"{where} ignore")
    for key, attr in (
        ("exclude", "exclude"),
        ("extend-exclude", "exclude"),
        ("loop-bound", "loop_bound"),
        ("task-decorators", "task_decorators"),
    ):
        if key in section:
            value = section[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} {key}: expected a list of strings, got {value!r}")
            getattr(cfg, attr).extend(value)
    pfi = section.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise ConfigError(f"{where} per-file-ignores: expected a table of glob = [codes]")
    cfg.per_file_ignores = {
        k: parse_codes(v, f"{where} per-file-ignores {k!r}") for k, v in pfi.items()
    }
    return cfg
