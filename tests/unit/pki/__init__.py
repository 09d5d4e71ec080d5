"""Unit tests for signer.pki: CA handling, usages, issuance."""
