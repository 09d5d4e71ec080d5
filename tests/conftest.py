"""Shared pytest configuration and the fixtures more than one test tree needs."""

from __future__ import annotations

import os

import pytest
from csr_signer_dev import image
from csr_signer_dev.gobuild import BuildError
from csr_signer_dev.settings import from_environment


@pytest.fixture(scope="session")
def controller_image() -> tuple[image.Engine, image.Built]:
    """The image of this checkout's Dockerfile, built as `make image` builds it.

    Cached by buildah's layers, so after `make image` this takes seconds; on a
    cold machine it installs the tools and builds the stand-in base first
    (minutes). Without root and without the tools there is nothing to build with.
    Tests run it by `Built.image_id`: another checkout on the machine may retag the
    name in the same storage meanwhile.
    """
    settings = from_environment()
    engine = image.Engine.for_settings(settings)
    try:
        built = image.build(engine, settings, log=False)
    except BuildError as exc:
        if os.geteuid() != 0 and str(exc).startswith("missing "):
            pytest.skip(f"cannot build the image here: {exc}")
        raise
    return engine, built
