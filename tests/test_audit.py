"""The audit (issue 14): ``python -m loopbridge audit``, its rules on a labelled corpus,
the five incident shapes, outputs, settings, fixes and bad input, all through the real
command line in a subprocess, as a user or CI runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT

from loopbridge.audit import RULES, check

pytestmark = pytest.mark.timeout(120)

CORPUS = ROOT / "tests" / "audit_corpus"
LINE = re.compile(
    r"^(?P<path>[^:]+):(?:cell (?P<cell>\d+):)?(?P<line>\d+):(?P<col>\d+): (?P<code>LB\d{3}) "
)


def audit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopbridge", "audit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=90,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


NESTED = """
    import asyncio


    async def fetch():
        return 1


    async def handler():
        return asyncio.run(fetch())
"""


def test_the_labelled_corpus_is_found_exactly() -> None:
    """Every rule: at least 10 positive and 10 negative cases, 100% precision and recall."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit_quality.py"), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| LB")]
    assert len(rows) == 7
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        _code, _name, pos, neg, _tp, fp, fn, precision, recall = cells
        assert int(pos) >= 10 and int(neg) >= 10, row
        assert (fp, fn, precision, recall) == ("0", "0", "100%", "100%"), row


@pytest.mark.parametrize(
    ("incident", "code", "chain"),
    [
        (
            "startup_nested",
            "LB001",
            "svc.app.lifespan -> svc.settings.load -> svc.secrets.read_secret -> asyncio.run",
        ),
        (
            "run_sync_helper",
            "LB001",
            "shop.handlers.get_profile -> shop.users.lookup_user -> shop.utils.aio.run_sync"
            " -> asyncio.run",
        ),
        ("celery_asyncpg", "LB002", "ingest.db._pool (asyncpg.create_pool)"),
        (
            "executor_data_tool",
            "LB002",
            "datatool.remote.RemoteTable._session (aiohttp.ClientSession)",
        ),
        ("redis_fixture", "LB004", "test_cache.py::test_get"),
    ],
)
def test_the_five_incident_shapes_are_found_with_the_chain(
    incident: str, code: str, chain: str
) -> None:
    res = audit(str(CORPUS / "incidents" / incident), "--isolated", "--format", "json")
    assert res.returncode == 1, res.stderr
    found = json.loads(res.stdout)
    assert [f["code"] for f in found] == [code]
    assert chain in found[0]["message"]


def test_text_output_exit_status_and_summary(tmp_path: Path) -> None:
    write(tmp_path, "bad.py", NESTED)
    write(tmp_path, "good.py", "import asyncio\n\nasyncio.run(asyncio.sleep(0))\n")
    res = audit(str(tmp_path), "--isolated")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert len(lines) == 1
    m = LINE.match(lines[0])
    assert m is not None and m["code"] == "LB001" and m["line"] == "9" and m["col"] == "12"
    assert m["path"].endswith("bad.py")
    assert "Found 1 problem(s) in 2 file(s)" in res.stderr
    assert "1 more with --fix --unsafe-fixes" in res.stderr
    clean = audit(str(tmp_path / "good.py"), "--isolated")
    assert clean.returncode == 0 and clean.stdout == ""
    assert "All checks passed (1 file(s))" in clean.stderr
    assert audit(str(tmp_path), "--isolated", "--exit-zero").returncode == 0


