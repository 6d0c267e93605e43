# Kameng — two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
BENCH ?=

.PHONY: run test bench venv clean-dev

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## run: embedded PostgreSQL + Redis, migrate, demo shop, web + worker + beat
run: $(STAMP)
	$(BIN)/kameng up

## test: the whole suite against a throw-away embedded PostgreSQL + Redis
test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

## bench: every benchmark in tests/bench (BENCH=name for one)
bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH)

## clean-dev: stop and delete the local development data in .kameng/
clean-dev: $(STAMP)
	$(BIN)/kameng devstack stop || true
	rm -rf .kameng
