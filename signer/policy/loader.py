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

Limits. Policy files are edited by people and hot-reloaded by the controller,
so a hostile or broken directory must cost bounded time and memory, and must
come back as Problems, never as an exception (a crash loop would stop all
signing, and the previous good set is what keeps serving meanwhile):

- MAX_FILES files, MAX_FILE_BYTES per file and MAX_DIRECTORY_BYTES for all
  files together, checked before parsing: files are read with a cap, never
  whole. Pure-Python YAML scanning costs seconds per MiB, so these bound
  the time of a load whatever the content.
- MAX_DEPTH levels of nesting, checked as the scanner meets each `[` or `{`
  and as the composer descends, so a file of `[[[[...` or `- - - -...` is
  refused at level 65 instead of blowing Python's recursion limit (the
  composer recurses per level). Aliases count with the depth they splice in.
- MAX_FILE_NODES and MAX_DIRECTORY_NODES after alias expansion, counted by
  the composer with one counter shared by every document of a file and every
  file of the directory. The composer knows the expanded size of every
  anchored node, so an alias is charged its full size the moment it is seen:
  a billion-laughs file is refused at its first oversized alias, without
  expanding anything, however many documents or files repeat the trick.
- MAX_NUMBER_LENGTH characters for an integer or float, checked before it is
  converted: policies need nothing near that, and a 5,000-digit integer would
  otherwise hit Python's int max str digits limit (ValueError).

Anything else that goes wrong, including a loader bug, becomes a Problem
naming the exception type: `policy lint` prints it and the controller
reports it, rather than either showing a traceback.
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

_MIB = 1024 * 1024
MAX_FILE_BYTES = 1 * _MIB
"""Per file. A ConfigMap (the usual source) holds at most 1 MiB in all."""
MAX_DIRECTORY_BYTES = 2 * _MIB
"""All policy files together: twice what one ConfigMap holds. Scanning YAML in
pure Python costs 1-5 s per MiB, so this is what bounds the time of one load."""
MAX_FILES = 1_000
"""Policy files in the directory: empty files count towards no byte limit."""
MAX_DEPTH = 64
"""Nesting levels, aliases expanded. A policy nests 8 deep; PyYAML recurses per level."""
MAX_FILE_NODES = 50_000
"""YAML nodes per file, aliases expanded. The bundled files hold about 100 each."""
MAX_DIRECTORY_NODES = 100_000
"""YAML nodes across the directory, aliases expanded: bounds the time one load can take."""
MAX_NUMBER_LENGTH = 20
"""Characters of an integer or float, sign and `_` aside: 2**64 has 20 digits."""

