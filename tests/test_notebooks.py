"""The notebooks under notebooks/: committed clean, and each runs top to bottom in SMOKE mode.

Two kinds of test:

- static checks of every committed notebook: valid nbformat, no outputs, no execution
  counts, no saved widget state, exactly one cell tagged ``parameters`` (papermill style),
  which is the first code cell and sets ``SETTING = "lesson"`` (a person opening the
  notebook runs the lesson setting; the tests inject ``SETTING = "smoke"``); the first
  cell is markdown and says how long each setting takes on CPU and on GPU;
- execution (marker ``notebooks``; deselect with ``-m "not notebooks"``): each notebook runs
  top to bottom in its committed SMOKE setting, with no error output, and the runs it
  trained or reused are finished folders in its SMOKE runs folder (``../runs/smoke``).

Each notebook is executed once per session (``executed_notebook`` of conftest.py, see
tests/notebook_session.py): in JupyterLab in Chromium when the session also runs the
browser tests (tests/test_browser.py checks the page of the same execution), else on a
fresh kernel with nbclient. Execution happens in a temporary copy of notebooks/
(``smoke_project`` of conftest.py): the kernel's working directory is ``<tmp>/notebooks``,
so the notebooks' relative runs folder (``../runs/smoke``) and the projection cache land in
the temporary folder, never in the project, and the executed copies are discarded. The
notebooks share that folder, as a user's notebooks share runs/: a later notebook reuses the
finished runs of an earlier one with the same settings (what ``experiment.teacher_run`` /
``student_run`` promise), and each one also runs on its own (it then trains what it
needs). So "it wrote runs to ../runs/smoke" is checked as "every finished run folder its
namespace holds after the last cell lies in ../runs/smoke, and there is at least one".

The kernels get the session's data folder (the CiteULike files where they are available
offline, ``HTDVIZ_DATA_MIRROR``); the notebooks that need CiteULike in SMOKE mode are
skipped when it is not.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import notebook_session

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat "
                               "(pip install \"htdviz[test]\")")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_quickstart", "02_teachers", "03_distillation", "04_topology_explorer",
            "05_capacity_gap", "06_paper_analyses", "07_sensitivity")


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


#: The longest code line: the rendered site's code cells hold about 98 characters at every
#: window width (docs/site/htdviz.css), so longer lines would scroll sideways.
CODE_LINE = 96


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_code_lines_fit_the_sites_code_cells(path):
    long = [(i, line) for i, cell in enumerate(_read(path).cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > CODE_LINE]
    assert not long, (f"{path.name}: {len(long)} code lines over {CODE_LINE} characters, the "
                      f"first in cell {long[0][0]}: {long[0][1]!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameters_cell_comes_first_and_is_smoke(path):
    nb = _read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", \
        f"{path.name} must open with a markdown cell"
    intro = nb.cells[0].source
    for word in ('"lesson"', '"smoke"', '"full"', "CPU", "GPU"):
        assert word in intro, f"{path.name}: the first cell must say how long each " \
                              f"setting takes on CPU and GPU (no {word!r} found)"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged 'parameters'"
    assert tagged[0] is code_cells[0], f"{path.name}: the parameters cell must be the " \
                                       f"first code cell"
    assert re.search(r'^SETTING = "lesson"', tagged[0].source, re.MULTILINE), \
        f'{path.name}: the committed parameters cell must set SETTING = "lesson"'


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_top_to_bottom_in_smoke_mode(path, executed_notebook, smoke_project):
    for module in ("nbclient", "ipykernel", "plotly", "ipywidgets", "umap"):
        if importlib.util.find_spec(module) is None:      # present, without importing it
            pytest.skip(f"executing the notebooks needs {module} "
                        f"(pip install \"htdviz[notebooks,test]\")")
    execution = executed_notebook(path.stem)
    failed = [(cell["source"], cell["errors"]) for cell in execution.cells if cell["errors"]]
    assert not failed, f"{path.name} ({execution.how}): cells with error output: {failed}"
    not_run = [cell["source"] for cell in execution.cells if not cell["ran"]]
    assert not not_run, f"{path.name} ({execution.how}): cells that did not run: {not_run}"

    # the runs it trained or reused are finished folders in its SMOKE runs folder
    smoke_runs = (smoke_project / "runs" / "smoke").resolve()
    assert Path(execution.probe["runs_dir"]) == smoke_runs, \
        f"{path.name}: RUNS_DIR is {execution.probe['runs_dir']}, not {smoke_runs}"
    used = [Path(p) for p in execution.probe["run_folders"]]
    assert used, f"{path.name} holds no finished run folder after its last cell"
    elsewhere = [str(p) for p in used if p.parent != smoke_runs]
    assert not elsewhere, f"{path.name} used runs outside {smoke_runs}: {elsewhere}"
    assert not (smoke_project / "notebooks" / "runs").exists(), \
        f"{path.name} wrote runs next to the notebooks instead of to ../runs/smoke"
