# syntax=docker/dockerfile:1
#
# csr-signer controller image. Build: docker build -t csr-signer:0.1.0 .
#
# Two stages from the same pinned base, so the virtualenv built in the first
# (whose interpreter is a symlink to the base image's /usr/local/bin/python3.11)
# runs unchanged in the second. The final stage gets only that virtualenv (no
# source tree, no wheels, no pip or setuptools inside it); slim has no compilers.
#
# Runs as UID/GID 65532 (the distroless "nonroot" convention; no /etc/passwd
# entry needed) and needs no writable path: bytecode is compiled at install
# time and PYTHONDONTWRITEBYTECODE stops Python from trying to write more, so
# the Pod can set readOnlyRootFilesystem: true.
#
# The base is pinned by tag. Pin it by digest too (python:3.11-slim-bookworm@sha256:...)
# where your registry policy requires it; tests/packaging checks the tag is not floating.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# signer/bundled_policies is a symlink to ../policies: both directories are
# needed for the wheel to carry the bundled policy files.
COPY pyproject.toml README.md ./
COPY signer/ signer/
COPY policies/ policies/

# The project's wheel and every runtime dependency's wheel, then an install
# from those wheels only (no index): what is installed is exactly what was built.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && python -m venv /opt/csr-signer \
 && /opt/csr-signer/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/csr_signer-*.whl \
 && /opt/csr-signer/bin/pip uninstall --yes setuptools pip \
 && /opt/csr-signer/bin/csr-signer policy lint

FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="csr-signer" \
      org.opencontainers.image.description="Kubernetes CertificateSigningRequest approver and signer" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/csr-signer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1

COPY --from=builder /opt/csr-signer /opt/csr-signer

USER 65532:65532
WORKDIR /
EXPOSE 8080
ENTRYPOINT ["csr-signer", "run"]