_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


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

    It reads as the loader does (_read_files): at most MAX_FILE_BYTES + 1
    bytes a file, nothing past the directory limits. Bytes the loader does
    not read cannot change its outcome, and the poll must not read or hold
    more than a load would.
    """
    digest = hashlib.sha256()
    if not directory.is_dir():
        return "not a directory"
    files = policy_files(directory)
    for path in files:
        digest.update(path.name.encode() + b"\0")
    read = _read_files(directory, files)
    for path, data in read.contents:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(data).digest())
    for problem in read.problems:
        digest.update(str(problem).encode() + b"\0")
    return digest.hexdigest()


def load_policies(directory: Path) -> PolicySet:
    """Every `*.yaml`/`*.yml` file directly in `directory`, in file name order.

    Dot files are skipped (a ConfigMap volume keeps its `..data` machinery
    there). Raises PolicyLoadError listing every problem in every file, and
    nothing else: see the module docstring for the limits that keep a hostile
    directory cheap to refuse.
    """
    try:
        return _load_directory(directory)
    except PolicyLoadError:
        raise
    except Exception as exc:  # the safety net: a Problem, not a traceback
        raise PolicyLoadError([_unexpected(str(directory), exc)]) from exc


def _load_directory(directory: Path) -> PolicySet:
    if not directory.is_dir():
        raise PolicyLoadError([Problem(str(directory), None, "", "not a directory")])
    try:
        files = policy_files(directory)
    except OSError as exc:
        raise PolicyLoadError(
            [Problem(str(directory), None, "", f"cannot read: {exc.strerror or exc}")]
        ) from None
    if not files:
        raise PolicyLoadError(
            [Problem(str(directory), None, "", "no policy files (*.yaml, *.yml)")]
        )

    read = _read_files(directory, files)
    problems = list(read.problems)
    if not read.complete:
        raise PolicyLoadError(problems)
    policies: list[Policy] = []
    signers: list[SignerSettings] = []
    policy_origins: dict[str, str] = {}
    signer_origins: dict[str, str] = {}
    nodes = _NodeCount()
    for path, data in read.contents:
        try:
            documents = _load_file(path, data, nodes, problems)
            for document in documents:
                # Names are checked on the raw data, so a duplicate is reported
                # even when either document has other problems.
                _check_unique(document, "policies", "policy name", policy_origins, problems)
                _check_unique(document, "signers", "settings for signer", signer_origins, problems)
                if document.doc is not None:
                    policies.extend(document.doc.policies)
                    signers.extend(document.doc.signers)
        except Exception as exc:  # the safety net, per file: the others still report
            problems.append(_unexpected(str(path), exc))
        if nodes.exhausted:
            break
    if problems:
        raise PolicyLoadError(problems)
    return PolicySet.of(policies, signers, policy_origins)


@dataclass(frozen=True, slots=True)
class _Read:
    """What _read_files read, before anything is parsed."""

    contents: list[tuple[Path, bytes]]
    """Each file within MAX_FILE_BYTES, with its bytes."""
    problems: list[Problem]
    complete: bool
    """False when a directory limit was passed: nothing should be parsed then."""


def _read_files(directory: Path, files: Sequence[Path]) -> _Read:
    """The files' bytes, within the byte and file-count limits.

    Checked before parsing, so an oversized directory costs only the reading,
    and read with a cap rather than trusting a stat: a file that grows
    meanwhile, or whose size stat misreports, still cannot make us hold more
    than MAX_FILE_BYTES + 1 bytes of it.
    """
    if len(files) > MAX_FILES:
        message = f"{len(files)} policy files, more than the limit of {MAX_FILES}"
        return _Read([], [Problem(str(directory), None, "", message)], complete=False)
    contents: list[tuple[Path, bytes]] = []
    problems: list[Problem] = []
    total = 0
    for path in files:
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            problems.append(Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}"))
            continue
        if len(data) > MAX_FILE_BYTES:
            message = f"larger than {_mib(MAX_FILE_BYTES)}, the limit for one policy file"
            problems.append(Problem(str(path), None, "", message))
            continue
        total += len(data)
        if total > MAX_DIRECTORY_BYTES:
            message = (
                f"the policy files total more than {_mib(MAX_DIRECTORY_BYTES)}, "
                f"the limit for a directory (passed at {path.name})"
            )
            problems.append(Problem(str(directory), None, "", message))
            return _Read(contents, problems, complete=False)
        contents.append((path, data))
    return _Read(contents, problems, complete=True)


def _mib(size: int) -> str:
    return f"{size / _MIB:g} MiB"


def _unexpected(file: str, exc: Exception) -> Problem:
    """The safety net's Problem: the exception's type, no traceback."""
    if isinstance(exc, RecursionError):
        return Problem(file, None, "", "cannot load: nested too deeply (RecursionError)")
    if isinstance(exc, MemoryError):
        return Problem(file, None, "", "cannot load: out of memory (MemoryError)")
    return Problem(file, None, "", f"cannot load: unexpected {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class _Document:
    file: str
    root: yaml.Node
    data: Any
    doc: PolicyDocument | None
    """None when the document did not validate."""
    keys: _KeyIndex
    """For _locate; shared by every lookup in this document."""


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
        line, field = _locate(document.root, (section, index, "name"), document.keys)
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


def _load_file(
    path: Path, data: bytes, nodes: _NodeCount, problems: list[Problem]
) -> list[_Document]:
    """The file's documents, validated or not; problems go to `problems`."""
    file = str(path)
    out: list[_Document] = []
    for source in read_yaml_documents(
        file, data, problems, expected="a mapping with signers: and policies:", nodes=nodes
    ):
        doc: PolicyDocument | None = None
        try:
            doc = PolicyDocument.model_validate(source.data)
        except ValidationError as exc:
            problems.extend(source.problems(exc))
        if doc is not None and not doc.policies and not doc.signers:
            problems.append(
                Problem(file, source.line, "", "the document defines no policies or signers")
            )
        out.append(_Document(file, source.root, source.data, doc, source.keys))
    return out


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One YAML document read as policy files are: plain data plus the node tree for lines.

    Other files people write next to policies (`policy test` suites) are read
    with the same limits, the same refusals (duplicate keys, merge keys, odd
    tags) and the same `file:line: field: problem` locations.
    """

    file: str
    root: yaml.MappingNode
    data: dict[str, Any]
    keys: _KeyIndex

    @property
    def line(self) -> int:
        """1-based line where the document starts."""
        return self.root.start_mark.line + 1

    def locate(self, loc: Sequence[int | str]) -> tuple[int, str]:
        """The line and display path of a location such as ("tests", 0, "csr")."""
        return _locate(self.root, loc, self.keys)

    def problem(self, loc: Sequence[int | str], message: str) -> Problem:
        line, field = self.locate(loc)
        return Problem(self.file, line, field, message)

    def problems(self, exc: ValidationError, prefix: Sequence[int | str] = ()) -> list[Problem]:
        """One Problem per pydantic error, located in this document.

        `prefix` is where the validated value sits, when it is not the whole document.
        """
        out: list[Problem] = []
        for err in exc.errors(include_url=False):
            err["loc"] = (*prefix, *err["loc"])
            out.append(_problem(self.file, self.root, err, self.keys))
        return out


def read_yaml_documents(
    file: str,
    data: bytes,
    problems: list[Problem],
    *,
    expected: str,
    nodes: _NodeCount | None = None,
) -> list[YamlDocument]:
    """Every mapping document in `data`; anything wrong goes to `problems`.

    `expected` completes "a document must be ..." for a document that is not
    a mapping. `nodes` is shared across the files of one load (a fresh count
    for a file read on its own).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(file, None, "", "not UTF-8 text"))
        return []
    try:
        roots = _compose_all(text, nodes if nodes is not None else _NodeCount())
    except _LimitExceeded as exc:
        problems.append(Problem(file, exc.line, "", exc.message))
        return []
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        message = ": ".join(filter(None, (exc.context, exc.problem)))
        problems.append(Problem(file, line, "", f"invalid YAML: {message}"))
        return []
    except yaml.YAMLError as exc:
        problems.append(Problem(file, None, "", f"invalid YAML: {exc}"))
        return []

    out: list[YamlDocument] = []
    for root in roots:
        if not isinstance(root, yaml.MappingNode):
            line = root.start_mark.line + 1
            problems.append(Problem(file, line, "", f"a document must be {expected}"))
            continue
        value = _Converter(file, problems).convert(root, "")
        out.append(YamlDocument(file, root, value, {}))
    if not roots:
        problems.append(Problem(file, None, "", "the file holds no YAML document"))
    return out


