# The two commands that matter: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test unit integration lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)  ## create .venv and install the project with its dev extras

run: setup  ## Kafka + gateway + bridge + function on local defaults; sends the samples
	$(BIN)/hl7gw dev up --config samples/gateway.yaml

test: setup  ## every test, integration tests against a real Kafka broker
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup  ## mapping and MLLP intake throughput, each next to a same-run ceiling
	$(BIN)/hl7gw bench map
	$(BIN)/hl7gw bench intake

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
