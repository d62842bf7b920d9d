"""The audit's outputs: ruff-like text, JSON, SARIF 2.1.0, statistics, and a view."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._views import _View, html_table, text_table
from ._findings import RULES, Finding

__all__ = ["AuditView", "to_json", "to_sarif", "to_text"]

DOCS = "https://github.com/loopbridge/loopbridge/blob/main/docs/audit.md"


def _anchor(code: str) -> str:
    return f"{DOCS}#{code.lower()}-{RULES[code].name}"


def to_text(findings: list[Finding]) -> str:
    """``path:line:col: LB001 message``, one a line (ruff's concise form)."""
    return "\n".join(f"{f.location()}: {f.code} {f.message}" for f in findings)


def _record(f: Finding) -> dict[str, Any]:
    shift = f.vline - f.line if f.cell is not None else 0
    fix = None
    if f.fix is not None:
        fix = {
            "applicability": "safe" if f.fix.safe else "unsafe",
            "message": f.fix.title,
            # rows within the cell for a notebook, like the finding's own
            "edits": [
                {**asdict(e), "line": e.line - shift, "end_line": e.end_line - shift}
                for e in f.fix.edits
            ],
            "add_import": f.fix.add_import,
        }
    return {
        "code": f.code,
        "name": RULES[f.code].name,
        "message": f.message,
        "filename": f.path,
        "cell": f.cell,
        "location": {"row": f.line, "column": f.col},
        "end_location": {"row": f.end_line, "column": f.end_col} if f.end_line else None,
        "chain": list(f.chain),
        "fix": fix,
        "url": _anchor(f.code),
    }


def to_json(findings: list[Finding]) -> str:
    return json.dumps([_record(f) for f in findings], indent=2)


def to_sarif(findings: list[Finding], version: str) -> str:
    """A SARIF 2.1.0 log (GitHub code scanning reads it)."""
    rules = [
        {
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "helpUri": _anchor(r.code),
            "defaultConfiguration": {"level": "error" if r.code == "LB000" else "warning"},
        }
        for r in RULES.values()
    ]
    index = {code: i for i, code in enumerate(RULES)}
    results = []
    for f in findings:
        region: dict[str, Any] = {"startLine": max(f.line, 1), "startColumn": max(f.col, 1)}
        if f.end_line:
            region["endLine"] = f.end_line
            region["endColumn"] = f.end_col or 1
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": "error" if f.code == "LB000" else "warning",
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(f.path).as_posix()},
                        "region": region,
                    }
                }
            ],
        }
        if f.cell is not None or f.chain:
            result["properties"] = {"cell": f.cell, "chain": list(f.chain)}
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loopbridge-audit",
                        "version": version,
                        "informationUri": DOCS,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)


_HEADERS = ("where", "code", "rule", "message")


class AuditView(_View):
    """The findings as a table (``%aio audit``), with ``.to_records()`` and
    ``.to_frame()`` like the other views.

    Example::

        view = AuditView(loopbridge.audit.check(["app"]).findings, files=12)
        view.to_records()[0]["code"]
    """

    def __init__(self, findings: list[Finding], files: int, unit: str = "file(s)") -> None:
        self.findings = findings
        self.files = files
        self.unit = unit

    def _rows(self, width: int = 100) -> list[list[str]]:
        out = []
        for f in self.findings:
            msg = f.message if len(f.message) <= width else f.message[: width - 1] + "…"
            out.append([f.location(), f.code, RULES[f.code].name, msg])
        return out

    def text(self) -> str:
        if not self.findings:
            return f"no loop-affinity problems found in {self.files} {self.unit}"
        head = f"{len(self.findings)} finding(s) in {self.files} {self.unit}"
        return head + "\n" + text_table(_HEADERS, self._rows())

    def _repr_html_(self) -> str:
        if not self.findings:
            return f"<p>{html.escape(self.text())}</p>"
        head = f"<p>{len(self.findings)} finding(s) in {self.files} {html.escape(self.unit)}</p>"
        return head + html_table(_HEADERS, self._rows(width=400))

    def to_records(self) -> list[dict[str, Any]]:
        return [_record(f) for f in self.findings]
