"""Policy files -> PolicySet. The only module of `signer.policy` that does I/O.

All or nothing: every file in the directory is read and validated, every
problem is collected with its file, line and field, and a PolicySet is
returned only if there were none. A half-loaded policy directory would make
decisions nobody reviewed, so an invalid file fails the whole load (and the
controller's readiness) instead.

Line numbers come from PyYAML's node API: documents are composed to nodes,
converted to plain data by hand (so duplicate keys, which PyYAML would
silently overwrite, are errors), validated by the pydantic schema, and each
validation error's location, such as ("policies", 0, "allowed", "dnsNames", 2),
is walked back down the node tree to the line it came from.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from signer.policy.policyset import PolicySet
from signer.policy.schema import Policy, PolicyDocument, SignerSettings

POLICY_SUFFIXES = (".yaml", ".yml")
_MAX_NODES = 100_000
"""Bound on nodes visited per document: YAML aliases can expand exponentially."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, located as precisely as we can."""

    file: str
    line: int | None
    """1-based; None when the problem is with the file as a whole."""
    field: str
    """Dotted path such as `policies[0].allowed.dnsNames[2]`; empty if none."""
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyLoadError(Exception):
    """The policy directory is invalid; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def bundled_policies_dir() -> Path:
    """The policies shipped with the package (the repository's `policies/`).

    `signer/bundled_policies` is a symlink to `../policies` in a checkout and
    a real directory inside a built wheel, so both resolve here.
    """
    return Path(str(importlib.resources.files("signer").joinpath("bundled_policies")))


def policy_files(directory: Path) -> list[Path]:
    """The files `load_policies` reads: `*.yaml`/`*.yml` directly in `directory`, sorted.

    Dot files are skipped (a ConfigMap volume keeps its `..data` machinery there);
    symlinks are followed, as a ConfigMap volume's files are symlinks.
    """
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def fingerprint(directory: Path) -> str:
    """A digest of exactly what `load_policies` would read: names and contents.

    The controller polls this to hot-reload. It must see the same files as the
    loader, whatever the path looks like (relative, `..`, a ConfigMap volume),
    or an edit is never noticed. Raises OSError when the directory is unreadable.
    """
    digest = hashlib.sha256()
    if not directory.is_dir():
        return "not a directory"
    for path in policy_files(directory):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_policies(directory: Path) -> PolicySet:
    """Every `*.yaml`/`*.yml` file directly in `directory`, in file name order.

    Dot files are skipped (a ConfigMap volume keeps its `..data` machinery
    there). Raises PolicyLoadError listing every problem in every file.
    """
    if not directory.is_dir():
        raise PolicyLoadError([Problem(str(directory), None, "", "not a directory")])
    files = policy_files(directory)
    if not files:
        raise PolicyLoadError(
            [Problem(str(directory), None, "", "no policy files (*.yaml, *.yml)")]
        )

    problems: list[Problem] = []
    policies: list[Policy] = []
    signers: list[SignerSettings] = []
    policy_origins: dict[str, str] = {}
    signer_origins: dict[str, str] = {}
    for path in files:
        for document in _load_file(path, problems):
            # Names are checked on the raw data, so a duplicate is reported
            # even when either document has other problems.
            _check_unique(document, "policies", "policy name", policy_origins, problems)
            _check_unique(document, "signers", "settings for signer", signer_origins, problems)
            if document.doc is not None:
                policies.extend(document.doc.policies)
                signers.extend(document.doc.signers)
    if problems:
        raise PolicyLoadError(problems)
    return PolicySet.of(policies, signers, policy_origins)


@dataclass(frozen=True, slots=True)
class _Document:
    file: str
    root: yaml.Node
    data: Any
    doc: PolicyDocument | None
    """None when the document did not validate."""


def _check_unique(
    document: _Document,
    section: str,
    what: str,
    origins: dict[str, str],
    problems: list[Problem],
) -> None:
    items = document.data.get(section) if isinstance(document.data, dict) else None
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        line, field = _locate(document.root, (section, index, "name"))
        if name in origins:
            problems.append(
                Problem(
                    document.file,
                    line,
                    field,
                    f"duplicate {what} {name!r} (first defined at {origins[name]})",
                )
            )
        else:
            origins[name] = f"{document.file}:{line}"


def _load_file(path: Path, problems: list[Problem]) -> list[_Document]:
    """The file's documents, validated or not; problems go to `problems`."""
    file = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        problems.append(Problem(file, None, "", f"cannot read: {exc.strerror or exc}"))
        return []
    except UnicodeDecodeError:
        problems.append(Problem(file, None, "", "not UTF-8 text"))
        return []
    try:
        roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        message = ": ".join(filter(None, (exc.context, exc.problem)))
        problems.append(Problem(file, line, "", f"invalid YAML: {message}"))
        return []
    except yaml.YAMLError as exc:
        problems.append(Problem(file, None, "", f"invalid YAML: {exc}"))
        return []

    out: list[_Document] = []
    for root in roots:
        line = root.start_mark.line + 1
        if not isinstance(root, yaml.MappingNode):
            problems.append(
                Problem(file, line, "", "a document must be a mapping with signers: and policies:")
            )
            continue
        data = _Converter(file, problems).convert(root)
        doc: PolicyDocument | None = None
        try:
            doc = PolicyDocument.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problem(file, root, err) for err in exc.errors(include_url=False))
        if doc is not None and not doc.policies and not doc.signers:
            problems.append(Problem(file, line, "", "the document defines no policies or signers"))
        out.append(_Document(file, root, data, doc))
    if not roots:
        problems.append(Problem(file, None, "", "the file holds no YAML document"))
    return out


