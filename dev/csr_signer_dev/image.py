"""The controller image, built from the unchanged Dockerfile with buildah: no daemon, no registry.

Why: users install csr-signer as an image, so the Dockerfile must really
build and the image must really run. CI machines reach package registries
only: there is no Docker daemon to talk to and the Dockerfile's base image
(`python:3.11-slim-bookworm` from Docker Hub) cannot be pulled. Everything
here comes from Debian packages instead:

1. `ensure_tools`: buildah, podman, runc, skopeo, umoci and mmdebstrap,
   installed with apt-get when one is missing (idempotent; needs root);
2. `stand_in_base`: a Debian bookworm root with Python 3.11, venv, pip and
   CA certificates, built once by mmdebstrap and cached under
   ``~/.cache/csr-signer/image/`` by the hash of its recipe, then imported
   into the engine's storage under the Dockerfile's exact ``FROM`` name, so
   the Dockerfile builds unchanged. It stands in for the official base on
   this machine only; a release build uses the official base;
3. `build`: ``buildah bud`` with runc (crun refuses this machine's hybrid
   cgroup layout), ulimits within the host's hard limits (root here lacks
   CAP_SYS_RESOURCE, so raising one is refused), and the host's CA bundle
   mounted read-only over the base's for RUN steps only (pip then trusts
   what the host trusts; the bundle is never baked into a layer);
4. `smoke`: the image run read-only, as UID 65532, with no network, and its
   User and Entrypoint asserted;
5. `export_oci`: an OCI archive of the image, for other runtimes.

The image lives in a storage of its own (``~/.cache/csr-signer/containers``)
so nothing here touches, or is touched by, another user of podman on the
machine; `Engine` carries the flags every buildah and podman call needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from csr_signer_dev import settings as dev_settings
from csr_signer_dev.gobuild import BuildError, locked, say
from csr_signer_dev.settings import DevSettings

TOOLS: dict[str, str] = {
    "buildah": "buildah",
    "podman": "podman",
    "runc": "runc",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "mmdebstrap": "mmdebstrap",
    "/usr/lib/podman/netavark": "netavark",
}
"""Command (or absolute path) -> the Debian package that provides it. netavark is
podman's network backend, named explicitly: podman would otherwise pick one by what
happens to be installed, and record it in the storage on first use."""

IMAGE_USER = "65532:65532"
"""What the image must run as: the chart's runAsUser/runAsGroup."""
IMAGE_ENTRYPOINT = ("csr-signer", "run")
BASE_LABEL = "dev.csr-signer.stand-in-base"
"""Label on the imported stand-in base: the hash of the recipe it was built from."""

NPROC_LIMIT = 4096
"""RLIMIT_NPROC for containers: the controller is one process. podman's default (the
maximum) is refused here, and so is the host's own hard limit: children of podman
get a lower one (32768 accepted, 65536 refused on this machine)."""

