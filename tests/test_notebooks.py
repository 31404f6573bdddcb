"""The notebooks under notebooks/: committed clean, and each runs top to bottom in SMOKE mode.

Two kinds of test:

- static checks of every committed notebook: valid nbformat, no outputs, no execution
  counts, no saved widget state, exactly one cell tagged ``parameters`` (papermill style),
  which is the first code cell and sets ``SMOKE = True``; the first cell is markdown and
  says how long the FULL setting takes on CPU and on GPU;
- execution (marker ``notebooks``; deselect with ``-m "not notebooks"``): each notebook runs
  on a fresh kernel with nbclient, in its committed SMOKE setting.

Execution happens in a temporary copy of notebooks/ (``smoke_project`` of conftest.py,
shared with the browser tests): the kernel's working directory is ``<tmp>/notebooks``, so
the notebooks' relative runs folder (``../runs/smoke``) and the projection cache land in the
temporary folder, never in the project, and the executed copies are discarded. The notebooks run in name order and share that folder, as a user's
notebooks share runs/: a later notebook reuses the finished runs of an earlier one with the
same settings (what ``experiment.teacher_run`` / ``student_run`` promise), and each one also
runs on its own (it then trains what it needs).

The kernel inherits this process's environment: ``HTDVIZ_DATA_DIR`` (an empty folder per
test, see conftest.py; a folder holding the CiteULike files for the notebooks that read
them), ``HTDVIZ_DATA_MIRROR``. The notebooks that need CiteULike in SMOKE mode are skipped
when it is not available offline.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat "
                               "(pip install \"htdviz[test]\")")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_quickstart", "02_teachers", "03_distillation", "04_topology_explorer",
            "05_capacity_gap", "06_paper_analyses", "07_sensitivity")
#: Notebooks whose SMOKE setting reads CiteULike (the others use synthetic data).
SMOKE_NEEDS_CITEULIKE = {"02_teachers", "04_topology_explorer"}
#: Seconds one cell may run before the execution test fails (SMOKE cells take seconds).
CELL_TIMEOUT = 600


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _ids(paths):
    return [p.stem for p in paths]


def test_every_notebook_is_there():
    assert set(EXPECTED) <= {p.stem for p in NOTEBOOKS}, \
        f"notebooks/ lacks {sorted(set(EXPECTED) - {p.stem for p in NOTEBOOKS})}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    fix = f"clear them before committing: jupyter nbconvert --clear-output --inplace {path}"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}, cell {i} carries outputs; {fix}"
        assert cell.execution_count is None, \
            f"{path.name}, cell {i} has execution_count {cell.execution_count}; {fix}"
    assert "widgets" not in nb.metadata, \
        (f"{path.name} carries saved widget state (metadata 'widgets'); turn off "
         f"'Save Widget State Automatically' in JupyterLab and {fix}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameters_cell_comes_first_and_is_smoke(path):
    nb = _read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", \
        f"{path.name} must open with a markdown cell"
    intro = nb.cells[0].source
    for word in ("SMOKE", "FULL", "CPU", "GPU"):
        assert word in intro, f"{path.name}: the first cell must say how long SMOKE and " \
                              f"FULL take on CPU and GPU (no {word!r} found)"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged 'parameters'"
    assert tagged[0] is code_cells[0], f"{path.name}: the parameters cell must be the " \
                                       f"first code cell"
    assert re.search(r"^SMOKE = True\b", tagged[0].source, re.MULTILINE), \
        f"{path.name}: the committed parameters cell must set SMOKE = True (what CI runs)"


@pytest.fixture(scope="module")
def workdir(smoke_project) -> Path:
    """The session's temporary project (conftest.py): <root>/notebooks is the kernel's cwd."""
    return smoke_project


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_top_to_bottom_in_smoke_mode(path, workdir, request, monkeypatch):
    for module in ("nbclient", "ipykernel", "plotly", "ipywidgets", "umap"):
        if importlib.util.find_spec(module) is None:      # present, without importing it
            pytest.skip(f"executing the notebooks needs {module} "
                        f"(pip install \"htdviz[notebooks,test]\")")
    from nbclient import NotebookClient

    if path.stem in SMOKE_NEEDS_CITEULIKE:
        # a data folder already holding the checked files: the kernel never downloads
        monkeypatch.setenv("HTDVIZ_DATA_DIR", str(request.getfixturevalue("citeulike_dir")))
    env = dict(os.environ, HTDVIZ_CACHE_DIR=str(workdir / "cache"),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    # SMOKE models are tiny: extra threads cost more than they save (as in conftest.py)
    env.setdefault("OMP_NUM_THREADS", "1")
    copy = workdir / "notebooks" / path.name
    shutil.copy(path, copy)
    nb = _read(copy)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(copy.parent)}})
    client.execute(env=env)          # raises CellExecutionError, naming the cell, on failure

    smoke_runs = workdir / "runs" / "smoke"
    assert smoke_runs.is_dir() and any(smoke_runs.iterdir()), \
        f"{path.name} wrote no runs to {smoke_runs} (its SMOKE runs folder)"
    assert not (workdir / "notebooks" / "runs").exists(), \
        f"{path.name} wrote runs next to the notebooks instead of to ../runs/smoke"
