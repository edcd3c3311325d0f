# Two commands: `make demo` and `make test`. Both install what they need first (scripts/setup).
SHELL := /bin/bash
PY := .venv/bin/python
ARGS ?=

.PHONY: setup test demo lint typecheck bench clean install-man

setup:
	@bash scripts/setup

test: setup
	@bash scripts/test

demo: setup
	@$(PY) -m appliance.cli demo $(ARGS)

lint: setup
	@.venv/bin/ruff check appliance rpki tests bench

typecheck: setup
	@.venv/bin/mypy appliance rpki bench scripts

# Man pages savd(8), savd-enforcer(8), savd.toml(5): rebuilt from docs/man/*.md and the parsers, then copied.
MANDIR ?= /usr/local/share/man
install-man: setup
	@$(PY) scripts/build_man.py --install $(DESTDIR)$(MANDIR)

bench: setup
	@bash bench/run

clean:
	rm -rf .venv build *.egg-info .mypy_cache .ruff_cache .pytest_cache
