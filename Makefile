# trackpipe: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out
PYTEST_ARGS ?= -n 2

.PHONY: help install run test lint bench clean system-deps engines test-engines flink-up flink-down

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv with trackpipe and its pinned dependencies (idempotent)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

system-deps: ## Install the Debian packages the tests use (PostgreSQL, GnuPG, Chromium) when missing
	@bash scripts/ensure-system-deps.sh

run: install ## Run the main job on the sample logs in samples/ (DirectRunner), load DuckDB, write the report
	@bash scripts/make-run.sh "$(OUT)"

test: install system-deps test-engines ## Install everything, start the services the tests use, run the tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

engines: install ## Fetch Flink 1.19, Beam's Flink job server and Prism into .cache/engines (once; quick when cached)
	@bash scripts/engines.sh fetch

test-engines: engines
	@bash scripts/engines.sh netns-tools

flink-up: engines ## Start a local Flink cluster on 127.0.0.1 (REST/UI :8081, 2 slots; idempotent)
	@bash scripts/engines.sh flink-up

flink-down: ## Stop the local Flink cluster (idempotent)
	@bash scripts/engines.sh flink-down

lint: install ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install ## Benchmark against DuckDB (and on Flink) on generated 1M/2M-event days; writes docs/benchmarks.md
	@bash scripts/engines.sh fetch || echo "bench: Flink could not be fetched (see above); the Flink row is left out"
	$(BIN)/python -m trackpipe.bench

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf $(OUT) .bench test-artifacts .pytest_cache .ruff_cache build dist *.egg-info
