# Two entry points for a newcomer on a fresh machine:
#   make run   - install, start a local control plane and the controller against it
#   make test  - install everything, lint, type-check, run the whole test suite and a
#                short chaos run (10 faults)
#   make chaos - the fault suite (docs/chaos.md): CHAOS_FAULTS=50 faults by default;
#                CHAOS_SEED=<n> replays a printed schedule
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install bench binaries manifests image lock e2e-node clean chaos

CHAOS_FAULTS ?= 50
CHAOS_SEED   ?=
CHAOS_TEST_FAULTS := 10

# The runtime (csr-signer, with the test tools) and the dev harness beside it
# (csr-signer-dev in dev/: `csr-signer local ...`, the control plane for e2e).
$(STAMP): pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./dev
	touch $(STAMP)

install: $(STAMP)

binaries: $(STAMP)
	$(BIN)/csr-signer local build --node
	$(BIN)/csr-signer local helm build

manifests: $(STAMP)
	$(BIN)/csr-signer local helm manifests --write

# The controller image from the unchanged Dockerfile, with buildah on a stand-in
# base (Debian packages; installed with apt-get when missing), smoke-run and
# exported to build/csr-signer-<version>.oci.tar. README: "The image".
image: $(STAMP)
	$(BIN)/csr-signer local image build

# Regenerate the image's hash-pinned lock files (requirements/*.txt) from PyPI.
lock: $(STAMP)
	$(BIN)/csr-signer local image lock

run: $(STAMP)
	$(BIN)/csr-signer local run

lint: $(STAMP)
	$(BIN)/ruff check signer tests benchmarks dev
	$(BIN)/ruff format --check signer tests benchmarks dev
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint binaries image
	$(BIN)/csr-signer policy test policies/tests
	$(BIN)/pytest -q
	$(MAKE) chaos CHAOS_FAULTS=$(CHAOS_TEST_FAULTS)

# The suite's code is the dev harness's (`csr-signer local chaos`); toxiproxy is built
# from the Go module proxy on first use and cached beside the control plane binaries.
chaos: $(STAMP) binaries
	$(BIN)/csr-signer local chaos --faults $(CHAOS_FAULTS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

# Only the chart on a real node (containerd, kubelet, ...; root): tests/node.
# `make test` runs these too.
e2e-node: binaries image
	$(BIN)/pytest -q tests/node

bench: $(STAMP) binaries
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
