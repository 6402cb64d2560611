# Tollgate: `make up` runs everything, `make test` checks everything.
# Every target installs what it needs first; `make install` is idempotent.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NPM_CONFIG_AUDIT := false
export NPM_CONFIG_FUND := false

.PHONY: install system-packages up test lint unit bench clean

install: $(STAMP) system-packages

$(STAMP): requirements/lock.txt pyproject.toml package.json package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	npm ci --silent
	@touch $@

# Debian's Chromium drives the console's browser tests; installed only when missing and
# only where we may (root on Debian). Elsewhere those tests are skipped with a reason.
system-packages:
	@if ! dpkg -s chromium fonts-wqy-microhei >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	fi

up: install
	$(BIN)/tollgate up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: install
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
