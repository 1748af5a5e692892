# Every set-up step lives here: a fresh clone needs only `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements_test.txt | cksum | cut -d' ' -f1)

.PHONY: help venv test lint typecheck unit run clean

help:
	@echo "make run   - run the consumer end to end on an embedded AWS emulator"
	@echo "make test  - ruff, mypy and pytest with the coverage gate"

$(STAMP): requirements.txt requirements_test.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements_test.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests local
	$(BIN)/ruff format --check src tests local

typecheck: $(STAMP)
	$(BIN)/mypy src tests local

unit: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing

run: $(STAMP)
	$(BIN)/python -m local.run_samples

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache
