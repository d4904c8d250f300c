# Two commands on a fresh machine: `make dev` (run the service) and `make test` (run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_RECEIVER := webhooks/node
NODE_STAMP := $(NODE_RECEIVER)/node_modules/.installed

.PHONY: dev stack test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,stack]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/lunos-events dev

# The production shape on this machine (Debian's postgresql, redis-server and nginx must be installed).
stack: $(STAMP)
	$(BIN)/lunos-events stack $(STACK_ARGS)

# The Node reference webhook receiver's packages (its test is skipped locally without npm).
$(NODE_STAMP): $(NODE_RECEIVER)/package-lock.json
	if command -v npm >/dev/null; then cd $(NODE_RECEIVER) && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; fi

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy lunos_events lunos_client