def test_json_and_sarif(tmp_path: Path) -> None:
    write(tmp_path, "bad.py", NESTED)
    as_json = json.loads(audit(str(tmp_path), "--isolated", "--format", "json").stdout)
    (one,) = as_json
    assert one["code"] == "LB001" and one["name"] == "nested-loop-entry"
    assert one["location"] == {"row": 9, "column": 12}
    assert one["fix"]["applicability"] == "unsafe"
    assert one["chain"] == ["bad.handler", "asyncio.run"]
    assert one["url"].endswith("#lb001-nested-loop-entry")
    sarif = json.loads(audit(str(tmp_path), "--isolated", "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    (result,) = run["results"]
    assert result["ruleId"] == "LB001" and result["level"] == "warning"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 9 and region["startColumn"] == 12
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.endswith("bad.py") and "\\\\" not in uri
    out = tmp_path / "out" / "audit.sarif"
    res = audit(str(tmp_path / "bad.py"), "--isolated", "--format", "sarif", "-o", str(out))
    assert res.returncode == 2 and "its folder does not exist" in res.stderr
    out.parent.mkdir()
    res = audit(str(tmp_path / "bad.py"), "--isolated", "--format", "sarif", "-o", str(out))
    assert res.returncode == 1 and res.stdout == ""
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "LB001"


def test_noqa_select_ignore_and_statistics(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m.py",
        """
        import asyncio


        async def fetch():
            return 1


        async def a():
            return asyncio.run(fetch())  # noqa: LB001


        async def b():
            return asyncio.run(fetch())  # noqa: LB007


        async def c():
            return asyncio.run(fetch())  # noqa


        async def d(loop):
            loop.create_task(fetch())
            return asyncio.run(fetch())
        """,
    )
    out = audit(str(tmp_path), "--isolated").stdout
    lines = sorted(int(LINE.match(x)["line"]) for x in out.splitlines())  # type: ignore[index]
    assert lines == [13, 21, 22]  # b's noqa names another code
    only = audit(str(tmp_path), "--isolated", "--select", "LB007").stdout
    assert [LINE.match(x)["code"] for x in only.splitlines()] == ["LB007"]  # type: ignore[index]
    none = audit(str(tmp_path), "--isolated", "--ignore", "LB0")
    assert none.returncode == 0 and none.stdout == ""
    stats = audit(str(tmp_path), "--isolated", "--statistics").stdout.splitlines()
    assert stats == ["    2\tLB001\tnested-loop-entry\t2 fixable", "    1\tLB007\tlost-task"]
    bad = audit(str(tmp_path), "--select", "LB999")
    assert bad.returncode == 2 and "unknown rule code 'LB999'" in bad.stderr


def test_settings_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pkg/a.py", NESTED)
    write(tmp_path, "pkg/legacy/b.py", NESTED)
    write(tmp_path, "scripts/c.py", NESTED)
    write(
        tmp_path,
        "pkg/own.py",
        """
        import asyncio
        import mylib

        client = mylib.Client()


        async def use():
            await client.get()


        def one():
            asyncio.run(use())


        def two():
            asyncio.run(use())
        """,
    )
    write(
        tmp_path,
        "pyproject.toml",
        """
        [tool.loopbridge.audit]
        select = ["LB00"]
        exclude = ["pkg/legacy"]
        per-file-ignores = { "scripts/*" = ["LB001"] }
        loop-bound = ["mylib.Client"]
        """,
    )
    res = audit(".", cwd=tmp_path)
    got = sorted((LINE.match(x)["path"], LINE.match(x)["code"]) for x in res.stdout.splitlines())  # type: ignore[index]
    assert got == [("pkg/a.py", "LB001"), ("pkg/own.py", "LB003")]
    # the settings are found from any working directory, through the path given
    again = audit(str(tmp_path / "pkg"), cwd=ROOT)
    assert sorted(LINE.match(x)["code"] for x in again.stdout.splitlines()) == ["LB001", "LB003"]  # type: ignore[index]
    write(tmp_path, "pyproject.toml", "[tool.loopbridge.audit]\nselekt = ['LB001']\n")
    typo = audit(".", cwd=tmp_path)
    assert (
        typo.returncode == 2 and "unknown key(s) in [tool.loopbridge.audit]: selekt" in typo.stderr
    )
    write(tmp_path, "pyproject.toml", "[tool.loopbridge.audit\n")
    broken = audit(".", cwd=tmp_path)
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr
    assert audit(".", "--isolated", cwd=tmp_path).returncode == 1  # settings not read


def test_fix_runs_the_calls_on_one_loop_and_the_bug_is_gone(tmp_path: Path) -> None:
    """The safe fix of LB002, applied by --fix, turns a helper that broke on its second
    call ('bound to a different event loop') into one that works: run for real."""
    write(
        tmp_path,
        "tool.py",
        """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        ready = asyncio.Event()


        async def wait_a_little():
            try:
                await asyncio.wait_for(ready.wait(), 0.01)
            except asyncio.TimeoutError:
                return "waited"


        def head():
            return ThreadPoolExecutor(1).submit(asyncio.run, wait_a_little()).result(timeout=5)
        """,
    )
    run_twice = [sys.executable, "-c", "import tool; print(tool.head()); print(tool.head())"]
    before = subprocess.run(run_twice, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert before.returncode != 0 and "bound to a different event loop" in before.stderr
    diff = audit("tool.py", "--isolated", "--diff", cwd=tmp_path)
    assert diff.returncode == 1
    assert "+    return loopbridge.run_sync(wait_a_little(), timeout=5)" in diff.stdout
    assert "+import loopbridge" in diff.stdout
    assert "ThreadPoolExecutor(1).submit" in (tmp_path / "tool.py").read_text()  # unchanged
    fixed = audit("tool.py", "--isolated", "--fix", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Fixed 1 problem(s)." in fixed.stderr
    after = subprocess.run(run_twice, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["waited", "waited"]


def test_a_sync_helper_called_from_two_places_is_a_loop_per_call(tmp_path: Path) -> None:
    """A sync helper that starts its own loop, called from two views, with a kept
    loop-bound object named in the coroutine or handed in by the callers: the second
    call fails for real; the audit says so at the helper, names the object and the
    callers; the advice (run_sync) makes both calls work and the audit clean."""
    broken = """
        import asyncio

        ready = asyncio.Event()


        def wait_with(event):
            try:
                return asyncio.run(asyncio.wait_for(event.wait(), 0.01))
            except asyncio.TimeoutError:
                return "waited"


        def view_a():
            return wait_with(ready)


        def view_b():
            return wait_with(ready)
        """
    write(tmp_path, "views.py", broken)
    run_both = [sys.executable, "-c", "import views; print(views.view_a()); print(views.view_b())"]
    before = subprocess.run(run_both, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert before.returncode != 0 and "bound to a different event loop" in before.stderr
    res = audit("views.py", "--isolated", cwd=tmp_path)
    assert res.returncode == 1
    (line,) = res.stdout.splitlines()
    assert line.startswith("views.py:8:16: LB002 a new event loop per call (in views.wait_with(),")
    assert "called from 2 places (views.view_a(), views.view_b())" in line
    assert (
        "event (views.ready (asyncio.Event), passed in by views.view_a(), views.view_b())" in line
    )

    # the fix is a suggestion (the call moves to the worker's thread): --fix alone
    # leaves it, --unsafe-fixes applies it
    assert audit("views.py", "--isolated", "--fix", cwd=tmp_path).returncode == 1
    assert "asyncio.run(asyncio.wait_for" in (tmp_path / "views.py").read_text()
    fixed = audit("views.py", "--isolated", "--fix", "--unsafe-fixes", cwd=tmp_path)
    assert fixed.returncode == 0 and "Fixed 1 problem(s)." in fixed.stderr
    text = (tmp_path / "views.py").read_text()
    assert "return loopbridge.run_sync(asyncio.wait_for(event.wait(), 0.01))" in text
    assert "import asyncio\nimport loopbridge\n" in text
    after = subprocess.run(run_both, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["waited", "waited"]
    assert audit("views.py", "--isolated", cwd=tmp_path).returncode == 0


def test_a_fix_keeps_the_files_encoding_and_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "legacy.py"
    path.write_bytes(
        b"# -*- coding: latin-1 -*-\r\nimport asyncio\r\n"
        b"from concurrent.futures import ThreadPoolExecutor\r\n"
        b"name = '\xe9'\r\nready = asyncio.Event()\r\n\r\n\r\n"
        b"async def wait():\r\n    await ready.wait()\r\n\r\n\r\n"
        b"def call():\r\n    return ThreadPoolExecutor(1).submit(asyncio.run, wait()).result()\r\n"
    )
    res = audit(str(path), "--isolated", "--fix")
    assert res.returncode == 0, res.stdout + res.stderr
    data = path.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == 14  # every line still CRLF
    assert b"name = '\xe9'" in data  # still latin-1
    assert b"import loopbridge\r\n" in data and b"return loopbridge.run_sync(wait())" in data


def test_suggested_fixes_need_unsafe_fixes(tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", NESTED)
    res = audit(str(path), "--isolated", "--fix")
    assert res.returncode == 1 and "asyncio.run(fetch())" in path.read_text()
    res = audit(str(path), "--isolated", "--fix", "--unsafe-fixes")
    assert res.returncode == 0
    assert "return await fetch()" in path.read_text()
    both = audit(str(path), "--fix", "--diff")
    assert both.returncode == 2 and "cannot be used together" in both.stderr


def test_notebooks_are_checked_cell_by_cell(tmp_path: Path) -> None:
    def code(src: str) -> dict[str, object]:
        return {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": src,
        }

    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "asyncio.run(main())"},
            code("import asyncio\nasync def main():\n    return 1"),
            code("%%writefile job.py\nimport asyncio\nasyncio.run(main())"),
            {"cell_type": "raw", "metadata": {}, "source": "asyncio.run(main())"},
            code("%matplotlib inline\nx = !ls\nresult = asyncio.run(main())"),
            code("def broken(:\n    pass"),
            code("value = await main()\nprint(value)"),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "analysis.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    res = audit(str(tmp_path / "analysis.ipynb"), "--isolated")
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    assert re.match(
        r".*analysis\.ipynb:cell 3:3:10: LB001 "
        r".*notebook cell runs inside the kernel's running event loop",
        lines[0],
    )
    assert re.match(r".*analysis\.ipynb:cell 4:1:\d+: LB000 syntax error", lines[1])


# The pytest-shaped corpus cases that need only Redis, pytest-asyncio and AnyIO: run
# for real, each must fail with a loop error exactly when the audit (and its label)
# says LB003/LB004, and pass, or fail for another reason, when it says not.
RUNNABLE = [
    *(
        f"lb004/{name}"
        for name in (
            "anyio_session_fixture",
            "conftest_hook",
            "function_fixture",
            "ini_default_fixture_scope",
            "ini_test_scope",
            "lazy_function_fixture",
            "marked_session",
            "named_fixture",
            "not_visible",
            "pytestmark_module",
            "session_fixture",
            "setup_cfg_scope",
            "strict_plain_fixture",
            "sync_one_user",
            "sync_session_fixture",
            "sync_tests_only",
        )
    ),
    *(
        f"lb003/pytest_{name}"
        for name in (
            "anyio_each_test",
            "anyio_shared",
            "bare_mark",
            "hook_session",
            "module_client",
            "session_default",
            "shared_loop",
            "python_files",
            "single",
            "strict_unmarked",
        )
    ),
]
LOOP_ERROR = re.compile(r"attached to a different loop|Event loop is closed|different event loop")


@pytest.mark.services
@pytest.mark.parametrize("case", RUNNABLE)
def test_pytest_corpus_cases_fail_for_real_exactly_when_reported(case: str, tmp_path: Path) -> None:
    """The audit's model of pytest-asyncio and AnyIO (strict and auto mode, the closest
    mark, conftest hooks, AnyIO's shared runner, lazily bound clients) checked against
    what pytest really does with these plugins and a real Redis."""
    from tests.services import require_port

    for module in ("redis", "pytest_asyncio", "anyio"):
        pytest.importorskip(module)
    require_port("127.0.0.1", 6379, "Redis")
    folder = tmp_path / "case"
    shutil.copytree(CORPUS / case, folder)
    labels = "\n".join(p.read_text("utf-8") for p in folder.rglob("*.py"))
    labelled = re.search(r"# expect: LB00[34]", labels) is not None
    codes = {f.code for f in check([folder], isolated=True).findings}
    reported = bool(codes & {"LB003", "LB004"})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:timeout"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    failed_on_loops = LOOP_ERROR.search(run.stdout + run.stderr) is not None
    summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    assert labelled == reported, f"{case}: labelled {labelled}, reported {codes}"
    assert failed_on_loops == reported, (
        f"{case}: the audit says {sorted(codes) or 'nothing'}, pytest says: {summary}"
    )
    if not reported:
        # not a loop problem; the two strict-mode cases fail for pytest's own reasons
        assert run.returncode == 0 or "strict" in case, run.stdout[-2000:]


def _nb_code(src: str, outputs: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "execution_count": 7 if outputs else None,
        "metadata": {"tags": ["keep-me"]},
        "outputs": outputs or [],
        "source": src.splitlines(keepends=True),
    }


FIXABLE_NOTEBOOK = {
    "cells": [
        _nb_code(
            "import asyncio\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "\n"
            "ready = asyncio.Event()\n"
            "\n"
            "async def wait_a_little():\n"
            "    try:\n"
            "        await asyncio.wait_for(ready.wait(), 0.01)\n"
            "    except asyncio.TimeoutError:\n"
            "        return 'waited'"
        ),
        {"cell_type": "markdown", "metadata": {}, "source": ["Résumé ✓: the helper\n"]},
        _nb_code(
            "%%time\n"
            "def head():\n"
            "    with ThreadPoolExecutor(1) as ex:\n"
            "        return ex.submit(asyncio.run, wait_a_little()).result(timeout=5)"
        ),
        _nb_code(
            "print(head(), head())",
            [{"output_type": "stream", "name": "stdout", "text": ["an old output ✓\n"]}],
        ),
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
for _n, _cell in enumerate(FIXABLE_NOTEBOOK["cells"]):  # type: ignore[arg-type]
    _cell["id"] = f"cell-{_n}"


@pytest.mark.kernel
@pytest.mark.timeout(240)
def test_fix_in_a_notebook_cell_runs_on_one_loop_and_keeps_the_rest(tmp_path: Path) -> None:
    """--fix rewrites the notebook cell that broke on its second call, run for real on a
    kernel before and after, and changes nothing else in the file: other cells, outputs,
    metadata, non-ASCII text, the `%%time` line, the JSON layout."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = tmp_path / "analysis.ipynb"
    path.write_text(json.dumps(FIXABLE_NOTEBOOK, indent=1, ensure_ascii=False) + "\n", "utf-8")
    original = json.loads(path.read_text("utf-8"))

    def execute() -> Any:
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
        return nb

    with pytest.raises(nbclient.exceptions.CellExecutionError, match="different event loop"):
        execute()
    diff = audit(str(path), "--isolated", "--diff", cwd=tmp_path)
    assert diff.returncode == 1
    assert diff.stdout.startswith("--- a/analysis.ipynb:cell 2\n+++ b/analysis.ipynb:cell 2\n"), (
        diff.stdout
    )
    assert " %%time\n+import loopbridge\n def head():\n" in diff.stdout
    assert "+    return loopbridge.run_sync(wait_a_little(), timeout=5)" in diff.stdout
    assert json.loads(path.read_text("utf-8")) == original  # --diff changes nothing

    fixed = audit(str(path), "--isolated", "--fix", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Fixed 1 problem(s)." in fixed.stderr
    text = path.read_text("utf-8")
    now = json.loads(text)
    assert now["cells"][2]["source"] == [
        "%%time\n",
        "import loopbridge\n",
        "def head():\n",
        "    return loopbridge.run_sync(wait_a_little(), timeout=5)",
    ]
    now["cells"][2]["source"] = original["cells"][2]["source"]
    assert now == original  # nothing else changed
    # the file's own layout (Jupyter's), non-ASCII text as written
    assert text == json.dumps(json.loads(text), indent=1, ensure_ascii=False) + "\n"
    assert "Résumé ✓" in text and "\\u" not in text

    ran = execute()
    printed = [o for o in ran.cells[3].outputs if o.output_type == "stream"]
    assert printed and printed[0].text == "waited waited\n"


def test_suggested_fixes_in_notebooks_await_at_the_top_of_a_cell_only(tmp_path: Path) -> None:
    """`asyncio.run(c)` at the top level of a cell may become `await c` (top-level await
    works there): a suggestion, with its rows given within the cell; never in a class
    body or a sync def, where `await` would not compile."""
    nb = {
        "cells": [
            _nb_code("import asyncio\nasync def main():\n    return 1"),
            _nb_code("%%time\nvalue = asyncio.run(main())\nprint(value)"),
            _nb_code("class Settings:\n    value = asyncio.run(main())"),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")  # not Jupyter's layout: no indent
    as_json = json.loads(audit(str(path), "--isolated", "--format", "json").stdout)
    by_cell = {f["cell"]: f for f in as_json}
    assert sorted(by_cell) == [2, 3]
    assert by_cell[3]["fix"] is None
    fix = by_cell[2]["fix"]
    assert fix["applicability"] == "unsafe"
    assert [(e["line"], e["col"], e["text"]) for e in fix["edits"]] == [(2, 8, "await main()")]

    safe_only = audit(str(path), "--isolated", "--fix")
    assert safe_only.returncode == 1 and json.loads(path.read_text("utf-8")) == nb
    res = audit(str(path), "--isolated", "--fix", "--unsafe-fixes")
    assert res.returncode == 1  # the class-body one is left for a person
    cells = json.loads(path.read_text("utf-8"))["cells"]
    assert "".join(cells[1]["source"]) == "%%time\nvalue = await main()\nprint(value)"
    assert "".join(cells[2]["source"]) == "class Settings:\n    value = asyncio.run(main())"
    assert path.read_text("utf-8").startswith('{\n "cells"')  # written as Jupyter writes


def test_bad_input_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    write(tmp_path, "a_good.py", NESTED)
    write(tmp_path, "b_syntax.py", "def f(:\n    pass\n")
    (tmp_path / "c_binary.py").write_bytes(b"\x00\x01\x02\x89PNG")
    (tmp_path / "d_gone.py").symlink_to(tmp_path / "nowhere.py")
    (tmp_path / "e_nb.ipynb").write_text("{not json", encoding="utf-8")
    (tmp_path / "f_latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9'\n")
    (tmp_path / "g_deep.py").write_text("x = " + " + ".join(["1"] * 5000) + "\n")
    res = audit(str(tmp_path), "--isolated")
    assert res.returncode == 1
    by_file = {Path(LINE.match(x)["path"]).name: x for x in res.stdout.splitlines()}  # type: ignore[index]
    assert "LB001" in by_file["a_good.py"]  # the rest of the tree is still checked
    assert re.search(r"b_syntax\.py:1:7: LB000 syntax error", by_file["b_syntax.py"])
    assert "LB000 binary file" in by_file["c_binary.py"]
    assert "LB000 cannot read" in by_file["d_gone.py"]
    assert "LB000 not a valid notebook (not JSON)" in by_file["e_nb.ipynb"]
    assert "f_latin1.py" not in by_file
    assert "LB000 too deeply nested" in by_file["g_deep.py"]
    missing = audit(str(tmp_path / "no-such-dir"))
    assert missing.returncode == 2 and "no-such-dir: no such file or folder" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = audit(str(empty))
    assert nothing.returncode == 0
    assert "no Python files or notebooks found under" in nothing.stderr


def test_the_code_checked_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    write(tmp_path, "evil.py", f"open({str(marker)!r}, 'w').write('x')\n" + textwrap.dedent(NESTED))
    res = audit(str(tmp_path), "--isolated")
    assert res.returncode == 1 and not marker.exists()


def test_any_working_directory_and_a_package_folder(tmp_path: Path) -> None:
    write(tmp_path, "proj/app/__init__.py", "")
    write(
        tmp_path,
        "proj/app/conf.py",
        "import asyncio\n\ndef load():\n    return asyncio.run(f())\n\n"
        "async def f():\n    return 1\n",
    )
    write(tmp_path, "proj/app/web.py", "from .conf import load\n\nasync def start():\n    load()\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for given, cwd in (
        (str(tmp_path / "proj" / "app"), elsewhere),
        ("app", tmp_path / "proj"),
        (str(tmp_path / "proj"), ROOT),
    ):
        res = audit(given, "--isolated", cwd=cwd)
        assert res.returncode == 1, (given, res.stderr)
        assert "app.web.start -> app.conf.load -> asyncio.run" in res.stdout, given
    # one file alone: the call graph covers the checked tree only, and the module it
    # imports is not in it (never imported, never guessed at)
    alone = audit(str(tmp_path / "proj" / "app" / "web.py"), "--isolated", cwd=ROOT)
    assert alone.returncode == 0


def test_console_script_and_pre_commit_hook() -> None:
    script = Path(sys.executable).with_name("loopbridge-audit")
    exe = str(script) if script.exists() else shutil.which("loopbridge-audit")
    assert exe is not None, "pip install -e . puts loopbridge-audit on PATH"
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "LB004  pytest-loop-scope-mismatch" in res.stdout
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "id: loopbridge-audit" in hooks and "entry: loopbridge-audit" in hooks
    assert "jupyter" in hooks


def test_the_project_itself_is_clean() -> None:
    """Dogfood: the project's own code, read with its own settings (which leave out the
    corpus and the incident programs, broken on purpose)."""
    report = check([ROOT / p for p in ("src", "benchmarks", "scripts", "tests", "notebooks")])
    assert report.config.source == ROOT / "pyproject.toml"
    assert [f"{f.location()} {f.code}" for f in report.findings] == []


def test_check_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """The audit runs with the cyclic collector off (it halves the time) and puts it
    back: on if it was on, off if it was off, also when it raises."""
    import gc

    from loopbridge.audit import ConfigError

    write(tmp_path, "m.py", NESTED)
    assert gc.isenabled()
    assert [f.code for f in check([tmp_path], isolated=True).findings] == ["LB001"]
    assert gc.isenabled()
    with pytest.raises(ConfigError):
        check([tmp_path], select=["XY1"])
    assert gc.isenabled()
    gc.disable()
    try:
        check([tmp_path], isolated=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_api_errors_are_clear(tmp_path: Path) -> None:
    from loopbridge.audit import ConfigError

    with pytest.raises(ConfigError, match="unknown rule code 'XY1'"):
        check([tmp_path], select=["XY1"])
    with pytest.raises(ConfigError, match="expected rule codes"):
        check([tmp_path], select=[1])  # type: ignore[list-item]


@pytest.mark.kernel
def test_aio_audit_in_a_kernel(tmp_path: Path) -> None:
    from tests.kernel import running_kernel

    write(tmp_path, "bad.py", NESTED)
    with running_kernel() as k:
        k.ok("%load_ext loopbridge")
        res = k.ok(
            f"view = get_ipython().run_line_magic('aio', 'audit {tmp_path}')\n"
            "print(view)\nprint(view.to_records()[0]['code'])"
        )
        assert "1 finding(s) in 1 file(s)" in res.stdout
        assert "nested-loop-entry" in res.stdout and res.stdout.strip().endswith("LB001")
        bad = k.execute("%aio audit /no/such/place")
        assert (
            bad.status == "error" and "UsageError: %aio audit: no such file or folder" in bad.stderr
        )
        bad = k.execute(f"%aio audit {tmp_path} --select LB9")
        assert bad.status == "error" and "unknown rule code 'LB9'" in bad.stderr


@pytest.mark.kernel
def test_aio_audit_session_checks_the_cells_run_so_far(tmp_path: Path) -> None:
    """%aio audit --session reads the cells this kernel ran (as typed, magics and all)
    and names them as the user sees them: In[N]:line."""
    from tests.kernel import running_kernel

    with running_kernel() as k:
        k.ok("%load_ext loopbridge")  # In[1]
        k.ok("import asyncio\n\nasync def fetch():\n    return 1")  # In[2]
        failed = k.execute("%time value = 0\nvalue = asyncio.run(fetch())")  # In[3]
        assert failed.status == "error"
        assert "cannot be called from a running event loop" in failed.traceback_text
        k.ok("def fetch_sync():\n    return asyncio.run(fetch())")  # In[4]
        k.execute("fetch_sync()")  # In[5]
        res = k.ok(  # In[6]
            "view = get_ipython().run_line_magic('aio', 'audit --session')\n"
            "print(view)\n"
            "for r in view.to_records():\n"
            "    print(r['filename'], r['location']['row'], r['code'], r['chain'])"
        )
        assert "2 finding(s) in 6 cell(s) of this session" in res.stdout, res.stdout
        rows = [x for x in res.stdout.splitlines() if x.startswith("In[")]
        assert rows[-2:] == [
            "In[3] 2 LB001 ['In[3]', 'asyncio.run']",
            "In[5] 1 LB001 ['In[5]', '__main__.fetch_sync', 'asyncio.run']",
        ], res.stdout
        assert "loopbridge-audit-" not in res.stdout  # no temporary path shows
        clean = k.ok("%aio audit --session --select LB005")
        assert clean.result == "no loop-affinity problems found in 7 cell(s) of this session"
        both = k.execute(f"%aio audit {tmp_path} --session")
        assert both.status == "error" and "give paths or --session, not both" in both.stderr


def test_every_rule_is_documented() -> None:
    doc = (ROOT / "docs" / "audit.md").read_text()
    for code, rule in RULES.items():
        assert f"## {code} {rule.name}" in doc
        if code != "LB000":
            section = doc.split(f"## {code} {rule.name}", 1)[1].split("\n## ", 1)[0]
            assert "Bad:" in section and "Good:" in section and "Why:" in section, code
    assert "| LB007 |" in doc  # the table against ruff and flake8-async


def test_environment_is_untouched(tmp_path: Path) -> None:
    """Auditing does not leave files behind (no cache folders in the tree checked)."""
    write(tmp_path, "m.py", NESTED)
    before = sorted(os.listdir(tmp_path))
    audit(str(tmp_path), "--isolated")
    assert sorted(os.listdir(tmp_path)) == before


def test_the_view_escapes_html_and_gives_records(tmp_path: Path) -> None:
    """%aio audit's view: text, escaped HTML (a message may hold `<lambda:3>` or a
    notebook cell's `<module>`), and records with every field."""
    from loopbridge.audit._output import AuditView

    write(
        tmp_path,
        "m.py",
        """
        import asyncio


        async def go():
            return (lambda: asyncio.run(go()))()
        """,
    )
    report = check([tmp_path], isolated=True)
    view = AuditView(report.findings, report.files)
    assert [f.code for f in report.findings] == ["LB001"]
    assert "<lambda:5>" in report.findings[0].message
    html = view._repr_html_()
    assert "&lt;lambda:5&gt;" in html and "<lambda" not in html
    assert "1 finding(s) in 1 file(s)" in str(view)
    (record,) = view.to_records()
    assert record["code"] == "LB001" and record["location"]["row"] == 5
    empty = AuditView([], 3)
    assert str(empty) == "no loop-affinity problems found in 3 file(s)"
