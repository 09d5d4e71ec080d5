"""The probe and metrics endpoints: /healthz, /readyz, /metrics.

- ``/healthz`` answers 200 ``ok`` whenever the event loop runs a handler. It
  checks nothing else on purpose: a liveness failure restarts the pod, and a
  restart cures a stuck loop, not a missing Secret or a bad policy file.
- ``/readyz`` is 200 ``ok`` only when every named check in `Readiness` passes;
  otherwise 503 with one ``name: detail`` line per failing check, so ``kubectl
  describe pod`` and a curl show the cause, not just the symptom.
  ``/readyz?verbose`` lists passing checks too.
- ``/metrics`` is `Telemetry.render()`.

The controller owns the checks and sets them as its state changes; this module
only reports them. Checks declared up front start failing with ``pending``, so
the pod is not Ready before the controller has looked at anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from signer.telemetry import Telemetry

PENDING: Final = "pending"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Readiness:
    """Named readiness checks, set by the controller, read by /readyz.

    Typical names: ``watch`` (initial list done), ``ca`` (CA Secret loaded and
    valid), ``policies`` (policy files valid). Checks are kept in the order they
    were first declared or set, so the report reads the same on every probe.
    """

    def __init__(self, pending: Iterable[str] = ()) -> None:
        """`pending`: checks that must be set ok before the process is ready."""
        self._checks: dict[str, Check] = {}
        for name in pending:
            self.set(name, ok=False, detail=PENDING)

    def set(self, name: str, *, ok: bool, detail: str = "") -> None:
        """Record the current state of check `name`; `detail` says why it fails.

        A multi-line detail is folded onto one line: the report is one line per check.
        """
        self._checks[name] = Check(name, ok, " ".join(detail.split()))

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self._checks.values())

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    def report(self, *, verbose: bool = False) -> str:
        """``name: detail`` per failing check (per check with `verbose`), or ``ok``."""
        lines = [
            f"{check.name}: {'ok' if check.ok else check.detail or 'failing'}"
            for check in self._checks.values()
            if verbose or not check.ok
        ]
        if self.ok:
            lines.append("ok")
        return "\n".join(lines) + "\n"


class WebServer:
    """A running server; `port` is the bound port (useful when asked for port 0)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        """Stop listening and finish in-flight requests (they are all instant)."""
        await self._runner.cleanup()


def build_app(readiness: Readiness, telemetry: Telemetry) -> web.Application:
    """The aiohttp application, separate from `start_web` so it can be tested in-process."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        verbose = "verbose" in request.query
        status = 200 if readiness.ok else 503
        return web.Response(status=status, text=readiness.report(verbose=verbose))

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = telemetry.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_web(host: str, port: int, readiness: Readiness, telemetry: Telemetry) -> WebServer:
    """Serve the endpoints on `host`:`port` (port 0 picks a free port).

    An empty `host` listens on all interfaces. The access log is off: probes
    and scrapes every few seconds would bury the controller's own log lines.
    """
    runner = web.AppRunner(
        build_app(readiness, telemetry), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host or None, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    return WebServer(runner, bound)
