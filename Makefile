# htdviz: two commands do everything.
#   make demo   set up, train + distil on CiteULike, write the HTML report under reports/
#   make test   set up, run the test suite (no network, no GPU)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HTDVIZ_DATA_MIRROR ?= $(abspath ../shared/data)

.PHONY: setup demo test lab bench clean

$(VENV)/.installed: pyproject.toml ci/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r ci/requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m htdviz demo

test: setup
	$(PY) -m pytest -q

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs reports
