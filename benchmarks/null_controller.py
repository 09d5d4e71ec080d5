"""A same-stack baseline: the controller's API traffic with no policy and no crypto.

Same client stack, watch, queue and writes as `csr-signer run` (approve through
/approval, upload a certificate through /status, one Event for each), but the
decision is "approve" and the certificate is one fixed PEM made at start-up.
`bench_controller.py` runs it beside the real controller to compute the ratio:
the cost of deciding and signing on top of our own client stack. It is not the
apiserver's limit (a leaner client could go faster) and not a comparison with
other signers.

    python benchmarks/null_controller.py KUBECONFIG SIGNER_NAME WORKERS
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes_asyncio import client

from signer.kube.client import make_api_client
from signer.kube.csrs import CsrClient
from signer.kube.errors import ApiError
from signer.kube.watching import Handlers, list_and_watch
from signer.pki.ca import generate_root
from signer.reactor.cache import CsrCache
from signer.reactor.queueing import WorkQueue, run_worker


async def main(kubeconfig: Path, signer: str, workers: int) -> None:
    fixed_pem, _ = generate_root("null", "ecdsa-p256", 1, dt.datetime.now(dt.UTC))
    api = await make_api_client(kubeconfig)
    writer = CsrClient(api, identity="null-controller")
    cache, queue = CsrCache(), WorkQueue()

    async def handle(name: str) -> None:
        raw = cache.get(name)
        if raw is None:
            return
        try:
            types = {c.get("type") for c in (raw.get("status") or {}).get("conditions") or []}
            if "Approved" not in types:
                raw = await writer.approve(raw, "NullApproved", "approved by the null controller")
                cache.apply("MODIFIED", raw)
                await writer.event(raw, "Normal", "Approved", "null")
            raw = await writer.upload_certificate(raw, fixed_pem)
            cache.apply("MODIFIED", raw)
            await writer.event(raw, "Normal", "Issued", "null")
        except ApiError:
            queue.retry(name)

    def on_list(items: list[dict[str, Any]]) -> None:
        for name in cache.replace(items):
            queue.add(name)
        print("ready", flush=True)

    def on_event(kind: str, raw: dict[str, Any]) -> None:
        if cache.apply(kind, raw):
            queue.add(raw["metadata"]["name"])

    certs = client.CertificatesV1Api(api)
    tasks = [asyncio.create_task(run_worker(queue, handle)) for _ in range(workers)]
    await list_and_watch(
        certs.list_certificate_signing_request,
        Handlers(on_list=on_list, on_event=on_event),
        field_selector=f"spec.signerName={signer}",
    )
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
