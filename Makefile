# The one entry point, the same locally and in CI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test-deps demo test lint typecheck bench fuzz screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m ironroot.demo

lint: install
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy

typecheck: install
	$(BIN)/mypy


# Debian packages the tests need (SoftHSM2 for the PKCS#11 backend, chromium for the dashboard's
# browser tests), installed when missing.
test-deps:
	@if [ -x scripts/install-test-deps.sh ]; then scripts/install-test-deps.sh; fi

# The whole suite in parallel (pytest-xdist), with line and branch coverage of src/ironroot;
# the run fails below COVERAGE_FLOOR percent (88.3% line+branch measured on a fresh clone, 2026-12-04).
# The report is coverage's own, after the run: pytest-cov analyses every source file twice (once
# for the total it checks against the floor, once for the table), 5-6 s each on one core while
# the other idles; `coverage report` does it once, from the data the run saved (.coverage).
# Bytecode is cached even where the environment sets PYTHONDONTWRITEBYTECODE: without it every
# subprocess a test starts (`python -m ironroot ...`, the kill -9 tests) compiles each module it
# imports from source again.
#
# Half again as many workers as cores: the integration tests spend a third of their time waiting
# (servers starting and stopping, subprocesses, leases, timeouts), and a third worker on two
# cores fills that wait. Work stealing hands the tests out: integration tests come first (they
# take seconds each), and a worker that runs dry takes half of the busiest one's queue, so
# none idles at the end while another still has a long test ahead. The run ends with its 20
# slowest tests (`--durations`): the suite must stay under 10 minutes on 2 cores.
TEST_WORKERS   ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n + n / 2 )))
TEST_DIST      ?= worksteal
FAST_WORKERS   ?= auto
COVERAGE_FLOOR ?= 86

test: test-deps lint typecheck
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist $(TEST_DIST) --durations=20 \
		--cov=ironroot --cov-branch --cov-report=
	$(BIN)/python -m coverage report --skip-covered --fail-under=$(COVERAGE_FLOOR)

# The unit tier while you edit, one worker a core (unit tests do not wait): no servers,
# subprocesses, browsers or whole-system worlds (tests/conftest.py places modules in tiers by
# what they start), property tests on a fifth of their examples (tests/hypothesis_budget.py),
# and bytecode (assertion-rewritten tests included) cached between runs even where the
# environment sets PYTHONDONTWRITEBYTECODE.
test-fast: install
	PYTHONDONTWRITEBYTECODE= IRONROOT_TEST_TIER=fast \
		$(BIN)/python -m pytest -q -n $(FAST_WORKERS) --dist $(TEST_DIST) -m "not integration and not slow"

# Each benchmark prints its figures as ratios to a baseline measured in the same run.
BENCHES := bench/registration.py $(filter-out bench/registration.py bench/bench_append.py bench/_worlds.py,$(wildcard bench/*.py))

# Every benchmark runs even when one misses its target; the ones that did are named at the end.
bench: install
	@failed=""; for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "below target or failed:$$failed"; exit 1; fi

# Coverage-guided fuzzing of every parser (atheris, the `fuzz` extra): FUZZ_RUNS inputs per
# target, corpus and crashes under FUZZ_DIR (outside the checkout). docs/fuzzing.md explains.
FUZZ_RUNS    ?= 100000
FUZZ_DIR     ?= /tmp/ironroot-fuzz
FUZZ_TARGETS ?= all

fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	@mkdir -p $(FUZZ_DIR)/crashes
	@set -e; targets="$(FUZZ_TARGETS)"; \
	if [ "$$targets" = all ]; then targets=$$($(BIN)/python tests/fuzz/atheris_main.py --list); fi; \
	failed=""; for t in $$targets; do \
		echo "== $$t"; \
		if FUZZ_DIR=$(FUZZ_DIR) $(BIN)/python tests/fuzz/atheris_main.py $$t -runs=$(FUZZ_RUNS) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/crashes/$$t- >$(FUZZ_DIR)/$$t.log 2>&1; \
		then :; else failed="$$failed $$t"; fi; \
		grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+== ERROR|Traceback|[A-Za-z]+Error)' \
			$(FUZZ_DIR)/$$t.log | head -n 8 || true; \
	done; \
	if [ -n "$$failed" ]; then echo "crashes in:$$failed (inputs in $(FUZZ_DIR)/crashes)"; exit 1; fi

# PNGs of the dashboard's main pages (docs/img/), from the world its tests build.
screenshots: install test-deps
	$(BIN)/python scripts/screenshots.py docs/img

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
