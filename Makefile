# The one entry point, the same locally and in CI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test-deps demo test lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m ironroot.demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy


# Debian packages the tests need (SoftHSM2 for the PKCS#11 backend), installed when missing.
test-deps:
	@if [ -x scripts/install-test-deps.sh ]; then scripts/install-test-deps.sh; fi

test: test-deps lint typecheck
	$(BIN)/python -m pytest -q

# Each benchmark prints its figures as ratios to a baseline measured in the same run.
BENCHES := bench/registration.py $(filter-out bench/registration.py bench/bench_append.py,$(wildcard bench/*.py))

bench: install
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
