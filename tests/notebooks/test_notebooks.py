"""The notebook suite: every notebook runs top to bottom, and what is committed is clean.

Notebooks run in a real kernel (no MPLBACKEND=Agg: figures must reach the outputs) with the
notebooks folder as working directory, one test per notebook. The committed ``.ipynb`` carries
no outputs, and its cells are exactly those of its jupytext-paired ``.py``.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
IPYNBS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_notebooks():
    assert IPYNBS, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("path", IPYNBS, ids=[p.name for p in IPYNBS])
def test_notebook_executes(path: Path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name}: no figure reached the outputs"


@pytest.mark.parametrize("path", IPYNBS, ids=[p.name for p in IPYNBS])
def test_notebook_is_paired_clean_and_in_sync(path: Path):
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired {script.name} (jupytext --sync)"
    nb = nbformat.read(path, as_version=4)
    fmt = nb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in fmt, f"{path.name}: not paired with a py:percent script"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i}: committed with outputs"
            assert cell.execution_count is None, f"{path.name} cell {i}: has an execution count"
    assert _cells(jupytext.read(path)) == _cells(jupytext.read(script)), (
        f"{path.name} and {script.name} differ; run `jupytext --sync {script}`"
    )
