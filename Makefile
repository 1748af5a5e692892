# Every set-up step lives here: a fresh clone needs only `make run` and `make test` (`make help` lists all).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements_test.txt | cksum | cut -d' ' -f1)
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
# Where `make bench` and `make soak` write their figures; the docs include these files verbatim.
RESULTS := docs/results

.PHONY: help run test check build validate e2e invoke bench soak capacity clean venv lint typecheck unit

# `make help` prints every target that has a `## ` comment, in this order.
help: ## list the targets
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9-]*:.*## / {printf "make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Recipes that print what the user asked for start with @: `make run ARGS=--json | python3 -m json.tool` works.
run: $(STAMP) ## the consumer end to end on an embedded AWS emulator (ARGS="--help" for options)
	@$(BIN)/python -m local run $(ARGS)

test: lint typecheck validate unit e2e ## everything CI runs: ruff, mypy, template checks, all tests, coverage gate, make e2e

check: lint typecheck ## the edit-test loop: ruff, mypy and the tests not marked slow (no template checks)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check src tests local bench infra
	$(BIN)/ruff format --check src tests local bench infra

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy src tests local bench

unit: $(STAMP) ## every pytest test, slow tiers included, with the 90 % coverage gate
	$(BIN)/pytest --cov --cov-report=term-missing

# A benchmark, not a test: the consumer against a sequential reference design (docs/bench.md).
bench: $(STAMP) ## benchmark against the sequential design; writes docs/results/bench.md and cost.md
	@$(BIN)/python -m bench --results $(RESULTS) $(ARGS)

# 20,000+ messages through the poller and the handler with faults injected; prints the invariants.
# ARGS="--pollers 4": four poller processes at once, the result in docs/results/soak-pollers-4.md.
soak: $(STAMP) ## 20,000 messages with wire faults; writes docs/results/soak.md
	@$(BIN)/python -W ignore::UserWarning -m local.soak --results $(RESULTS) $(ARGS)

# From make bench's docs/results/bench.json and AWS's quotas (docs/capacity.md).
capacity: $(STAMP) ## what one stack sustains, what to set for a rate: ARGS="--rate 1000 --groups 100"
	@$(BIN)/python -m local capacity $(ARGS)

clean: ## remove every artefact: virtualenvs, build output, caches
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(MINISTACK_VENV) build dist .aws-sam \
		.coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

venv: $(STAMP) ## only create .venv with the pinned test dependencies

# Progress of the installs goes to stderr, so it never mixes with a piped report.
$(STAMP): requirements.txt requirements_test.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements_test.txt into $(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements_test.txt >&2
	@rm -f $(VENV)/.installed-* && touch $@

# Deployment tooling: the SAM CLI and checkov each pin their own boto3, cfn-lint and pydantic,
# so each lives in its own virtualenv, apart from the test stack.
SAM_STAMP := $(SAM_VENV)/.installed-$(shell cksum < infra/requirements-sam.txt | cut -d' ' -f1)
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cksum < infra/requirements-checkov.txt | cut -d' ' -f1)
REQUIREMENTS_SUM := $(shell cksum < requirements.txt | cut -d' ' -f1)
# These commands need a region and no AWS account; telemetry would try to reach AWS.
OFFLINE := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

$(SAM_STAMP): infra/requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@echo "installing infra/requirements-sam.txt into $(SAM_VENV)" >&2
	@$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-sam.txt >&2
	@rm -f $(SAM_VENV)/.installed-* && touch $@

$(CHECKOV_STAMP): infra/requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "installing infra/requirements-checkov.txt into $(CHECKOV_VENV)" >&2
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt >&2
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

# cfn-lint runs on the transformed template too: on template.yaml it skips much inside SAM resources.
validate: $(SAM_STAMP) $(CHECKOV_STAMP) ## template checks: sam validate --lint, cfn-lint after the SAM transform, checkov
	$(OFFLINE) $(SAM_VENV)/bin/sam validate --lint --template template.yaml --region us-east-1
	@mkdir -p build
	$(OFFLINE) $(SAM_VENV)/bin/python infra/sam_translate.py template.yaml > build/template.cfn.json
	$(SAM_VENV)/bin/cfn-lint build/template.cfn.json
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

# SAM's build cache keys on src/ and infra/Makefile only, so a new requirements.txt drops the cache.
build: $(STAMP) $(SAM_STAMP) ## the deployable zip build/consumer.zip (sam build; no python3.13 or Docker needed)
	@mkdir -p .aws-sam build
	@test -f .aws-sam/.requirements-$(REQUIREMENTS_SUM) || rm -rf .aws-sam/cache
	$(OFFLINE) $(SAM_VENV)/bin/sam build --template template.yaml
	@rm -f .aws-sam/.requirements-* && touch .aws-sam/.requirements-$(REQUIREMENTS_SUM)
	@rm -f build/consumer.zip
	cd .aws-sam/build/ConsumerFunction && $(CURDIR)/$(BIN)/python -m zipfile -c $(CURDIR)/build/consumer.zip *
	@echo "build/consumer.zip: $$(du -k build/consumer.zip | cut -f1) KiB zipped," \
		"$$(du -sk .aws-sam/build/ConsumerFunction | cut -f1) KiB unzipped (Lambda allows 50 MiB / 250 MiB)"

# MiniStack runs the function on its own interpreter: Python 3.13 (the template's runtime) where this
# machine has one that works, else $(PYTHON); `make e2e` prints which Python ran.
MINISTACK_VENV := .venv-ministack
MINISTACK_STAMP := $(MINISTACK_VENV)/.installed-$(shell cksum < infra/requirements-ministack.txt | cut -d' ' -f1)
MINISTACK_PYTHON ?= $(firstword $(foreach candidate,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python),\
	$(shell $(candidate) -c 'import sys' >/dev/null 2>&1 && echo $(candidate))) $(PYTHON))

$(MINISTACK_STAMP): infra/requirements-ministack.txt
	@test -x $(MINISTACK_VENV)/bin/python || $(MINISTACK_PYTHON) -m venv $(MINISTACK_VENV)
	@echo "installing infra/requirements-ministack.txt into $(MINISTACK_VENV)" >&2
	@$(MINISTACK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-ministack.txt >&2
	@rm -f $(MINISTACK_VENV)/.installed-* && touch $@
	@echo "$(MINISTACK_VENV): $$($(MINISTACK_VENV)/bin/python -V)" >&2

# The built zip on MiniStack: the producer's workload through its event source mapping, accounted for (docs/e2e.md).
e2e: build $(MINISTACK_STAMP) ## the built zip on MiniStack (no Docker): a workload through its event source mapping
	$(BIN)/python -m local.e2e run $(ARGS)

# The Docker-free `sam local invoke`: the event's bodies enqueued, then one Invoke with real receipt handles.
invoke: build $(MINISTACK_STAMP) ## EVENT=events/<file>.json: the built zip invoked once on MiniStack
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json" >&2; exit 2; }
	$(BIN)/python -m local.e2e invoke --event $(EVENT) $(ARGS)
