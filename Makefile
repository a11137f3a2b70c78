# Two commands a user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean vendor-docs

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

# The /docs page's renderer, from the npm registry (see api/static/docs/README.md).
REDOC_VERSION ?= 3.0.1
vendor-docs:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent redoc@$(REDOC_VERSION) >/dev/null && tar xzf redoc-$(REDOC_VERSION).tgz) && \
	cp "$$tmp/package/bundles/redoc.standalone.js" api/static/docs/redoc.standalone.js && \
	cp "$$tmp/package/LICENSE" api/static/docs/redoc-LICENSE.md && \
	sha256sum "$$tmp/redoc-$(REDOC_VERSION).tgz" api/static/docs/redoc.standalone.js

clean:
	rm -rf $(VENV) .fleet .pytest_cache
