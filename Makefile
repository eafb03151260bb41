# Podium build tooling. Everything is created on demand from a fresh clone:
#   .tools/  a bootstrap venv holding only uv (pinned below)
#   .venv/   the uv workspace venv (podium + podium-client editable, all dependency groups)
#   node_modules/  buf and protoc-gen-es, from package-lock.json
#   clients/node/node_modules/, clients/node/dist/  the Node worker library, built by `make node`
#   console/node_modules/, server/podium/server/http/static/  the web console, built by `make console`
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.uv-synced
BUF := node_modules/.bin/buf
NODE_DIR := clients/node
NODE_STAMP := $(NODE_DIR)/node_modules/.npm-installed
CONSOLE_DIR := console
CONSOLE_STAMP := $(CONSOLE_DIR)/node_modules/.npm-installed
# The built console is package data of the podium wheel (not committed): served at `/` by
# `podium serve --http-address`.
CONSOLE_BUILT := server/podium/server/http/static/index.html
CONSOLE_SOURCES = $(shell find $(CONSOLE_DIR)/src -type f) $(addprefix $(CONSOLE_DIR)/,index.html vite.config.ts tsconfig.json)
# The browser tests drive Debian's Chromium (Playwright never downloads a browser of its own).
CHROMIUM := /usr/bin/chromium
# Directories type-checked by mypy (only those that exist yet), plugin distributions included.
MYPY_PATHS = $(wildcard server client/podium/client client/podium/cli client/podium/worker tests bench scripts plugins/*/src)
# Each plugin's tests in a mypy run of their own, as in the plugin's own repository would be:
# their modules (conftest, test_provider) are top-level names and would clash with each other.
PLUGIN_TESTS = $(wildcard plugins/*/tests)

export UV_PYTHON_DOWNLOADS := never
# The browser tests use Debian's Chromium (target `browser`), never a browser Playwright fetches.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
export UV_NO_PROGRESS := 1

.PHONY: bytecode install protos node console browser lint typecheck imports check test demo demo-governance bench fmt clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: every dependency's .pyc is written now, as pip install does, not at
# each process's imports (which never write them where PYTHONDONTWRITEBYTECODE is set:
# `podium serve` then compiled about 0.5 s of source at every start).
$(VENV_STAMP): pyproject.toml client/pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode --python "$(PYTHON)"
	touch $@

# Not `npm ci`: the registry reachable here lacks buf's darwin/win32/armv7 optional packages, so
# the lock holds only the linux ones and `npm ci` rejects it as out of sync. `npm install --no-save`
# installs exactly the locked versions (with their integrity hashes) and never rewrites the lock.
$(BUF): package.json package-lock.json
	npm install --no-save --no-audit --no-fund
	touch $@

# The Node worker library has its own lockfile (no platform-specific packages: `npm ci` holds).
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

$(CONSOLE_STAMP): $(CONSOLE_DIR)/package.json $(CONSOLE_DIR)/package-lock.json
	cd $(CONSOLE_DIR) && npm ci --no-audit --no-fund
	touch $@

# Type-checks (tsc strict) and bundles the console (Vite) into the Python package.
$(CONSOLE_BUILT): $(CONSOLE_STAMP) $(CONSOLE_SOURCES)
	cd $(CONSOLE_DIR) && npm run --silent build

console: $(CONSOLE_BUILT)

# Chromium from the distribution when it is missing (as root), else a clear error: the browser
# tests (tests/browser/) are part of `make test` and never skipped.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "error: the browser tests need Chromium at $(CHROMIUM): apt-get install chromium (as root)" >&2; \
	    exit 1; \
	  fi; \
	fi

install: $(VENV_STAMP) $(BUF) $(NODE_STAMP) $(CONSOLE_BUILT) bytecode

# The project's own modules, compiled likewise (only what changed since: about 0.1 s).
OWN_SOURCES := server client plugins bench scripts

bytecode: $(VENV_STAMP)
	$(PY) -m compileall -q -j 0 $(OWN_SOURCES) >/dev/null

protos: $(VENV_STAMP) $(BUF)
	$(PY) scripts/gen_protos.py
	$(PY) scripts/gen_workflow_schema.py

# Type-checks (tsc strict) and builds clients/node into clients/node/dist, which the Node
# worker tests (tests/e2e/test_node_worker.py) run.
node: $(NODE_STAMP)
	cd $(NODE_DIR) && npm run --silent build

lint: $(VENV_STAMP) $(BUF)
	$(BUF) lint
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

typecheck: $(VENV_STAMP)
	$(PY) -m mypy $(MYPY_PATHS)
	$(foreach tests,$(PLUGIN_TESTS),$(PY) -m mypy $(tests);)

# The layers and one-way dependencies of server/podium (contracts in pyproject.toml).
imports: $(VENV_STAMP)
	$(VENV)/bin/lint-imports --no-cache

check: lint typecheck imports node console

test: check browser bytecode
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: install
	$(PY) scripts/demo.py

demo-governance: install
	$(PY) scripts/demo_governance.py

bench: install
	$(PY) bench/run.py

fmt: $(VENV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) node_modules $(NODE_DIR)/node_modules $(NODE_DIR)/dist $(CONSOLE_DIR)/node_modules server/podium/server/http/static test-artifacts .mypy_cache .ruff_cache .pytest_cache .hypothesis dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
