"""The notebooks in notebooks/ run top to bottom on a real kernel and match their stored outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


# What legitimately changes from run to run: task ids (addresses), task numbers, ages and
# times left, addresses, ipykernel's temporary cell files, the Python install path, and the
# column widths that follow from those.
VOLATILE = [
    (re.compile(r"\b[0-9a-f]{6}\b"), "<id>"),
    (re.compile(r"Task-\d+"), "Task-<n>"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s|m|h)\b"), "<time>"),
    (re.compile(r"0x[0-9a-f]+"), "0x<addr>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "<cell file>"),
    (re.compile(r"/\S+/(asyncio/\S+\.py)"), r"\1"),
    # ipykernel's own tasks and loops: ipykernel 6 and 7 differ
    (re.compile(r"\d+ kernel-internal (task|loop)"), r"<n> kernel-internal \1"),
    (re.compile(r"-{2,}"), "-"),
    (re.compile(r"[ \t]+"), " "),
]


def normalise(text: str) -> str:
    for rx, repl in VOLATILE:
        text = rx.sub(repl, text)
    return text


def visible(cell: Any) -> list[str]:
    """What a reader sees of a cell that does not change between runs (stderr excluded)."""
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream" and o["name"] == "stdout":
            out.append(o["text"])
        elif o["output_type"] in ("execute_result", "display_data"):
            out.append(o["data"].get("text/plain", ""))
        elif o["output_type"] == "error":
            out.append(f"{o['ename']}: {o['evalue']}")
    return [normalise(t) for t in out]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_matches_its_stored_outputs(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    stored = nbformat.read(path, as_version=4)
    fresh = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        fresh, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    code = [(a, b) for a, b in zip(stored.cells, fresh.cells, strict=True) if a.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for i, (old, new) in enumerate(code):
        assert visible(new) == visible(old), (
            f"{path.name}, code cell {i}: output differs from the stored one; "
            "re-run `make notebooks` if the change is intended"
        )
    assert sum(len(visible(new)) for _, new in code) >= 5, "the stored outputs are missing"


def test_the_three_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "inspect.ipynb", "async_table.ipynb"} <= names


def test_normalise_keeps_what_matters() -> None:
    a = "c0ffd0  supervisor  main  pending  111ms  In[8]  sleep(60s, 59.9s left)"
    b = "1a2b3c  supervisor  main  pending  9.5s   In[8]  sleep(60s, 58.12s left)"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(a.replace("In[8]", "In[9]"))
    assert normalise(a) != normalise(a.replace("pending", "cancelling"))
