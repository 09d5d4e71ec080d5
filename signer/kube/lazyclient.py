"""Import kubernetes_asyncio's generated client lazily: 36 MB of RSS the controller never uses.

`kubernetes_asyncio.client`, `.client.api` and `.client.models` are generated packages
whose `__init__.py` imports every API class (about 100 modules) and every model (about
770), although the controller uses five API classes and, since it reads and writes raw
JSON (`_preload_content=False`), no model at all. Measured: importing the package costs
36 MB of RSS over its dependencies, a third of the controller's memory target.

`install()` puts stand-ins for those three packages into `sys.modules` before anything
imports them. Each stand-in is a real package module (same `__path__`, so submodules
import as usual) whose names resolve on first use (PEP 562 `__getattr__`), from a table
read out of the package's own `__init__.py` (its `from X import Name` lines): nothing is
hard-coded, and a name the real package has resolves to the same object. Static typing
still sees the real packages.

It is a no-op when the client was already imported (tests and the dev harness import it
freely), and `signer.kube` installs it first thing, so every runtime import of the
client goes through it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

PACKAGES = (
    "kubernetes_asyncio.client",
    "kubernetes_asyncio.client.api",
    "kubernetes_asyncio.client.models",
)
_FROM_IMPORT = re.compile(r"^from (kubernetes_asyncio\.client[\w.]*) import (\w+)\s*$", re.M)
_ASSIGN = re.compile(r'^(__version__) = "([^"]*)"\s*$', re.M)


def install() -> bool:
    """Install the lazy stand-ins; False when the real client is already imported."""
    if any(name in sys.modules for name in PACKAGES):
        return False
    spec = importlib.util.find_spec("kubernetes_asyncio")
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(next(iter(spec.submodule_search_locations)))
    # Parents first: a submodule import finds its parent in sys.modules.
    for package in PACKAGES:
        directory = root.joinpath(*package.split(".")[1:])
        sys.modules[package] = _lazy_package(package, directory)
    return True


def _lazy_package(name: str, directory: Path) -> types.ModuleType:
    init = directory / "__init__.py"
    text = init.read_text(encoding="utf-8")
    table = {attr: module for module, attr in _FROM_IMPORT.findall(text)}
    module = types.ModuleType(name, f"Lazy stand-in for {name} (signer.kube.lazyclient).")
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(directory)]
    module.__spec__ = spec
    module.__path__ = [str(directory)]
    module.__file__ = str(init)
    module.__package__ = name
    module.__all__ = sorted(table)  # type: ignore[attr-defined]
    for attr, value in _ASSIGN.findall(text):
        setattr(module, attr, value)

    def __getattr__(attr: str) -> Any:
        target = table.get(attr)
        if target is None:
            # A submodule that was not imported yet (e.g. `client.rest`).
            try:
                return importlib.import_module(f"{name}.{attr}")
            except ModuleNotFoundError:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None
        value = getattr(importlib.import_module(target), attr)
        setattr(module, attr, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*module.__dict__, *table})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    return module


__all__ = ["PACKAGES", "install"]
