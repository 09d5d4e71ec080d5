"""csr-signer: a Kubernetes CertificateSigningRequest approver and signer."""

from signer.kube import lazyclient

__version__ = "0.1.0"

# Before any module imports kubernetes_asyncio: its generated client is imported lazily
# (36 MB of RSS the controller never uses; signer.kube.lazyclient says why and how).
lazyclient.install()
