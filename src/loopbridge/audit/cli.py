"""``loopbridge-audit`` / ``python -m loopbridge audit``: the command line.

Exit status: 0 when nothing is found, 1 when something is (a finding, or a file that
cannot be checked, LB000), 2 on a usage error (a bad option, an unknown code, a path
that does not exist, a bad ``[tool.loopbridge.audit]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import AuditReport, check
from ._config import ConfigError
from ._findings import RULES, Finding
from ._fix import apply_fixes, fix_notebook, unified_diff
from ._output import to_json, to_sarif, to_text

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    rules = "\n".join(f"  {r.code}  {r.name}: {r.summary}" for r in RULES.values())
    p = argparse.ArgumentParser(
        prog="loopbridge-audit",
        description=(
            "Find loop-affinity bugs (nested asyncio.run, a new loop per call, loop-bound "
            "objects crossing loops, pytest loop scopes, get_event_loop misuse, swallowed "
            "running-loop errors, lost tasks) in Python files and notebooks, statically."
        ),
        epilog=f"rules:\n{rules}\n\nsettings: [tool.loopbridge.audit] in pyproject.toml; "
        "suppress one line with # noqa: LB001. Docs: docs/audit.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", default=["."], help="files or folders (default: .)")
    p.add_argument("--select", help="rule codes or prefixes to check, e.g. LB001,LB002")
    p.add_argument("--ignore", help="rule codes or prefixes to leave out")
    p.add_argument(
        "--format",
        "--output-format",
        dest="format",
        choices=("text", "json", "sarif"),
        default="text",
        help="output format (default: text, one finding a line)",
    )
    p.add_argument("--statistics", action="store_true", help="count the findings per rule")
    p.add_argument(
        "-o",
        "--output-file",
        help="write the findings (text, json or sarif) to this file instead of stdout",
    )
    p.add_argument(
        "--fix", action="store_true", help="apply the safe fixes (to .py files and notebook cells)"
    )
    p.add_argument(
        "--unsafe-fixes",
        action="store_true",
        help="with --fix or --diff: apply the suggested fixes too (they change behaviour)",
    )
    p.add_argument("--diff", action="store_true", help="print the fixes as a diff; change nothing")
    p.add_argument("--config", help="the pyproject.toml to read (default: the nearest one)")
    p.add_argument("--isolated", action="store_true", help="read no configuration file")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when something is found")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the audit; return the exit status.

    Example::

        sys.exit(main(["src", "--select", "LB001"]))
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.fix and args.diff:
        parser.error("--fix and --diff cannot be used together: --diff changes nothing")
    if args.config and args.isolated:
        parser.error("--config and --isolated cannot be used together")
    if args.config and not Path(args.config).is_file():
        parser.error(f"--config {args.config}: no such file")
    if args.output_file and not Path(args.output_file).resolve().parent.is_dir():
        parser.error(f"--output-file {args.output_file}: its folder does not exist")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for m in missing:
            print(f"loopbridge-audit: error: {m}: no such file or folder", file=sys.stderr)
        return 2
    try:
        report = check(
            args.paths,
            select=args.select.split(",") if args.select else None,
            ignore=args.ignore.split(",") if args.ignore else None,
            config=args.config,
            isolated=args.isolated,
        )
    except ConfigError as exc:
        print(f"loopbridge-audit: error: {exc}", file=sys.stderr)
        return 2
    if report.files == 0:
        print(
            "loopbridge-audit: warning: no Python files or notebooks found under "
            + ", ".join(args.paths),
            file=sys.stderr,
        )
        return 0
    if args.fix or args.diff:
        report, changed = _fix(report, args)
        if args.diff:
            sys.stdout.write(changed)
            return 1 if changed and not args.exit_zero else 0
    _print(report, args)
    return 1 if report.findings and not args.exit_zero else 0


def _fix(report: AuditReport, args: argparse.Namespace) -> tuple[AuditReport, str]:
    diffs: list[str] = []
    fixed_total = 0
    by_file: dict[str, list[Finding]] = {}
    for f in report.findings:
        if f.fix is not None:
            by_file.setdefault(f.path, []).append(f)
    for path, found in by_file.items():
        src = report.sources.get(path)
        if src is None:
            continue
        if src.is_notebook:
            text, cells, fixed = fix_notebook(src, found, args.unsafe_fixes)
            if text is None:
                continue
            if args.diff:
                diffs.extend(unified_diff(f"{path}:cell {n}", a, b) for n, a, b in cells)
            else:
                src.path.write_bytes(text.encode("utf-8"))
                fixed_total += len(fixed)
            continue
        new, fixed = apply_fixes(src.text, found, args.unsafe_fixes)
        if not fixed:
            continue
        if args.diff:
            diffs.append(unified_diff(path, src.text, new))
        else:
            # the file's own encoding and line endings
            src.path.write_text(new, encoding=src.encoding, newline="")
            fixed_total += len(fixed)
    if args.diff:
        return report, "".join(diffs)
    if fixed_total:
        report = check(
            list(args.paths),
            select=args.select.split(",") if args.select else None,
            ignore=args.ignore.split(",") if args.ignore else None,
            config=args.config,
            isolated=args.isolated,
        )
        if not args.quiet and args.format == "text":
            print(f"Fixed {fixed_total} problem(s).", file=sys.stderr)
    return report, ""


def _print(report: AuditReport, args: argparse.Namespace) -> None:
    if args.format == "json":
        _emit(to_json(report.findings), args)
        return
    if args.format == "sarif":
        # only here: importing importlib.metadata costs a run up to 0.7 s
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("loopbridge")
        except PackageNotFoundError:  # pragma: no cover - running from a checkout
            v = "0"
        _emit(to_sarif(report.findings, v), args)
        return
    if args.statistics:
        for n, code, name, fixable in report.statistics():
            print(f"{n:5d}\t{code}\t{name}\t{fixable}".rstrip())
        return
    if report.findings:
        _emit(to_text(report.findings), args)
    if args.quiet:
        return
    n = len(report.findings)
    if n == 0:
        print(f"All checks passed ({report.files} file(s)).", file=sys.stderr)
        return
    safe = sum(1 for f in report.findings if f.fix is not None and f.fix.safe)
    unsafe = sum(1 for f in report.findings if f.fix is not None and not f.fix.safe)
    tail = ""
    if safe:
        tail += f" {safe} fixable with --fix."
    if unsafe:
        tail += f" {unsafe} more with --fix --unsafe-fixes (they change behaviour: review them)."
    print(f"Found {n} problem(s) in {report.files} file(s).{tail}", file=sys.stderr)


def _emit(text: str, args: argparse.Namespace) -> None:
    if args.output_file:
        Path(args.output_file).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
