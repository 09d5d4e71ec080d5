"""A loopback HTTP stand-in for the apiserver's PodCertificateRequest endpoints.

Real HTTP through the real `kubernetes_asyncio` ApiClient, so the REST paths, query
names and discovery documents `signer.kube.pcrs` builds are checked on the wire. Its
point is the version question the pinned apiserver cannot answer: 1.36.3 serves only
v1beta1, and v1 (planned for GA) must work when discovery offers it. The apiserver's
own rules are exercised in tests/e2e; this keeps only the ones the client relies on
(discovery, 404 for an unserved version, resourceVersion-guarded `/status` PUTs).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

GROUP = "certificates.k8s.io"


class FakePcrApi:
    """PCRs stored per (namespace, name); `served` is what discovery offers, and may
    change while a client watches."""

    def __init__(self, served: set[str]) -> None:
        self.served = set(served)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in order."""
        self._rv = 0
        self.closing = False
        """Set on shutdown: open watches end at once."""

    def add(self, namespace: str, name: str, signer: str) -> None:
        self._rv += 1
        self.objects[(namespace, name)] = {
            "kind": "PodCertificateRequest",
            "metadata": {"namespace": namespace, "name": name, "resourceVersion": str(self._rv)},
            "spec": {"signerName": signer},
        }

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get(f"/apis/{GROUP}", self._group)
        app.router.add_get(f"/apis/{GROUP}/{{version}}", self._resources)
        app.router.add_get(f"/apis/{GROUP}/{{version}}/podcertificaterequests", self._list)
        path = f"/apis/{GROUP}/{{version}}/namespaces/{{ns}}/podcertificaterequests/{{name}}"
        app.router.add_get(path, self._get)
        app.router.add_put(path + "/status", self._put_status)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    def _version(self, request: web.Request) -> str:
        version = request.match_info["version"]
        if version not in self.served:
            raise web.HTTPNotFound(text='{"kind":"Status","code":404}')
        return version

    async def _group(self, _request: web.Request) -> web.Response:
        # v1 is always a version of the group (CSRs); it serves PCRs only if "served".
        versions = sorted(self.served | {"v1"})
        return web.json_response(
            {"kind": "APIGroup", "name": GROUP, "versions": [{"version": v} for v in versions]}
        )

    async def _resources(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        names = ["certificatesigningrequests", "certificatesigningrequests/status"]
        if version in self.served:
            names += ["podcertificaterequests", "podcertificaterequests/status"]
        return web.json_response(
            {"kind": "APIResourceList", "resources": [{"name": n} for n in names]}
        )

    async def _list(self, request: web.Request) -> web.StreamResponse:
        version = self._version(request)
        selector = request.query.get("fieldSelector", "")
        signer = selector.removeprefix("spec.signerName=")
        if request.query.get("watch") in ("true", "True", "1"):
            return await self._watch(request, version)
        items = [
            {**copy.deepcopy(o), "apiVersion": f"{GROUP}/{version}"}
            for o in self.objects.values()
            if not selector or o["spec"]["signerName"] == signer
        ]
        return web.json_response(
            {
                "kind": "PodCertificateRequestList",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, version: str) -> web.StreamResponse:
        """A quiet watch that ends when the version stops being served or time is up."""
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + float(
            request.query.get("timeoutSeconds", "5")
        )
        while (
            version in self.served
            and not self.closing
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    async def _get(self, request: web.Request) -> web.Response:
        version = self._version(request)
        raw = self.objects.get((request.match_info["ns"], request.match_info["name"]))
        if raw is None:
            raise web.HTTPNotFound(text='{"kind":"Status","code":404}')
        return web.json_response({**raw, "apiVersion": f"{GROUP}/{version}"})

    async def _put_status(self, request: web.Request) -> web.Response:
        version = self._version(request)
        key = (request.match_info["ns"], request.match_info["name"])
        stored = self.objects.get(key)
        if stored is None:
            raise web.HTTPNotFound(text='{"kind":"Status","code":404}')
        body = json.loads(await request.read())
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise web.HTTPConflict(text='{"kind":"Status","code":409}')
        self._rv += 1
        stored["status"] = body.get("status")
        stored["metadata"]["resourceVersion"] = str(self._rv)
        return web.json_response({**stored, "apiVersion": f"{GROUP}/{version}"})


@asynccontextmanager
async def serving(fake: FakePcrApi) -> AsyncIterator[client.ApiClient]:
    """The fake on a loopback port, and an ApiClient pointed at it."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        fake.closing = True
        await api.close()
        await runner.cleanup()
