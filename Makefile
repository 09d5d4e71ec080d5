# Two entry points for a newcomer on a fresh machine:
#   make run   - install, start a local control plane and the controller against it
#   make test  - install everything, lint, type-check, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install bench binaries manifests clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

binaries: $(STAMP)
	$(BIN)/csr-signer local build
	$(BIN)/python -m signer.local.helm build

manifests: $(STAMP)
	$(BIN)/python -m signer.local.helm manifests --write

run: $(STAMP)
	$(BIN)/csr-signer local run

lint: $(STAMP)
	$(BIN)/ruff check signer tests benchmarks
	$(BIN)/ruff format --check signer tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint binaries
	$(BIN)/pytest -q

bench: $(STAMP) binaries
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
