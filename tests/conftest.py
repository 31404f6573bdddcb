"""Shared fixtures. No test touches the network: every test runs with
``urllib.request.urlopen`` replaced by one that raises URLError, so the CiteULike loader
falls back to its offline mirror (``HTDVIZ_DATA_MIRROR``); without a mirror, the CiteULike
tests use an already filled ``data/citeulike-t`` or are skipped. Every test gets an empty
``HTDVIZ_DATA_DIR`` of its own, so none writes into the project's ``data/``."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from htdviz import data

PROJECT_DATA = Path(__file__).resolve().parent.parent / "data"


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
    data.fetch_citeulike(data_dir)
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


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory) -> Path:
    """One temporary project for every notebook execution of the session: ``<root>/notebooks``
    is where the notebooks run, so their SMOKE runs (``../runs/smoke``) and projection cache
    land in ``<root>``, never in the project. tests/test_browser.py (JupyterLab) and
    tests/test_notebooks.py (nbclient) share it, as a user's notebooks share runs/: the
    first to run a notebook trains its runs, the other reuses them."""
    root = tmp_path_factory.mktemp("smoke_project")
    (root / "notebooks").mkdir()
    return root


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``), so a fixture can tell
    in its teardown that the test failed (tests/test_browser.py takes a screenshot)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
