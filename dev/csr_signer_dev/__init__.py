"""The csr-signer development harness (distribution `csr-signer-dev`).

Kept apart from the `signer` package so the runtime wheel and the container
image carry only the controller: nothing here runs in a cluster. It depends on
`signer` (the local run mode starts the real controller); `signer` never
imports it (an import-linter contract), and reaches `csr-signer local ...`
only through the `csr_signer.commands` entry point this distribution registers.

Modules: `settings` (the one place the environment is read), `gobuild` (pinned
Go builds into a per-user cache), `binaries` and `helm` (what is built),
`certs`, `controlplane` and `identities` (a real kube-apiserver + etcd on
loopback), `session` (the local run mode) and `commands` (the CLI group).
"""
