"""``loopbridge.audit``: find the loop-affinity bugs in a codebase, statically.

The bridge fixes these failures at run time; the audit finds them before they bite:
a nested ``asyncio.run`` reached from async code (across modules, with the chain), a
fresh loop per call or task while a loop-bound client outlives it, a module-level
client used under several loops, a pytest fixture bound to a wider loop than its
tests, ``get_event_loop`` misuse, a swallowed running-loop error, a lost task. It
reads Python's ``ast`` only, never importing the code it checks; notebooks are
checked cell by cell.

Command line: ``python -m loopbridge audit PATH...`` or ``loopbridge-audit PATH...``;
in IPython: ``%aio audit PATH``. Rules and examples: docs/audit.md.

Example::

    import loopbridge.audit as audit

    report = audit.check(["src", "notebooks"])
    for f in report.findings:
        print(f.location(), f.code, f.message)
"""

from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._config import AuditConfig, ConfigError, find_pyproject, load_config, parse_codes
from ._findings import RULES, Edit, Finding, Fix, Rule
from ._index import Project
from ._loopbound import LOOP_BOUND
from ._pytest import PytestIndex
from ._rules import Checker
from ._source import Source, discover, load

__all__ = [
    "RULES",
    "AuditConfig",
    "AuditReport",
    "ConfigError",
    "Edit",
    "Finding",
    "Fix",
    "Rule",
    "check",
]

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)


@dataclass
class AuditReport:
    """What one audit found, over which files.

    Example::

        report = loopbridge.audit.check(["app"])
        print(len(report.findings), "findings in", report.files, "files")
        print(report.statistics())
    """

    findings: list[Finding]
    files: int
    sources: dict[str, Source] = field(default_factory=dict)  # shown path -> source
    config: AuditConfig = field(default_factory=AuditConfig)
    missing: list[str] = field(default_factory=list)  # paths given that do not exist

    def statistics(self) -> list[tuple[int, str, str, str]]:
        """(count, code, rule name, fixable) per code, most frequent first."""
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        rows = []
        for code, n in counts.items():
            rule = RULES[code]
            fixable = sum(1 for f in self.findings if f.code == code and f.fix is not None)
            rows.append((n, code, rule.name, f"{fixable} fixable" if fixable else ""))
        rows.sort(key=lambda r: (-r[0], r[1]))
        return rows


def _noqa_codes(line: str) -> set[str] | None:
    """None: no noqa; empty set: a bare ``# noqa`` (everything); else the codes."""
    m = _NOQA.search(line)
    if m is None:
        return None
    codes = m.group("codes")
    if not codes:
        return set()
    return {c.upper() for c in re.split(r"[,\s]+", codes) if c}


def _suppressed(f: Finding, src: Source) -> bool:
    codes = _noqa_codes(src.line_text(f.vline))
    if codes is None:
        return False
    return not codes or f.code in codes


def check(
    paths: list[str | os.PathLike[str]],
    *,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    config: AuditConfig | str | os.PathLike[str] | None = None,
    isolated: bool = False,
) -> AuditReport:
    """Audit *paths* (files or folders, ``.py`` and ``.ipynb``) and return the findings.

    Args:
        paths: what to check; folders are walked (skipping virtualenvs, caches,
            ``build``/``dist``, hidden version-control folders and ``exclude``).
        select, ignore: rule codes or prefixes (``LB001``, ``LB00``); on top of the
            configuration.
        config: an :class:`AuditConfig`, or a pyproject.toml path; default: the
            nearest pyproject.toml above the first path (its
            ``[tool.loopbridge.audit]``), unless *isolated*.

    Raises:
        ConfigError: an unknown rule code or a bad setting.

    Example::

        report = loopbridge.audit.check(["src"], select=["LB001"])
    """
    # The trees of every file stay alive until the end, and parsing allocates
    # millions of nodes: each of the collector's full passes walks them all again.
    # Nothing here needs it (the audit makes few cycles, freed once it is back on),
    # and without it the audit takes half the time (measured: 4.3-6.2 s -> 2.1 s on
    # 116,716 lines). The previous state is restored, whatever happens.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(paths, select, ignore, config, isolated)
    finally:
        if was_enabled:
            gc.enable()


def _check(
    paths: list[str | os.PathLike[str]],
    select: list[str] | None,
    ignore: list[str] | None,
    config: AuditConfig | str | os.PathLike[str] | None,
    isolated: bool,
) -> AuditReport:
    given = [Path(p) for p in paths] or [Path(".")]
    if isinstance(config, AuditConfig):
        cfg = config
    elif config is not None:
        cfg = load_config(Path(config))
    elif isolated:
        cfg = AuditConfig()
    else:
        cfg = load_config(find_pyproject(given[0] if given[0].exists() else Path.cwd()))
    if select is not None:
        cfg.select = parse_codes(select, "select")
    if ignore is not None:
        cfg.ignore = cfg.ignore + parse_codes(ignore, "ignore")
    files, problems = discover(given, cfg.exclude, cfg.root)
    missing = [p.path for p in problems]
    sources: list[Source] = []
    for path in files:
        src, bad = load(path)
        problems.extend(bad)
        if src is not None:
            sources.append(src)
    findings: list[Finding] = []
    for prob in problems:
        if prob.path in missing:
            continue
        findings.append(
            Finding("LB000", prob.message, prob.path, prob.line, prob.col, cell=prob.cell)
        )
    project = Project(sources)
    for src, why in project.problems:
        findings.append(Finding("LB000", why, src.shown, 1, 1))
    checker = Checker(
        project,
        LOOP_BOUND | frozenset(cfg.loop_bound),
        frozenset(cfg.task_decorators),
        PytestIndex(project),
    )
    # LB002 before LB003: LB003 leaves out objects LB002 already names
    for code, rule in (
        ("LB001", checker.lb001),
        ("LB002", checker.lb002),
        ("LB003", checker.lb003),
        ("LB004", checker.lb004),
        ("LB005", checker.lb005),
        ("LB006", checker.lb006),
        ("LB007", checker.lb007),
    ):
        if code == "LB002" or cfg.enabled(code):
            got = rule()
            if cfg.enabled(code):
                findings.extend(got)
    by_path = {s.shown: s for s in sources}
    kept: list[Finding] = []
    seen: set[tuple[str, str, int | None, int, int]] = set()
    for f in findings:
        if not cfg.enabled(f.code) and f.code != "LB000":
            continue
        key = (f.code, f.path, f.cell, f.line, f.col)
        if key in seen:
            continue
        seen.add(key)
        src = by_path.get(f.path)
        if src is not None:
            if f.code in cfg.ignored_for(src.path):
                continue
            if f.code != "LB000" and _suppressed(f, src):
                continue
        kept.append(f)
    kept.sort(key=Finding.sort_key)
    return AuditReport(kept, len(files), by_path, cfg, missing)
