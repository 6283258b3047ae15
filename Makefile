# Two commands do all set-up on a fresh machine: `make up` and `make test`.
# Nothing but python3 (3.11+) and make is assumed: uv is bootstrapped into .tools/.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: up test test-pauses lint fmt sync bench

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet 'uv>=0.5'

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --locked --all-packages --compile-bytecode
	@# Our own sources too: where PYTHONDONTWRITEBYTECODE is set, nothing is cached on import, and
	@# every service start (each fault test restarts one) paid 10+ s of CPU compiling instead of ~2 s.
	.venv/bin/python -m compileall -q -j 0 libs services tests > /dev/null
	@touch $@

sync: .venv/.synced

up: .venv/.synced
	$(UV) run --no-sync python -m devinfra.stack up

test: .venv/.synced
	$(UV) run --no-sync pytest -q

# The SIGSTOP/SIGCONT fault tests alone, their figures printed (`make test` runs them too).
test-pauses: .venv/.synced
	$(UV) run --no-sync pytest -q -s tests/e2e/test_pause_faults.py tests/e2e/test_pause_campaign_faults.py

lint: .venv/.synced
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy $(foreach p,$(wildcard libs/*/src/* services/*/src/*),-p $(notdir $(p)))

fmt: .venv/.synced
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

bench: .venv/.synced
	$(UV) run --no-sync python bench/agents_roundtrip.py
