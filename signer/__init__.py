"""csr-signer: a Kubernetes CertificateSigningRequest approver and signer."""

__version__ = "0.1.0"
