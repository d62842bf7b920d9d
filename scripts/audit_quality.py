"""Precision and recall of ``loopbridge audit`` per rule, on the labelled corpus.

Each file or folder directly under ``tests/audit_corpus/<group>/`` is audited on its
own, as a user would audit a project. Labels are comments on the line a finding is
reported at: ``# expect: LB001`` (a positive: this line must be reported with this
code) and ``# ok: LB001`` (a negative: a line a naive checker would report, which
must not be). In a notebook the labels sit in the cells' source. Any finding on a
line without an ``expect`` label for its code is a false positive.

    python scripts/audit_quality.py [--verbose]

Exit status 0 when every rule has at least 10 positives and 10 negatives and 100%
precision and recall on them, else 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from loopbridge.audit import RULES, check

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "audit_corpus"
LABEL = re.compile(r"#\s*(expect|ok):\s*(LB\d{3}(?:\s*,\s*LB\d{3})*)")

Key = tuple[str, int | None, int]  # (file path relative to the corpus, cell, line)


def labels_of(path: Path) -> list[tuple[str, str, Key]]:
    """(kind, code, where) for each label in a .py file or a notebook."""
    rel = path.relative_to(CORPUS).as_posix()
    out = []

    def scan(lines: list[str], cell: int | None) -> None:
        for i, line in enumerate(lines, 1):
            for m in LABEL.finditer(line):
                for code in re.split(r"\s*,\s*", m.group(2)):
                    out.append((m.group(1), code, (rel, cell, i)))

    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        number = 0
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            number += 1
            src = cell["source"]
            scan(("".join(src) if isinstance(src, list) else src).splitlines(), number)
    else:
        scan(path.read_text(encoding="utf-8").splitlines(), None)
    return out


def units() -> list[Path]:
    out = []
    for group in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        out.extend(sorted(p for p in group.iterdir() if not p.name.startswith((".", "_"))))
    return out


def evaluate(verbose: bool = False) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for unit in units():
        if unit.is_file():
            files = [unit]
        else:
            files = sorted(p for p in unit.rglob("*") if p.suffix in (".py", ".ipynb"))
        expected: dict[Key, set[str]] = defaultdict(set)
        for f in files:
            for kind, code, key in labels_of(f):
                if kind == "expect":
                    expected[key].add(code)
                    stats[code]["positives"] += 1
                else:
                    stats[code]["negatives"] += 1
        report = check([unit], isolated=True)
        found: set[tuple[Key, str]] = set()
        for finding in report.findings:
            try:
                rel_s = Path(finding.path).resolve().relative_to(CORPUS).as_posix()
            except ValueError:
                rel_s = finding.path
            key = (rel_s, finding.cell, finding.line)
            found.add((key, finding.code))
            if finding.code in expected.get(key, set()):
                stats[finding.code]["tp"] += 1
            else:
                stats[finding.code]["fp"] += 1
                if verbose:
                    print(f"FP {finding.location()} {finding.code} {finding.message[:120]}")
        for key, codes in expected.items():
            for code in codes:
                if (key, code) not in found:
                    stats[code]["fn"] += 1
                    if verbose:
                        cell = f"cell {key[1]}:" if key[1] else ""
                        print(f"FN {key[0]}:{cell}{key[2]} {code}")
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--verbose", action="store_true", help="list each miss and false alarm")
    args = ap.parse_args()
    stats = evaluate(args.verbose)
    print("| rule | name | positives | negatives | TP | FP | FN | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for code, rule in RULES.items():
        if code == "LB000":
            continue
        s = stats[code]
        tp, fp, fn = s["tp"], s["fp"], s["fn"]
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(
            f"| {code} | {rule.name} | {s['positives']} | {s['negatives']} | {tp} | {fp} | "
            f"{fn} | {precision:.0%} | {recall:.0%} |"
        )
        if s["positives"] < 10 or s["negatives"] < 10 or fp or fn:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