def _compose_all(text: str, nodes: _NodeCount) -> list[yaml.Node]:
    """yaml.compose_all with _BoundedLoader, which needs `nodes` and so a call of its own."""
    loader = _BoundedLoader(text, nodes)  # raises ReaderError on control characters
    try:
        roots: list[yaml.Node] = []
        while loader.check_node():
            root = loader.get_node()
            if root is not None:
                roots.append(root)
        return roots
    finally:
        loader.dispose()


class _NodeCount:
    """YAML nodes composed so far in the directory, aliases expanded.

    One instance per load, shared by every file, so the bound is on the whole
    directory rather than on each document (150 documents each just under a
    per-document bound were what made billion-laughs slow before).
    """

    def __init__(self) -> None:
        self.used = 0
        self.exhausted = False
        """Set when MAX_DIRECTORY_NODES is passed: later files are not read."""


class _LimitExceeded(Exception):
    """A file passed a limit of the module docstring; becomes one Problem."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        """1-based, where the limit was passed."""
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer enforces MAX_DEPTH and the node limits.

    PyYAML's composer recurses once per nesting level and shares one node
    object between an anchor and all its aliases; expansion happens later,
    in _Converter. Counting here, while composing, stops work early: nesting
    is refused at the first level too many, and an alias is charged the
    expanded size of its anchored node (recorded when that node was
    finished) before anything is expanded. Besides the composer, only the
    scanner's handling of `[` and `{` is changed (fetch_flow_collection_start);
    the rest of PyYAML's scanning and parsing is iterative and linear, if slow
    (1-5 s per MiB, which is why the byte limits matter).
    """

    def __init__(self, text: str, nodes: _NodeCount) -> None:
        super().__init__(text)
        self._directory_nodes = nodes
        self._file_nodes = 0
        self._depth = 0
        """Nesting level of the node being composed; the root is 1."""
        self._deepest = 0
        """Deepest level, aliases expanded, reached under the current node."""
        self._expanded: dict[str, tuple[int, int]] = {}
        """Per finished anchor of this document: (nodes, levels) once expanded."""

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        """Refuse a `[` or `{` nested deeper than MAX_DEPTH, as the scanner meets it.

        The composer would refuse it too, but too late: PyYAML's scanner keeps
        one pending simple key per open flow level and rescans them all for
        every token, while reading up to 1,024 characters ahead. On a line of
        `[[[[...` that is about a million steps (0.4 s) before the composer
        sees its first node; refused here, the same file costs 65 tokens.
        """
        if self.flow_level >= MAX_DEPTH:
            raise _LimitExceeded(self.line + 1, _TOO_DEEP)
        super().fetch_flow_collection_start(TokenClass)

    def compose_document(self) -> yaml.Node | None:
        self._expanded = {}  # anchors are per document, as in PyYAML
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.NodeEvent = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            # An anchor still being composed (a recursive alias, which
            # _Converter reports) or an undefined one (which PyYAML reports)
            # counts as one node.
            nodes, levels = self._expanded.get(event.anchor or "", (1, 1))
            self._charge(nodes, self._depth + levels, line, alias=True)
            return super().compose_node(parent, index)
        nodes_before, deepest_outside = self._file_nodes, self._deepest
        self._depth += 1
        self._charge(1, self._depth, line)
        self._deepest = self._depth
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self._expanded[event.anchor] = (
                self._file_nodes - nodes_before,
                self._deepest - self._depth + 1,
            )
        self._deepest = max(self._deepest, deepest_outside)
        self._depth -= 1
        return node

    def _charge(self, nodes: int, depth: int, line: int | None, *, alias: bool = False) -> None:
        """Count `nodes` more, the deepest at level `depth`; raise past a limit."""
        if depth > MAX_DEPTH:
            raise _LimitExceeded(
                line, f"{_TOO_DEEP} once aliases are expanded" if alias else _TOO_DEEP
            )
        self._deepest = max(self._deepest, depth)
        self._file_nodes += nodes
        if self._file_nodes > MAX_FILE_NODES:
            raise _LimitExceeded(
                line,
                f"more than {MAX_FILE_NODES:,} YAML nodes in one file "
                "(an alias counts as every node it repeats)",
            )
        self._directory_nodes.used += nodes
        if self._directory_nodes.used > MAX_DIRECTORY_NODES:
            self._directory_nodes.exhausted = True
            raise _LimitExceeded(
                line,
                f"more than {MAX_DIRECTORY_NODES:,} YAML nodes in the policy directory "
                "(an alias counts as every node it repeats); later files were not read",
            )


