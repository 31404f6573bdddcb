# htdviz: two commands do everything.
#   make demo   set up, train + distil on CiteULike, write the HTML report under reports/
#   make test   set up, run the test suite (no network, no GPU), browser tests included
#   make docs   the tutorial site under build/site/ (the notebooks executed as they open)
#   make check  the development loop: the suite without the notebooks, the browser and Ray
#   make test-browser   only the browser tests (JupyterLab and the report in Chromium)
#   make test-cluster   only the Ray executor's test (a local Ray instance)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HTDVIZ_DATA_MIRROR ?= $(abspath ../shared/data)

.PHONY: setup chromium demo docs test check test-browser test-cluster lab bench clean

$(VENV)/.installed: pyproject.toml ci/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r ci/requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Ray, for the study executor's test only (the demo does not need it)
$(VENV)/.cluster: $(VENV)/.installed ci/requirements-cluster.txt
	$(PY) -m pip install -q -r ci/requirements-cluster.txt
	touch $@

demo: setup
	$(PY) -m htdviz demo

# README, docs/*.md and every notebook executed with its figures, as static pages
# (docs/site/build.py; `make test` builds it from the SMOKE executions and reads it in Chromium)
docs: setup
	$(PY) docs/site/build.py

# The browser tests drive the system Chromium (Playwright's own browser download is not
# used). Installed with apt-get where it is missing; elsewhere they are skipped.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; \
	then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the browser tests (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "no chromium and no apt-get: the browser tests will be skipped"; \
	fi

# Two pytest workers (pytest-xdist) or one per CPU: while one drives the notebooks in
# JupyterLab (their kernel computes, the worker waits), the other runs the rest. Tests that
# share a slow session fixture stay in one worker (tests/conftest.py,
# pytest_xdist_make_scheduler).
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS)

test: setup $(VENV)/.cluster chromium
	$(PY) -m pytest -q $(XDIST)

# Leaves out what needs JupyterLab, Chromium or Ray: the notebooks' execution, the browser
# tests and the Ray executor's test (make test runs them all).
check: setup
	$(PY) -m pytest -q $(XDIST) -m "not browser and not notebooks and not cluster"

test-browser: setup chromium
	$(PY) -m pytest -q -m browser tests/test_browser.py

# `make test` runs this test too; here it runs alone.
test-cluster: setup $(VENV)/.cluster
	$(PY) -m pytest -q -m cluster tests/test_study.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs reports build
