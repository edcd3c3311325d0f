# Two commands: `make demo` and `make test`. Both install what they need first (scripts/setup).
SHELL := /bin/bash
PY := .venv/bin/python
ARGS ?=

.PHONY: setup test demo lint typecheck bench clean

setup:
	@bash scripts/setup

test: setup
	@bash scripts/test

demo: setup
	@$(PY) -m appliance.cli demo $(ARGS)

lint: setup
	@.venv/bin/ruff check appliance rpki tests bench

typecheck: setup
	@.venv/bin/mypy appliance/engine appliance/flowspec rpki

bench: setup
	@bash bench/run

clean:
	rm -rf .venv build *.egg-info .mypy_cache .ruff_cache .pytest_cache
