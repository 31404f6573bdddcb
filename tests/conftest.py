"""Shared fixtures. No test touches the network: every test runs with
``urllib.request.urlopen`` replaced by one that raises URLError, so the CiteULike loader
falls back to its offline mirror (``HTDVIZ_DATA_MIRROR``); without a mirror, the CiteULike
tests use an already filled ``data/citeulike-t`` or are skipped. Every test gets an empty
``HTDVIZ_DATA_DIR`` of its own, so none writes into the project's ``data/``."""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import notebook_session
from htdviz import data, published

ROOT = Path(__file__).resolve().parent.parent
PROJECT_DATA = ROOT / "data"


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("tests never touch the network")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests train tiny models; with several threads, PyTorch's parallel kernels cost
    more than they save and slow down badly (tens of ms per step) on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Block downloads for the whole session (also inside session-scoped fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(urllib.request, "urlopen", _no_network)
        yield


class CountingURLOpen:
    """Stands in for urllib.request.urlopen: counts calls, always fails like no network."""

    def __init__(self):
        self.urls = []

    def __call__(self, url, *args, **kwargs):
        self.urls.append(url)
        raise urllib.error.URLError("no network in tests")


@pytest.fixture
def urlopen(monkeypatch):
    fake = CountingURLOpen()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return fake


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Point HTDVIZ_DATA_DIR at an empty folder so no test reads or writes data/."""
    monkeypatch.setenv("HTDVIZ_DATA_DIR", str(tmp_path_factory.mktemp("data_dir")))


def citeulike_source() -> tuple[Path | None, str]:
    """Where the CiteULike files can come from offline: (data_dir to load from, why not).

    With HTDVIZ_DATA_MIRROR set, the files are copied from the mirror into a fresh data
    folder (data_dir None: the caller supplies a temporary one). Without it, an already
    filled ``data/citeulike-t`` of the project is used in place.
    """
    if os.environ.get("HTDVIZ_DATA_MIRROR"):
        return None, ""
    if (PROJECT_DATA / "citeulike-t").is_dir():
        return PROJECT_DATA, ""
    return None, ("CiteULike-t is not available offline: set HTDVIZ_DATA_MIRROR to a folder "
                  "holding citeulike-t/ (e.g. ../shared/data) or fill data/citeulike-t")


@pytest.fixture(scope="session")
def citeulike_dir(tmp_path_factory, no_network) -> Path:
    """A data folder holding the six CiteULike-t files, filled once per session."""
    data_dir, why_not = citeulike_source()
    if why_not:
        pytest.skip(why_not)
    if data_dir is None:
        data_dir = tmp_path_factory.mktemp("citeulike_data")
    published.fetch_citeulike(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def citeulike(citeulike_dir) -> data.Dataset:
    """CiteULike-t with the authors' reference split (5,219 users, 25,181 items)."""
    return data.load_citeulike("reference", data_dir=citeulike_dir)


@pytest.fixture(scope="session")
def small_synthetic() -> data.Dataset:
    """A small planted-groups data set (200 users, 300 items, 4 groups)."""
    return data.synthetic(n_users=200, n_items=300, n_groups=4, dim=8, items_per_user=12,
                          seed=0)


@pytest.fixture(scope="session")
def synthetic_dataset() -> data.Dataset:
    """The default synthetic data set (600 users, 1,200 items, 6 groups), for training."""
    return data.synthetic(seed=0)


#: The tiny teacher run of tests/test_experiment.py and tests/test_cli.py.
TINY_TEACHER = dict(dim=16, dataset="synthetic", epochs=1, eval_every=1)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A finished teacher run (BPR-MF, d = 16, 1 epoch on the synthetic data) in a runs
    folder of its own, shared by the tests that train students from it: they put their
    runs beside it, as a user's runs/ holds one teacher and its students."""
    from htdviz import experiment

    return experiment.teacher_run(**TINY_TEACHER, runs_dir=tmp_path_factory.mktemp("runs"),
                                  progress=False)


#: The tiny study of tests/test_study.py: its runs' options, and a grid of four runs.
TINY = dict(dataset="synthetic", teacher_dim=16, teacher_epochs=2, epochs=2, eval_every=1)
GRID = {"method": ["student", "htd"], "dim": [4, 8]}


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The tiny grid studied one run after another in this process: (runs folder, table).
    tests/test_study.py compares other executors with it; the study and sweep commands
    (tests/test_cli.py, tests/test_experiment.py) reuse its runs."""
    from htdviz import study

    runs_dir = tmp_path_factory.mktemp("study_runs")
    return runs_dir, study.study(GRID, runs_dir=runs_dir, progress=False, **TINY)


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory) -> Path:
    """One temporary project for every notebook execution of the session: ``<root>/notebooks``
    (a copy of notebooks/) is where the notebooks run, so their SMOKE runs
    (``../runs/smoke``) and projection cache land in ``<root>``, never in the project."""
    root = tmp_path_factory.mktemp("smoke_project")
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for path in (root / "notebooks").glob("*.ipynb"):
        notebook_session.smoke_copy(path, path)           # SETTING = "smoke"
    return root


@pytest.fixture(scope="session")
def browser():
    """Chromium driven by Playwright, for the session (tests/notebook_session.py)."""
    why_not = notebook_session.browser_missing()
    if why_not:
        pytest.skip(why_not)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=notebook_session.chromium(),
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def executed_notebook(request, smoke_project):
    """name -> notebook_session.Execution: each notebook executed once for the session.

    In JupyterLab in Chromium (Run All) when the session runs browser tests and can, else
    with nbclient; tests/test_notebooks.py checks the kernel's side of that execution and
    tests/test_browser.py the page's (notebook_session.py says why one execution serves
    both). The notebooks that read CiteULike in SMOKE mode are skipped when it is not
    available offline. A failed execution is not repeated: later calls raise its error.
    """
    try:
        data_dir, has_citeulike = request.getfixturevalue("citeulike_dir"), True
    except pytest.skip.Exception:
        data_dir, has_citeulike = smoke_project / "data", False
    env = notebook_session.kernel_env(smoke_project, data_dir)
    in_browser = not notebook_session.browser_missing() and \
        any(item.get_closest_marker("browser") for item in request.session.items)
    browser = request.getfixturevalue("browser") if in_browser else None
    done: dict[str, notebook_session.Execution | BaseException] = {}
    lab = []                                        # started at the first notebook

    def execute(name: str) -> notebook_session.Execution:
        if name in notebook_session.SMOKE_NEEDS_CITEULIKE and not has_citeulike:
            pytest.skip(f"{name} needs CiteULike-t offline (HTDVIZ_DATA_MIRROR)")
        if name not in done:
            try:
                if in_browser:
                    if not lab:
                        lab.append(notebook_session.JupyterLab(smoke_project, env).__enter__())
                    done[name] = notebook_session.execute_in_browser(lab[0], browser, name)
                else:
                    done[name] = notebook_session.execute_with_nbclient(smoke_project, name,
                                                                        env)
            except Exception as error:          # a skip or a failure of the test is not one
                done[name] = error
        if isinstance(done[name], BaseException):
            raise done[name]
        return done[name]

    yield execute
    for execution in done.values():
        if isinstance(execution, notebook_session.Execution) and execution.notebook:
            execution.notebook.close()
    if lab:
        lab[0].__exit__()


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory):
    """The demo pipeline on the synthetic data set, a few epochs, built once for the
    session (tests/test_report.py reads its content, tests/test_browser.py its page).

    Returns (path of the HTML page, the sections it drew).
    """
    from htdviz import experiment, report

    tmp = tmp_path_factory.mktemp("demo")
    drawn = {}
    original = report._write_html

    def keep(path, settings, sections):
        drawn["sections"] = sections
        return original(path, settings, sections)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "_write_html", keep)
        path = experiment.run_demo(student_dim=8, epochs=4, teacher_epochs=6, dataset="synthetic",
                               runs_dir=tmp / "runs", report=tmp / "report.html",
                               projection="pca", progress=False, max_heatmap=200)
    return path, drawn["sections"]


#: Under pytest-xdist (``make test``), the tests that share a session fixture slow to build
#: run in one worker: every reader of the notebooks' one execution (``executed_notebook``),
#: every reader of the demo report (``demo_report``). Keys are test files, or one test.
SHARED_FIXTURE_GROUPS = {
    "tests/test_browser.py::test_report_reads_in_the_browser": "demo_report",
    "tests/test_report.py": "demo_report",
    "tests/test_browser.py": "executed_notebook",
    "tests/test_notebooks.py": "executed_notebook",
    "tests/test_site.py": "executed_notebook",
}


def pytest_xdist_make_scheduler(config, log):
    """Send whole work units to the workers: the groups of ``SHARED_FIXTURE_GROUPS``, and
    every other test file whole (its module fixtures built once). (xdist's own
    ``--dist loadgroup`` reads ``xdist_group`` marks but cannot regroup tests under
    pytest 9, whose node ids it can no longer rewrite.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            test = nodeid.split("[")[0]
            file = nodeid.split("::")[0]
            return SHARED_FIXTURE_GROUPS.get(test) or SHARED_FIXTURE_GROUPS.get(file) or file

    return SharedFixtureScheduling(config, log)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``), so a fixture can tell
    in its teardown that the test failed (tests/test_browser.py takes a screenshot)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