_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BaseRecipe:
    """What the stand-in base is made of; its hash names the cached tarball."""

    suite: str = "bookworm"
    variant: str = "essential"
    packages: tuple[str, ...] = (
        "python3.11",
        "python3-venv",
        "python3-pip",
        "python-is-python3",
        "ca-certificates",
    )
    sources: tuple[str, ...] = (
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    )
    path_excludes: tuple[str, ...] = (
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/info/*",
        "/usr/share/locale/*",
    )
    env: tuple[str, ...] = (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
    )

    def key(self) -> str:
        """Content hash of the recipe: a changed recipe is a new cache entry and a new import."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def mmdebstrap_argv(self, output: Path) -> list[str]:
        argv = ["mmdebstrap", f"--variant={self.variant}", "--mode=root", "--format=tar"]
        argv.append("--include=" + ",".join(self.packages))
        # Debian's own snapshot mirrors may serve Release files past Valid-Until.
        argv.append('--aptopt=Acquire::Check-Valid-Until "false"')
        argv += [f"--dpkgopt=path-exclude={p}" for p in self.path_excludes]
        return [*argv, self.suite, str(output), *self.sources]


@dataclass(frozen=True, slots=True)
class Engine:
    """buildah and podman on one private storage, with this machine's runtime settings."""

    storage: Path
    runroot: Path
    ulimits: tuple[str, ...]

    @classmethod
    def for_settings(cls, settings: DevSettings) -> Engine:
        root = settings.cache_root.parent / "containers"
        return cls(root / "storage", root / "run", host_ulimits())

    def _storage_args(self) -> list[str]:
        return [
            "--root",
            str(self.storage),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "overlay",
        ]

    def buildah_argv(self, *args: str) -> list[str]:
        return ["buildah", *self._storage_args(), *args]

    def podman_argv(self, *args: str) -> list[str]:
        """podman with runc, cgroupfs (no systemd here), file events and netavark, on our
        storage."""
        return [
            "podman",
            *self._storage_args(),
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--network-backend",
            "netavark",
            "--tmpdir",
            str(self.runroot / "libpod"),
            *args,
        ]

    def ulimit_args(self) -> list[str]:
        return [arg for limit in self.ulimits for arg in ("--ulimit", limit)]

    def buildah(self, *args: str, timeout: float = 1200) -> str:
        return run(self.buildah_argv(*args), timeout=timeout)

    def podman(self, *args: str, timeout: float = 300) -> str:
        return run(self.podman_argv(*args), timeout=timeout)

    def inspect(self, image: str) -> dict[str, Any] | None:
        """`podman image inspect` of `image`, or None if the storage has no such image."""
        proc = subprocess.run(
            self.podman_argv("image", "inspect", image),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            return None
        found: list[dict[str, Any]] = json.loads(proc.stdout)
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Layer:
    created_by: str
    size: int


@dataclass(frozen=True, slots=True)
class Built:
    """The image `build` made and what it is made of."""

    name: str
    image_id: str
    size: int
    layers: tuple[Layer, ...]
    """Every history entry, base first; metadata-only steps have size 0."""
    base: str
    base_size: int
    seconds: float


def host_ulimits() -> tuple[str, ...]:
    """Container ulimits no higher than this process's hard limits (raising one is refused)."""
    _soft, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _soft, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = 1_048_576 if nofile == resource.RLIM_INFINITY else nofile
    nproc = NPROC_LIMIT if nproc == resource.RLIM_INFINITY else min(nproc, NPROC_LIMIT)
    return (f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}")


def image_name() -> str:
    """`localhost/csr-signer:<version>`, the tag the Dockerfile's header suggests."""
    from signer import __version__  # noqa: PLC0415 - the runtime is a dependency, read lazily

    return f"localhost/csr-signer:{__version__}"


def dockerfile_bases(text: str) -> list[str]:
    """The external images a Dockerfile's FROM lines name (not its own stage names)."""
    stages: set[str] = set()
    bases: list[str] = []
    for match in _FROM.finditer(text):
        image, stage = match.group(1), match.group(2)
        if image.lower() not in stages and image not in bases:
            bases.append(image)
        if stage:
            stages.add(stage.lower())
    return bases


def qualified(image: str) -> str:
    """Docker's short names spelled in full: `python:3.11` -> `docker.io/library/python:3.11`."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def ensure_tools(*, log: bool = True) -> None:
    """Install the Debian packages of every missing tool (apt-get; a no-op when all exist)."""
    missing = sorted({pkg for probe, pkg in TOOLS.items() if not _installed(probe)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(
            f"missing {', '.join(missing)}; install them (apt-get install {' '.join(missing)}) "
            "or run as root, which installs them"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if log:
        say(f"installing {' '.join(missing)} from Debian packages")
    run(["apt-get", "update", "-qq"], env=env, timeout=600)
    run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        timeout=1200,
    )
    still = [probe for probe in TOOLS if not _installed(probe)]
    if still:
        raise BuildError(f"apt-get installed {missing} but {still} are still not on PATH")


def _installed(probe: str) -> bool:
    return Path(probe).is_file() if probe.startswith("/") else shutil.which(probe) is not None


def base_tarball(settings: DevSettings, recipe: BaseRecipe, *, log: bool = True) -> Path:
    """The stand-in base's root filesystem tarball, built by mmdebstrap on first use.

    Cached by `recipe.key()`; built in a scratch file and renamed under a lock, so a
    concurrent or interrupted build never leaves a partial tarball under the final name.
    """
    directory = settings.cache_root.parent / "image"
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"stand-in-base-{recipe.key()}.tar"
    with locked(directory / f".{tarball.name}.lock"):
        if tarball.is_file():
            return tarball
        scratch = Path(tempfile.mkdtemp(prefix=".base.", dir=directory))
        try:
            started = time.monotonic()
            if log:
                say(f"building the stand-in base with mmdebstrap ({recipe.suite}) -> {tarball}")
            run(recipe.mmdebstrap_argv(scratch / "rootfs.tar"), timeout=1200)
            (scratch / "rootfs.tar").rename(tarball)
            if log:
                say(f"stand-in base built in {time.monotonic() - started:.0f}s")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return tarball


def stand_in_base(
    engine: Engine, settings: DevSettings, name: str, recipe: BaseRecipe, *, log: bool = True
) -> str:
    """Import the stand-in base as `name` unless that image is already this recipe's; its id."""
    key = recipe.key()
    found = engine.inspect(name)
    if found is not None and (found.get("Labels") or {}).get(BASE_LABEL) == key:
        return str(found["Id"])
    tarball = base_tarball(settings, recipe, log=log)
    if log:
        say(f"importing the stand-in base as {name}")
    container = engine.buildah("from", "--pull-never", "scratch").strip().splitlines()[-1]
    try:
        engine.buildah("add", container, str(tarball), "/")
        config = ["config", "--label", f"{BASE_LABEL}={key}", "--cmd", "python3"]
        for value in recipe.env:
            config += ["--env", value]
        engine.buildah(*config, container)
        return engine.buildah("commit", "--rm", container, name).strip().splitlines()[-1]
    except BuildError:
        subprocess.run(engine.buildah_argv("rm", container), capture_output=True, check=False)
        raise


def build(
    engine: Engine,
    settings: DevSettings,
    *,
    repo: Path = dev_settings.CHECKOUT,
    name: str | None = None,
    recipe: BaseRecipe | None = None,
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt"),
    log: bool = True,
) -> Built:
    """Build `repo`'s Dockerfile as it is, on the stand-in base; `Built` says what came out."""
    started = time.monotonic()
    name = name or image_name()
    recipe = recipe or BaseRecipe()
    dockerfile = repo / "Dockerfile"
    bases = dockerfile_bases(dockerfile.read_text())
    if len(bases) != 1:
        raise BuildError(f"{dockerfile}: expected one base image for every stage, got {bases}")
    base = qualified(bases[0])
    ensure_tools(log=log)
    stand_in_base(engine, settings, base, recipe, log=log)
    argv = [
        "bud",
        "--pull-never",
        "--layers",
        "--runtime",
        "runc",
        "--isolation",
        "oci",
        "--network",
        "host",
        *engine.ulimit_args(),
        "--file",
        str(dockerfile),
        "--tag",
        name,
    ]
    if ca_bundle.is_file():
        argv += ["--volume", f"{ca_bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
    if log:
        say(f"buildah bud {dockerfile} -> {name}")
    engine.buildah(*argv, str(repo))
    return describe(engine, name, base, seconds=time.monotonic() - started)


def describe(engine: Engine, name: str, base: str, *, seconds: float = 0.0) -> Built:
    """Size and layers of `name` (and of its base) as the storage records them."""
    found = engine.inspect(name)
    base_found = engine.inspect(base)
    if found is None or base_found is None:
        raise BuildError(f"{name} or its base {base} is not in {engine.storage}")
    history = json.loads(engine.podman("history", "--format", "json", name))
    layers = tuple(
        Layer(created_by=str(h.get("CreatedBy", h.get("created_by", ""))), size=int(h["size"]))
        for h in reversed(history)
    )
    return Built(
        name=name,
        image_id=str(found["Id"]),
        size=int(found["Size"]),
        layers=layers,
        base=base,
        base_size=int(base_found["Size"]),
        seconds=seconds,
    )


PAUSE_IMAGE = "localhost/pause:csr-signer"
"""The sandbox image a local node's containerd runs (`sandbox_image`)."""
PAUSE_LABEL = "dev.csr-signer.pause-sha256"


def pause_image(engine: Engine, pause: Path, *, name: str = PAUSE_IMAGE) -> str:
    """`FROM scratch` + the static `pause` binary as /pause; rebuilt only when the binary changes.

    Upstream's pause image cannot be pulled here; the kubelet needs one only as every
    Pod's first process (see nodebinaries). Runs as 65535, like upstream's.
    """
    digest = hashlib.sha256(pause.read_bytes()).hexdigest()
    found = engine.inspect(name)
    if found is not None and (found.get("Labels") or {}).get(PAUSE_LABEL) == digest:
        return name
    container = engine.buildah("from", "--pull-never", "scratch").strip().splitlines()[-1]
    try:
        engine.buildah("copy", "--chmod", "0755", container, str(pause), "/pause")
        engine.buildah(
            "config",
            "--entrypoint",
            '["/pause"]',
            "--user",
            "65535:65535",
            "--label",
            f"{PAUSE_LABEL}={digest}",
            container,
        )
        engine.buildah("commit", "--rm", container, name)
    except BuildError:
        subprocess.run(engine.buildah_argv("rm", container), capture_output=True, check=False)
        raise
    return name


def save_docker_archive(engine: Engine, name: str, archive: Path) -> Path:
    """`name` as a docker-archive (what `ctr images import` reads with its full name)."""
    archive.unlink(missing_ok=True)
    engine.podman("save", "--format", "docker-archive", "--output", str(archive), name, timeout=600)
    return archive


@dataclass(frozen=True, slots=True)
class SmokeCheck:
    """One command run in the image and what its output must contain."""

    name: str
    entrypoint: str | None
    """None: the image's own entrypoint (`csr-signer run`)."""
    args: tuple[str, ...]
    expect: str


def smoke_checks() -> tuple[SmokeCheck, ...]:
    from signer import __version__  # noqa: PLC0415 - the runtime is a dependency, read lazily

    return (
        SmokeCheck("version", "csr-signer", ("--version",), f"csr-signer {__version__}"),
        SmokeCheck(
            "bundled policies lint", "csr-signer", ("policy", "lint"), "bundled_policies: OK"
        ),
        SmokeCheck("entrypoint --help", None, ("--help",), "--signer-name"),
        SmokeCheck(
            "OTLP exporter import",
            "python",
            (
                "-c",
                "import signer.app, opentelemetry.exporter.otlp.proto.http.trace_exporter; "
                "print('imported')",
            ),
            "imported",
        ),
    )


def locked_down_run_args(
    engine: Engine, *, network: str = "none", detach: bool = False
) -> list[str]:
    """`podman run` as the chart runs the image: read-only root, UID 65532, no capabilities.

    The smoke checks run with no network and are removed when they exit; an e2e
    runs detached (kept until removed, for its logs) on the host's network.
    """
    return [
        "run",
        "--detach" if detach else "--rm",
        "--read-only",
        "--user",
        IMAGE_USER,
        "--network",
        network,
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        *engine.ulimit_args(),
    ]


def run_in_image(engine: Engine, name: str, entrypoint: str | None, *args: str) -> str:
    """stdout of one locked-down run of `name`; `BuildError` if it fails."""
    argv = locked_down_run_args(engine)
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    return engine.podman(*argv, name, *args, timeout=120)


def smoke(engine: Engine, name: str) -> list[str]:
    """Every smoke check and the image's User and Entrypoint; one line per passed check."""
    found = engine.inspect(name)
    if found is None:
        raise BuildError(f"no image {name} in {engine.storage}")
    config = found.get("Config") or {}
    passed: list[str] = []
    if config.get("User") != IMAGE_USER:
        raise BuildError(f"{name}: User is {config.get('User')!r}, want {IMAGE_USER!r}")
    passed.append(f"User {IMAGE_USER}")
    if tuple(config.get("Entrypoint") or ()) != IMAGE_ENTRYPOINT:
        raise BuildError(
            f"{name}: Entrypoint is {config.get('Entrypoint')}, want {IMAGE_ENTRYPOINT}"
        )
    passed.append(f"Entrypoint {list(IMAGE_ENTRYPOINT)}")
    for check in smoke_checks():
        out = run_in_image(engine, name, check.entrypoint, *check.args)
        if check.expect not in out:
            raise BuildError(f"{name}: {check.name}: output lacks {check.expect!r}:\n{out[-500:]}")
        passed.append(check.name)
    return passed


def export_oci(engine: Engine, name: str, archive: Path) -> Path:
    """Write `name` as an OCI archive (written beside, then renamed into place)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    engine.podman("save", "--format", "oci-archive", "--output", str(partial), name, timeout=600)
    partial.rename(archive)
    return archive


def default_archive(repo: Path = dev_settings.CHECKOUT, name: str | None = None) -> Path:
    tag = (name or image_name()).rsplit(":", 1)[-1]
    return repo / "build" / f"csr-signer-{tag}.oci.tar"


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> str:
    """stdout of `argv`, or `BuildError` with the tail of its output."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"`{' '.join(argv)}` took longer than {timeout:.0f}s") from exc
    if proc.returncode != 0:
        lines = (proc.stderr + proc.stdout).strip().splitlines()
        tail = "\n".join(line for line in lines[-20:] if "CNI config" not in line)
        raise BuildError(f"`{' '.join(argv[:6])} ...` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout
