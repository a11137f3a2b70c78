# Two commands a user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean test-phoenix bench-otel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fleet demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/append.py

# Arize Phoenix (a real tracing back end) is large: its own venv, outside `make test`'s install.
PHOENIX_VENV := .venv-phoenix
$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet 'arize-phoenix>=12'
	touch $@

test-phoenix: $(STAMP) $(PHOENIX_VENV)/.installed
	FLEET_PHOENIX=$(PHOENIX_VENV)/bin/phoenix $(BIN)/python -m pytest -q -m phoenix tests/otel

bench-otel: $(STAMP)
	$(BIN)/python bench/otel.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .fleet .pytest_cache
