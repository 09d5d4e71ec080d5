"""A small Dockerfile reader for tests: instructions per stage, no execution.

Just enough syntax for our Dockerfile: comments, backslash continuations,
``FROM image [AS name]``, and the JSON (exec) form. Anything fancier (heredocs,
parser directives other than ``syntax``) is out of scope on purpose.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, COPY, ..."""
    args: str
    """Everything after the keyword, continuations joined with spaces."""

    def words(self) -> list[str]:
        if self.args.startswith("["):
            value: list[str] = json.loads(self.args)
            return value
        return shlex.split(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            words = instruction.words()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"{keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Build-context paths COPY'd into `stage` (not ``--from`` copies)."""
    sources: list[str] = []
    for copy in stage.all("COPY"):
        words = copy.words()
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` exclude `path` (last matching rule wins).

    Approximates Docker's matcher for the patterns we use: a rule matching a
    directory applies to everything below it, ``!`` re-includes.
    """
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rule = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(p, rule) for p in prefixes):
            excluded = not negate
    return excluded


def dockerignore_patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
