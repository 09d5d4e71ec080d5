"""toxiproxy between the controllers and the apiserver: slow, stalled and reset connections.

Built from the Go module proxy with the one recipe every pinned tool goes through
(`gobuild.go_build`: locked, in scratch, version-checked, one rename into
``<cache_root>/toxiproxy-<version>/``), so Go stays the harness's only prerequisite.

`Toxiproxy` runs the server on loopback and speaks its HTTP API (`/proxies`,
`/proxies/<name>/toxics`) with urllib: one proxy per apiserver, toxics added and
removed by the fault schedule.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from csr_signer_dev.controlplane import free_port
from csr_signer_dev.gobuild import Binary, BuildError, Go, Module, answers_version, go_build
from csr_signer_dev.settings import DevSettings

TOXIPROXY_VERSION = "v2.12.0"
"""github.com/Shopify/toxiproxy/v2 release; the newest on the module proxy when pinned."""
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
CACHE_KEY = f"toxiproxy-{TOXIPROXY_VERSION}"
_VERSION_ARGS = ("-version",)
_VERSION = TOXIPROXY_VERSION.removeprefix("v")


def server_path(settings: DevSettings) -> Path:
    return settings.cache_root / CACHE_KEY / "toxiproxy-server"


def resolve_toxiproxy(settings: DevSettings, *, log: bool = True) -> Path:
    """The pinned toxiproxy-server, built into the cache on first use."""
    path = server_path(settings)
    if answers_version(path, _VERSION_ARGS, _VERSION):
        return path
    go_build(
        path.parent,
        go=settings.go,
        env=settings.go_env,
        plan=_plan,
        complete=lambda entry: answers_version(entry / "toxiproxy-server", _VERSION_ARGS, _VERSION),
        pins={"toxiproxy": TOXIPROXY_VERSION},
        log=log,
    )
    if not answers_version(path, _VERSION_ARGS, _VERSION):  # pragma: no cover
        raise BuildError(f"toxiproxy build finished but {path} does not run")
    return path


def _plan(go: Go) -> list[Module]:
    """cmd/server, its version stamped as upstream's release build does."""
    return [
        Module(
            path="csr-signer.local/toxiproxy-build",
            go_directive="1.23.0",
            requires=(f"{TOXIPROXY_MODULE} {TOXIPROXY_VERSION}",),
            binaries=(
                Binary(
                    "toxiproxy-server",
                    f"{TOXIPROXY_MODULE}/cmd/server",
                    version_args=_VERSION_ARGS,
                    version=_VERSION,
                    ldflags=f"-s -w -X {TOXIPROXY_MODULE}.Version={_VERSION}",
                ),
            ),
        )
    ]


class ToxiproxyError(RuntimeError):
    """The toxiproxy API refused a request or the server did not start."""


class Toxiproxy:
    """A toxiproxy-server on loopback and the few API calls the fault schedule makes."""

    def __init__(self, binary: Path, log_path: Path) -> None:
        self.api_port = free_port()
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(binary), "-host", "127.0.0.1", "-port", str(self.api_port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/version")
                break
            except (ToxiproxyError, OSError) as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ToxiproxyError(
                        f"toxiproxy-server did not start (see {log_path})"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._log.close()

    def proxy(self, name: str, upstream: str) -> int:
        """A proxy from a free loopback port to `upstream` (host:port); returns the port."""
        port = free_port()
        self._call(
            "POST",
            "/proxies",
            {"name": name, "listen": f"127.0.0.1:{port}", "upstream": upstream, "enabled": True},
        )
        return port

    def add_toxic(self, proxy: str, name: str, type_: str, **attributes: int) -> None:
        """One toxic on both directions' downstream side (what the client receives)."""
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {"name": name, "type": type_, "stream": "downstream", "attributes": attributes},
        )

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabled: every open connection is closed and new ones are refused."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise ToxiproxyError(f"{method} {path}: {exc.code} {exc.read()[:200]!r}") from exc
        except urllib.error.URLError as exc:
            raise ToxiproxyError(f"{method} {path}: {exc.reason}") from exc
        return json.loads(text) if text else None
