# liteship — the two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast check lint typecheck install clean os-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: convert the bundled example with every recipe and print the comparison
demo: $(STAMP)
	$(BIN)/python examples/digits/run.py

## os-deps: OS packages that some tests need (PostgreSQL, Chromium); a no-op when present or not root
os-deps:
	@scripts/os-deps.sh

## test: lint, then the whole suite
test: $(STAMP) os-deps lint typecheck
	$(BIN)/python -m pytest -q --timeout=900

## test-fast: the inner loop: the unit tests without the slow ones, stopping at the first failure
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x tests/unit -m 'not slow' --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .mypy_cache
