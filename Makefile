# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lab bench lint clean

# --no-compile: Python compiles what it imports on first use; byte-compiling every installed
# file up front (jupyterlab, locust, dask...) cost ~35 s of a fresh `make test`
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m capsim demo
	$(PY) scripts/render_notebooks.py

test: $(STAMP)
	$(PY) -m ruff check capsim tests bench notebooks scripts
	$(PY) -m pytest -n 2 --dist loadgroup

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) reports results .pytest_cache
