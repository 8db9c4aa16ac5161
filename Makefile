# clipgeo — `make demo` runs the main job on the built-in default, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install test test-fast demo figures bench lint clean

help:
	@echo "make demo   - the main job on built-in data (writes data/demo/, prints the report path)"
	@echo "make test   - create $(VENV), install clipgeo with its test extra, run the test suite"
	@echo "make figures - regenerate figures/ from the demo"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) -m clipgeo demo --out data/demo

figures: $(STAMP)
	$(PY) -m clipgeo demo --out data/demo --figures-dir figures

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check clipgeo tests benchmarks

clean:
	rm -rf $(VENV) data/demo .pytest_cache
