# Podium build tooling. Everything is created on demand from a fresh clone:
#   .tools/  a bootstrap venv holding only uv (pinned below)
#   .venv/   the uv workspace venv (podium + podium-client editable, all dependency groups)
#   node_modules/  buf and protoc-gen-es, from package-lock.json
#   clients/node/node_modules/, clients/node/dist/  the Node worker library, built by `make node`
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
# Directories type-checked by mypy (only those that exist yet), plugin distributions included.
MYPY_PATHS = $(wildcard server client/podium/client client/podium/cli client/podium/worker tests bench scripts plugins/*/src)
# Each plugin's tests in a mypy run of their own, as in the plugin's own repository would be:
# their modules (conftest, test_provider) are top-level names and would clash with each other.
PLUGIN_TESTS = $(wildcard plugins/*/tests)

export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: install protos node lint typecheck imports check test demo demo-governance bench fmt clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV_STAMP): pyproject.toml client/pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --python "$(PYTHON)"
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

install: $(VENV_STAMP) $(BUF) $(NODE_STAMP)

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

check: lint typecheck imports node

test: check
	$(PY) -m pytest -q

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
	rm -rf $(VENV) $(TOOLS) node_modules $(NODE_DIR)/node_modules $(NODE_DIR)/dist .mypy_cache .ruff_cache .pytest_cache .hypothesis dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
