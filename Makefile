# Two entry points for a newcomer on a fresh machine:
#   make run   - install, start a local control plane and the controller against it
#   make test  - install everything, lint, type-check, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install bench binaries manifests image lock e2e-node clean

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

# Only the chart on a real node (containerd, kubelet, ...; root): tests/node.
# `make test` runs these too.
e2e-node: binaries image
	$(BIN)/pytest -q tests/node

bench: $(STAMP) binaries
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
