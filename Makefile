# One command each: `make synth` and `make test` set everything up on a fresh machine that
# has Python 3.11, Node.js and npm, then do their job. Nothing needs AWS credentials.
SHELL := /bin/bash
.DEFAULT_GOAL := synth

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
export PIPENV_NOSPIN := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CHECKPOINT_DISABLE := 1
export PYTHONDONTWRITEBYTECODE := 1

PYTHON ?= python3.11
PIPENV_VERSION := 2026.10.3
TOOLS := .tools
PIPENV := $(TOOLS)/pipenv/bin/pipenv
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: setup synth test lint format package bench clean

$(PIPENV):
	$(PYTHON) -m venv $(TOOLS)/pipenv
	$(TOOLS)/pipenv/bin/pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)

$(VENV)/.synced: Pipfile.lock | $(PIPENV)
	$(PIPENV) sync --dev
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.synced node_modules/.installed

synth: setup
	npx cdktf synth

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q

package: setup
	$(PY) -m compute.packaging --out dist

clean:
	rm -rf cdktf.out build dist .pytest_cache

bench: setup
	$(PY) bench/run.py
