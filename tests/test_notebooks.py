"""The notebooks in notebooks/ run top to bottom on a real kernel and match their stored outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
    return out


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


def test_there_is_a_worked_example() -> None:
    assert any(p.name == "async_table.ipynb" for p in NOTEBOOKS)
