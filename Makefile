# The two commands the README gives: `make demo` and `make test`.
SHELL := /bin/bash
# uv, installed through pip on first use if this machine has none.
UV = $(eval UV := $$(shell scripts/ensure-uv))$(UV)

.PHONY: sync torch lint typecheck docs docs-strict unit integration releases test-tools test demo bench bench-quick cluster clean

sync:
	$(UV) sync --frozen --inexact

# torch (CPU) for the multi-node all-reduce test only: not a dependency in uv.lock (it would
# make every install pull ~750 MB). pip's own configuration finds the CPU wheel on machines
# that keep one on disk; `uv sync --inexact` leaves it in place.
TORCH_VERSION ?= 2.13.0
torch: sync
	@.venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" \
	  || python3 -m pip --python .venv/bin/python install "torch==$(TORCH_VERSION)"

lint: sync
	$(UV) run --frozen ruff check src tests docs/_hooks
	$(UV) run --frozen ruff format --check src tests docs/_hooks

# src/slurm (pyproject's [tool.mypy]), then the tests, both --strict. The tests are two runs:
# tests/conftest.py and tests/integration/conftest.py would be one module name, `conftest`.
typecheck: sync
	$(UV) run --frozen mypy
	$(UV) run --frozen mypy tests/conftest.py tests/unit
	$(UV) run --frozen mypy tests/integration

# The documentation site (MkDocs, the docs dependency group) into site/; docs-strict fails
# on any warning: a broken link or anchor, a page left out of the nav, a bad docstring.
MKDOCS = NO_MKDOCS_2_WARNING=1 $(UV) run --frozen --group docs mkdocs build
docs: sync
	$(MKDOCS)

docs-strict: sync
	$(MKDOCS) --strict

unit: sync
	$(UV) run --frozen pytest -m "not integration" tests

integration: torch
	$(UV) run --frozen pytest -m integration tests

# Only the tests on dev clusters of Slurm 24.11 and 26.05 (docs/devcluster.md); make test runs
# them too. $$SLURM_SDK_TEST_RELEASES=24.11 keeps one release.
releases: sync
	$(UV) run --frozen pytest -m release --durations=10 tests

# tmux and chromium, for the dashboard's test (a real terminal) and the report's (a real
# browser): installed with apt when missing and root may; without them those tests skip.
test-tools:
	@command -v tmux >/dev/null && command -v chromium >/dev/null || { \
	  [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends tmux chromium >/dev/null; } || \
	  echo "tmux/chromium missing: the dashboard's and the report's browser tests will skip"

# Line coverage of src/slurm is reported at the end (jobs' runners included), and the 30
# slowest tests, to see where the time goes.
test: lint typecheck docs-strict torch test-tools
	$(UV) run --frozen pytest --cov --cov-report=term --durations=30 tests

cluster: sync
	$(UV) run --frozen slurm devcluster up

demo: cluster
	$(UV) run --frozen python -m slurm.examples.demo

# Its own environment (bench group: submitit, matplotlib), so that a `uv sync` of .venv
# by make test, which drops that group, cannot pull packages from under a running benchmark.
BENCH_ENV ?= $(HOME)/.cache/slurm-sdk/bench-venv
# Byte code is written and used, as on a user's machine (some shells set PYTHONDONTWRITEBYTECODE,
# which would make every job of every contender compile its modules again).
BENCH_RUN = env -u PYTHONDONTWRITEBYTECODE UV_COMPILE_BYTECODE=1 UV_PROJECT_ENVIRONMENT=$(BENCH_ENV)
bench: cluster
	$(BENCH_RUN) $(UV) run --frozen --group bench python -m benchmarks.run

# While working: W1, W2, the batch row and the runner floor, in under 3 minutes.
bench-quick: cluster
	$(BENCH_RUN) $(UV) run --frozen --group bench python -m benchmarks.run \
		--quick --out benchmarks/results/quick
