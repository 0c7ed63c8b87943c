# The two commands the README gives: `make demo` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(HOME)/.local/bin/uv
endif

.PHONY: uv sync lint typecheck unit integration test demo bench cluster clean

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv

sync: uv
	$(UV) sync --frozen

lint: sync
	$(UV) run --frozen ruff check src tests
	$(UV) run --frozen ruff format --check src tests

typecheck: sync
	$(UV) run --frozen mypy

unit: sync
	$(UV) run --frozen pytest -m "not integration" tests

integration: sync
	$(UV) run --frozen pytest -m integration tests

test: lint typecheck
	$(UV) run --frozen pytest tests

cluster: sync
	$(UV) run --frozen slurm devcluster up

demo: cluster
	$(UV) run --frozen python -m slurm.examples.demo

bench: cluster
	$(UV) run --frozen python -m benchmarks.run
