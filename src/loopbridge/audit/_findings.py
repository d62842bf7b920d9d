"""What the audit reports: findings, their fixes, and the rule table."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RULES", "Edit", "Finding", "Fix", "Rule"]


@dataclass(frozen=True)
class Rule:
    """One rule: its code, short name, and one line on what it finds.

    Example::

        from loopbridge.audit import RULES
        print(RULES["LB001"].summary)
    """

    code: str
    name: str
    summary: str
    fixable: str  # "safe" (--fix applies some), "unsafe" (suggestions only) or "" (none)


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("LB000", "syntax-error", "a file that cannot be read or parsed", ""),
        Rule(
            "LB001",
            "nested-loop-entry",
            "asyncio.run / run_until_complete / Runner.run reachable from running async code",
            "unsafe",
        ),
        Rule(
            "LB002",
            "new-loop-per-call",
            "a fresh event loop per call, task or iteration, while a loop-bound object outlives it",
            "safe",
        ),
        Rule(
            "LB003",
            "loop-bound-crossing-loops",
            "a module-level, class-level or cached loop-bound object used under two or "
            "more event loops",
            "",
        ),
        Rule(
            "LB004",
            "pytest-loop-scope-mismatch",
            "a loop-bound fixture shared wider than the event loop of the tests using it",
            "",
        ),
        Rule(
            "LB005",
            "get-event-loop-misuse",
            "get_event_loop() outside a running loop, or is_running() deciding whether "
            "to run_until_complete",
            "",
        ),
        Rule(
            "LB006",
            "swallowed-running-loop-error",
            "RuntimeError from asyncio.run caught and the work skipped",
            "",
        ),
        Rule(
            "LB007",
            "lost-task",
            "a task whose only reference is dropped, in the shapes ruff's RUF006 does not see",
            "",
        ),
    )
}


@dataclass(frozen=True)
class Edit:
    """Replace the text from (line, col) to (end_line, end_col) (1-based lines,
    0-based columns, as ``ast``) with *text*."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Fix:
    """A change that removes the finding. ``safe`` fixes are applied by ``--fix``;
    the others are suggestions (``--unsafe-fixes`` applies them too)."""

    title: str
    edits: tuple[Edit, ...]
    safe: bool
    add_import: str | None = None  # e.g. "loopbridge", added after the module's imports


@dataclass
class Finding:
    """One problem found: where, which rule, what and why, and how to fix it.

    Example::

        for f in loopbridge.audit.check(["src"]).findings:
            print(f.location(), f.code, f.message)
    """

    code: str
    message: str
    path: str  # as shown to the user
    line: int  # 1-based; within the cell for a notebook
    col: int  # 1-based
    cell: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    chain: tuple[str, ...] = ()
    fix: Fix | None = None
    # where in the virtual module (notebooks) the finding is: for noqa and fixes
    vline: int = 0
    related: list[str] = field(default_factory=list)

    def location(self) -> str:
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.col}"

    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.path, self.cell or 0, self.line, self.col, self.code)
