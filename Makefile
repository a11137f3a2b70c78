# Two commands a user needs: `make demo` and `make test`. Both set up a venv first.
#   make test PYTHON=python3.13 VENV=.venv-3.13 PYTEST_ARGS="tests/events"
# runs (part of) the suite on another Python; .ci/run does so for the newest one.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# The suite waits on processes, sockets and the log far more than it computes: two
# workers (pytest-xdist, a test file each at a time) take about two thirds of its time.
# PYTEST_WORKERS=0 runs it in one process (for -x, --pdb, or reading the output in order).
PYTEST_WORKERS ?= 2
BIN := $(VENV)/bin
# Each install is stamped with the interpreter's version, so a venv made by
# another Python is rebuilt instead of silently reused.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
DEMO_STAMP := $(VENV)/.demo-$(PYVER)
TEST_STAMP := $(VENV)/.test-$(PYVER)

.PHONY: demo test bench install clean test-phoenix bench-otel vendor-docs vendor-dagre claude-code

$(VENV)/.venv-$(PYVER):
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $@

# The demo needs the package only; the tests add their tools.
$(DEMO_STAMP): pyproject.toml | $(VENV)/.venv-$(PYVER)
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(VENV)/.venv-$(PYVER)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@ $(DEMO_STAMP)

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/fleet demo

# The PostgreSQL tests need a server on 127.0.0.1:5432: started if the machine has one
# (.ci/postgres); without it they skip, saying why.
test: $(TEST_STAMP) claude-code
	@.ci/postgres >/dev/null 2>&1 || echo "make: no PostgreSQL on 127.0.0.1:5432: its tests will skip"
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The real Claude Code, pinned, for the end-to-end tests (tests/claude_code/): npm installs the
# package and its native binary into .claude-code/ (ignored by git, never committed). Without
# npm the install is skipped and those tests skip, saying why; .ci/run sets
# CLAUDE_CODE_REQUIRED=1, so there a failed install fails the build.
CLAUDE_CODE_VERSION := 2.1.332
CLAUDE_CODE_STAMP := .claude-code/.installed-$(CLAUDE_CODE_VERSION)

claude-code: $(CLAUDE_CODE_STAMP)

$(CLAUDE_CODE_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .claude-code --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) \
	  && .claude-code/node_modules/.bin/claude --version >/dev/null && touch $@ \
	  || { echo "make: Claude Code $(CLAUDE_CODE_VERSION) did not install: its tests will skip"; \
	       [ -z "$(CLAUDE_CODE_REQUIRED)" ]; }; \
	else \
	  echo "make: npm not found: the Claude Code tests (tests/claude_code/) will skip"; \
	  [ -z "$(CLAUDE_CODE_REQUIRED)" ]; \
	fi

bench: $(TEST_STAMP)
	$(BIN)/python bench/append.py

# Arize Phoenix (a real tracing back end) is large: its own venv, outside `make test`'s install.
PHOENIX_VENV := .venv-phoenix
$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet 'arize-phoenix>=12'
	touch $@

test-phoenix: $(TEST_STAMP) $(PHOENIX_VENV)/.installed
	FLEET_PHOENIX=$(PHOENIX_VENV)/bin/phoenix $(BIN)/python -m pytest -q -m phoenix tests/otel

bench-otel: $(TEST_STAMP)
	$(BIN)/python bench/otel.py

# The /docs page's renderer, from the npm registry (see api/static/docs/README.md).
REDOC_VERSION ?= 3.0.1
vendor-docs:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent redoc@$(REDOC_VERSION) >/dev/null && tar xzf redoc-$(REDOC_VERSION).tgz) && \
	cp "$$tmp/package/bundles/redoc.standalone.js" api/static/docs/redoc.standalone.js && \
	cp "$$tmp/package/LICENSE" api/static/docs/redoc-LICENSE.md && \
	sha256sum "$$tmp/redoc-$(REDOC_VERSION).tgz" api/static/docs/redoc.standalone.js

# The dashboard graph's layout engine, from the npm registry (see api/static/vendor/README.md).
# Its source-map comment is dropped: the page must not ask the server for a file it lacks.
DAGRE_VERSION ?= 3.1.3
vendor-dagre:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent @dagrejs/dagre@$(DAGRE_VERSION) >/dev/null && tar xzf dagrejs-dagre-$(DAGRE_VERSION).tgz) && \
	grep -v '^//# sourceMappingURL=' "$$tmp/package/dist/dagre.min.js" > api/static/vendor/dagre.min.js && \
	cp "$$tmp/package/LICENSE" api/static/vendor/dagre-LICENSE.md && \
	sha256sum "$$tmp/dagrejs-dagre-$(DAGRE_VERSION).tgz" api/static/vendor/dagre.min.js

clean:
	rm -rf .venv .venv-* .fleet .pytest_cache .claude-code
