"""``python -m loopbridge``: command-line entry point."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopbridge",
        description="Call async code from sync code on one persistent worker event loop.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the quickstart notebook headlessly and print what each cell shows",
        description=(
            "Run notebooks/quickstart.ipynb on a real kernel and print each cell with what it "
            "shows: the problem, the fix, the %%aio magics. Needs no network."
        ),
    )
    demo.add_argument(
        "--script",
        action="store_true",
        help="run the scripted demo instead (no Jupyter needed; includes a real Ctrl-C)",
    )
    sub.add_parser(
        "audit",
        help="find loop-affinity bugs in Python files and notebooks (loopbridge-audit)",
        add_help=False,
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:  # everything after "audit" is the audit's own
        from .audit.cli import main as audit_main

        return audit_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo, run_notebook_demo

        return run_demo() if args.script else run_notebook_demo()
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
