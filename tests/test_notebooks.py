"""The notebooks run top to bottom on the tiny llama model, and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_refusal_directions", "03_probes", "04_drift_vs_asr"]
CELL_TIMEOUT_S = 60


def test_the_numbered_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {cell.id} has outputs"
        assert "execution" not in cell.metadata, f"{path.name} cell {cell.id} keeps execution timings"
    assert nb.cells[0].cell_type == "markdown", f"{path.name} should open with a markdown cell saying what it shows"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_tiny_model(path, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYDRIFT_NOTEBOOK_MODEL", str(tiny_llama))
    monkeypatch.setenv("DRIFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYDRIFT_NOTEBOOK_STUDY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a tiny model gains nothing from threads on a shared machine
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, f"{path.name} showed no plotly figure"
