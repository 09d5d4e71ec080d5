"""A node's binaries: kubelet, kube-scheduler, kube-controller-manager, kube-proxy and pause.

Built like the control plane (`gobuild.go_build`, the Go module proxy, the
same k8s.io/kubernetes release as kube-apiserver, so the node and the control
plane are one version), into their own cache entry ``node-<version>``: a
control plane alone never pays for them.

`pause` is the sandbox's first process. Its upstream source is C; this is the
same behaviour in a few lines of Go (static, CGO off, so the image can be
``FROM scratch``): exit 0 on SIGINT or SIGTERM, reap children on SIGCHLD,
otherwise wait forever.
"""

from __future__ import annotations

import os
from pathlib import Path

from csr_signer_dev.binaries import KUBERNETES_VERSION, kubernetes_module
from csr_signer_dev.gobuild import Binary, BuildError, Go, Module, go_build
from csr_signer_dev.settings import DevSettings

NODE_CACHE_KEY = f"node-{KUBERNETES_VERSION}"
PAUSE_VERSION = "csr-signer-pause-1"
"""What `pause -v` prints: the version of the program below."""
KUBERNETES_COMMANDS = ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy")
"""k8s.io/kubernetes/cmd/<name>, each answering `--version` with the pinned release."""
NAMES = (*KUBERNETES_COMMANDS, "pause")

PAUSE_MAIN = f"""\
// pause: a Pod sandbox's first process. Holds the namespaces open, reaps
// orphans, and exits cleanly when the runtime stops the sandbox.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {{
	if len(os.Args) > 1 && os.Args[1] == "-v" {{
		fmt.Println("pause {PAUSE_VERSION}")
		return
	}}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {{
		if received != syscall.SIGCHLD {{
			os.Exit(0)
		}}
		for {{
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {{
				break
			}}
		}}
	}}
}}
"""


def cache_entry(settings: DevSettings) -> Path:
    return settings.cache_root / NODE_CACHE_KEY


def complete(entry: Path) -> bool:
    return all(os.access(entry / name, os.X_OK) for name in NAMES)


def resolve(settings: DevSettings, *, build: bool = True, log: bool = True) -> Path:
    """The cache entry holding every node binary, building it on first use."""
    entry = cache_entry(settings)
    if complete(entry):
        return entry
    if not build:
        raise BuildError(f"no node binaries in {entry}; run `csr-signer local build --node`")
    return go_build(
        entry,
        go=settings.go,
        env=settings.go_env,
        plan=plan,
        complete=complete,
        pins={"kubernetes": KUBERNETES_VERSION, "pause": PAUSE_VERSION},
        log=log,
    )


def plan(go: Go) -> list[Module]:
    pause = Module(
        path="csr-signer.local/pause",
        go_directive="1.24",
        requires=(),
        binaries=(
            Binary("pause", "csr-signer.local/pause/cmd/pause", ("-v",), PAUSE_VERSION, "-s -w"),
        ),
        sources=(("cmd/pause/main.go", PAUSE_MAIN),),
    )
    node = kubernetes_module(go, *KUBERNETES_COMMANDS)
    return [pause, node]
