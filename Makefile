# The two commands that matter: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test unit integration browser fuzz lint bench bench-instructions clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)  ## create .venv, install the project with its dev extras, compile the mapper
	@$(BIN)/python -c "from mappers._accel import main; main(['ensure'])"

# make run CONFIG=site.yaml MLLP_PORT=2576 HTTP_PORT=8081 FUNCTION_PORT=8091 ARGS=--once
# (ARGS: any other `hl7gw dev up` flags; KAFKA_BOOTSTRAP_SERVERS: use a running broker)
CONFIG ?= samples/gateway.yaml
run: setup  ## Kafka + gateway + bridge + function on local defaults; sends the samples
	$(BIN)/hl7gw dev up --config $(CONFIG) $(if $(MLLP_PORT),--mllp-port $(MLLP_PORT)) \
	  $(if $(HTTP_PORT),--http-port $(HTTP_PORT)) \
	  $(if $(FUNCTION_PORT),--function-port $(FUNCTION_PORT)) $(ARGS)

test: setup  ## every test, integration tests against a real Kafka broker
	$(BIN)/pytest
	# the mapper again from its Python sources: the fallback must give the same results
	HL7GW_PURE_PYTHON=1 $(BIN)/pytest -q tests/unit/mappers

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

browser: setup  ## Debian's Chromium for the console's browser tests (root; never `playwright install`)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	$(BIN)/pytest -m browser tests/browser

# Every `fuzz`-marked test with HL7GW_FUZZ_EXAMPLES random examples per target (~15-30 min
# on 2 cores); `make test` runs the same tests with a few thousand fixed examples each.
# A run prints its seed: `make fuzz FUZZ_SEED=<seed>` replays it; FUZZ_TESTS=<paths> narrows
# it to some suites (docs/faults.md).
FUZZ_EXAMPLES ?= 50000
FUZZ_SEED ?= $(shell date +%s)
FUZZ_TESTS ?= tests
fuzz: setup  ## long property-based fuzzing, for nights and releases
	@echo "make fuzz: $(FUZZ_EXAMPLES) examples per target, seed $(FUZZ_SEED)"
	HL7GW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -m fuzz -p no:cacheprovider \
	  --hypothesis-seed=$(FUZZ_SEED) --hypothesis-show-statistics --timeout=3600 -q $(FUZZ_TESTS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup  ## mapping and MLLP intake throughput, each next to a same-run ceiling
	$(BIN)/hl7gw bench map
	$(BIN)/hl7gw bench intake

bench-instructions: setup  ## instructions per conversion (callgrind): stable on a busy machine
	@for label in "ADT^A01" "ORU^R01 10 OBX" "ORU^R01 10 OBX, sender profile"; do \
	  run() { PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
	    $(BIN)/python -m mappers.bench "$$label" $$1 2>&1 | sed -n 's/.*Collected : //p'; }; \
	  a=$$(run 10); b=$$(run 60); \
	  echo "$$label: $$(( (b - a) / 50 )) instructions per convert"; \
	done

.PHONY: wheel function-package
# The shipped artefacts. The wheel's build hook (hatch_build.py) compiles the mapper inside
# the folder it builds, so it builds a copy; deploy/container/build.sh does the same.
wheel: $(STAMP)  ## the wheel into dist/, the mapper compiled by mypyc (a minute or two)
	rm -rf build/wheel-src && mkdir -p build/wheel-src dist
	tar --exclude=__pycache__ --exclude='*.so' -cf - pyproject.toml README.md hatch_build.py \
	  hl7gw gateway mappers connectors samples | tar -xf - -C build/wheel-src
	$(BIN)/pip wheel --no-deps --wheel-dir dist build/wheel-src

function-package: wheel  ## the Lambda package (no mapper) into deploy/aws/build/
	PYTHON=$(BIN)/python deploy/aws/build.sh "$$(ls -t dist/hl7gw-*.whl | head -1)" deploy/aws/build

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache build mappers_accel__mypyc.*.so
	find mappers -name '*.so' -delete
