"""How fast the audit reads a big tree, side by side with ruff and flake8-async.

The tree: installed packages' sources copied into one folder until it holds at least
100,000 lines (redis, aiohttp, anyio, asyncpg, ipykernel: real async code). Each tool
runs on that tree pinned to one core (``taskset -c 0`` where it exists), best of
``--rounds``, with its cache off: the audit (all rules), ruff with its async rules
(``--select ASYNC,RUF006``), and flake8 with flake8-async (``--select ASYNC``). The
rules differ, so the times say what a project pays per run, not who is cleverer.

    python benchmarks/audit.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("redis", "aiohttp", "anyio", "asyncpg", "ipykernel", "jupyter_client")


def build_tree(dest: Path, at_least: int) -> tuple[int, list[str]]:
    lines = 0
    used: list[str] = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        src = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        used.append(name)
        lines += sum(
            len(p.read_text(encoding="utf-8", errors="replace").splitlines())
            for p in (dest / name).rglob("*.py")
        )
        if lines >= at_least:
            break
    return lines, used


def timed(cmd: list[str], rounds: int) -> tuple[float, int]:
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    best = float("inf")
    code = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        # bounded: flake8-async, the slowest, takes about 2.5 minutes on this tree
        res = subprocess.run(pin + cmd, capture_output=True, text=True, timeout=1800)
        best = min(best, time.perf_counter() - t0)
        code = res.returncode
        if code not in (0, 1):
            raise SystemExit(f"{cmd[0]} failed ({code}): {res.stderr[-2000:]}")
    return best, code


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(name)
    except PackageNotFoundError:
        return "(not installed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a 20,000-line tree, one round")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        lines, used = build_tree(tree, 20_000 if args.quick else 100_000)
        files = len(list(tree.rglob("*.py")))
        tools = [
            (
                "loopbridge audit (LB001-LB007)",
                [sys.executable, "-m", "loopbridge", "audit", str(tree), "--isolated", "-q"],
            )
        ]
        ruff = shutil.which("ruff", path=str(bin_dir)) or shutil.which("ruff")
        flake8 = shutil.which("flake8", path=str(bin_dir)) or shutil.which("flake8")
        peers = (
            (
                "ruff check --select ASYNC,RUF006",
                ruff,
                ["check", "--no-cache", "-q"],
                "ASYNC,RUF006",
            ),
            ("flake8 + flake8-async --select ASYNC", flake8, ["-j", "1"], "ASYNC"),
        )
        for name, exe, own, rules in peers:  # own: the tool's arguments before the shared
            if exe:
                shared = ["--isolated", "--select", rules, "--exit-zero", str(tree)]
                tools.append((name, [exe, *own, *shared]))
        results = [(name, *timed(cmd, rounds)) for name, cmd in tools]
    print(
        f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}; {version([ruff, '--version']) if ruff else 'no ruff'}; "
        f"flake8 {version([flake8, '--version']).split()[0] if flake8 else 'not installed'} "
        f"with flake8-async {_dist_version('flake8-async')}"
    )
    print(
        f"tree: {lines:,} lines in {files:,} files ({', '.join(used)}); one core; "
        f"best of {rounds}\n"
    )
    base = results[0][1]
    print("| tool | seconds | lines per second | x the audit's time |")
    print("|---|---|---|---|")
    for name, secs, _code in results:
        print(f"| {name} | {secs:.2f} | {lines / secs:,.0f} | {secs / base:.2f}x |")
    if not flake8:
        print("\n(flake8-async is not installed: pip install flake8 flake8-async)")


if __name__ == "__main__":
    main()
