# clipgeo — `make demo` runs the main job on the built-in default, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install test test-fast demo figures bench lint clean chromium

help:
	@echo "make demo   - the main job on built-in data (writes data/demo/, prints the report path)"
	@echo "make test   - create $(VENV), install clipgeo with its test extra, run the test suite"
	@echo "make figures - regenerate figures/ from the demo"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make chromium - install headless Chromium for the report.html browser tests (apt; skipped if unavailable)"

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

# Headless Chromium for tests/test_report_html.py: from the OS packages, only when missing; never fails
# (without it the browser tests skip).
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "note: no apt-get; the browser tests will be skipped"; \
	else SUDO=""; if [ "$$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium ) >/dev/null 2>&1 \
	    && echo "installed chromium for the browser tests" \
	    || echo "note: could not install chromium; the browser tests will be skipped"; \
	fi

clean:
	rm -rf $(VENV) data/demo .pytest_cache