class _Converter:
    """YAML nodes -> plain data, refusing what PyYAML would silently accept.

    Plain YAML only: mappings with string keys (no duplicates, no `<<` merge
    keys), sequences and scalars with the standard tags. Anchors and aliases
    work, within a bound on the nodes visited.
    """

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self._file = file
        self._problems = problems
        self._constructor = yaml.constructor.SafeConstructor()
        self._visited = 0
        self._stack: set[int] = set()

    def convert(self, node: yaml.Node) -> Any:
        self._visited += 1
        if self._visited == _MAX_NODES + 1:
            self._report(node, f"more than {_MAX_NODES} nodes (alias expansion?)")
        if self._visited > _MAX_NODES:
            return None
        if id(node) in self._stack:
            self._report(node, "recursive alias")
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._constructor.construct_object(node, deep=True)
            except yaml.constructor.ConstructorError as exc:
                self._report(node, f"cannot read value: {exc.problem}")
                return None
        standard = "seq" if isinstance(node, yaml.SequenceNode) else "map"
        if node.tag != f"tag:yaml.org,2002:{standard}":
            self._report(node, f"unsupported tag {node.tag!r}")
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item) for item in node.value]
            return self._mapping(node)
        finally:
            self._stack.discard(id(node))

    def _mapping(self, node: yaml.Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if self._visited > _MAX_NODES:
                break
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._report(key_node, "merge keys (<<) are not supported: write the fields out")
                continue
            key = self.convert(key_node)
            if not isinstance(key, str):
                self._report(key_node, f"keys must be strings, not {key!r}")
                continue
            if key in out:
                self._report(key_node, f"duplicate key {key!r}")
                continue
            out[key] = self.convert(value_node)
        return out

    def _report(self, node: yaml.Node, message: str) -> None:
        self._problems.append(Problem(self._file, node.start_mark.line + 1, "", message))


def _problem(file: str, root: yaml.Node, err: ErrorDetails) -> Problem:
    line, field = _locate(root, err["loc"])
    kind = err["type"]
    if kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = err["msg"]
    return Problem(file, line, field, message)


def _locate(root: yaml.Node, loc: Sequence[int | str]) -> tuple[int, str]:
    """The line and display path of a pydantic error location in the node tree.

    Walks as deep as the YAML goes. Location parts that are not in the YAML
    are skipped when more follow (pydantic adds union tags such as "RSA")
    and shown when last (a missing field, located at its parent mapping).
    """
    node = root
    line = root.start_mark.line + 1
    path = ""
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
            if 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            path += f"[{part}]"
            continue
        if isinstance(part, str) and isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is not None:
                key_node, node = match
                line = key_node.start_mark.line + 1
                path += f".{part}" if path else part
                continue
        if last:
            path += f".{part}" if path else str(part)
    return line, path