class _Converter:
    """YAML nodes -> plain data, refusing what PyYAML would silently accept.

    Plain YAML only: mappings with string keys (no duplicates, no `<<` merge
    keys), sequences and scalars with the standard tags. Anchors and aliases
    work; _BoundedLoader has already bounded the depth and the number of
    nodes their expansion visits here. Numbers longer than MAX_NUMBER_LENGTH
    are refused before conversion (Python refuses to parse very long
    integers, and nothing in a policy needs one).
    """

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self._file = file
        self._problems = problems
        self._constructor = yaml.constructor.SafeConstructor()
        self._stack: set[int] = set()

    def convert(self, node: yaml.Node, path: str) -> Any:
        """`node` as plain data; `path` is its field, as Problem shows it."""
        if id(node) in self._stack:
            self._report(node, "recursive alias")
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _NUMBER_TAGS and _number_length(node.value) > MAX_NUMBER_LENGTH:
                self._report(node, f"number too long (over {MAX_NUMBER_LENGTH} characters)", path)
                return None
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
                return [self.convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self._stack.discard(id(node))

    def _mapping(self, node: yaml.Node, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._report(key_node, "merge keys (<<) are not supported: write the fields out")
                continue
            reported = len(self._problems)
            key = self.convert(key_node, path)
            if not isinstance(key, str):
                if len(self._problems) == reported:
                    self._report(key_node, f"keys must be strings, not {key!r}")
                continue
            if key in out:
                self._report(key_node, f"duplicate key {key!r}")
                continue
            out[key] = self.convert(value_node, f"{path}.{key}" if path else key)
        return out

    def _report(self, node: yaml.Node, message: str, field: str = "") -> None:
        self._problems.append(Problem(self._file, node.start_mark.line + 1, field, message))


def _number_length(text: str) -> int:
    """Characters of a YAML int or float as PyYAML reads it: sign and `_` do not count."""
    return len(text.lstrip("+-").replace("_", ""))


def _problem(file: str, root: yaml.Node, err: ErrorDetails, keys: _KeyIndex) -> Problem:
    line, field = _locate(root, err["loc"], keys)
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


_KeyIndex = dict[int, dict[str, tuple[yaml.Node, yaml.Node]]]
"""id(mapping node) -> its first (key node, value node) per key, built on first use."""


def _locate(root: yaml.Node, loc: Sequence[int | str], keys: _KeyIndex) -> tuple[int, str]:
    """The line and display path of a pydantic error location in the node tree.

    Walks as deep as the YAML goes. Location parts that are not in the YAML
    are skipped when more follow (pydantic adds union tags such as "RSA")
    and shown when last (a missing field, located at its parent mapping).

    Mappings are looked up through `keys`, an index built once per mapping:
    a mapping of 25,000 unknown keys has as many errors, and a linear search
    for each took 40 s.
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
            match = _key_index(node, keys).get(part)
            if match is not None:
                key_node, node = match
                line = key_node.start_mark.line + 1
                path += f".{part}" if path else part
                continue
        if last:
            path += f".{part}" if path else str(part)
    return line, path


def _key_index(node: yaml.MappingNode, keys: _KeyIndex) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    index = keys.get(id(node))
    if index is None:
        index = {}
        for key_node, value_node in node.value:
            if isinstance(key_node.value, str):
                index.setdefault(key_node.value, (key_node, value_node))
        keys[id(node)] = index
    return index
