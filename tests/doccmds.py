"""Runnable commands in the docs: find them, so the tests can run them on every CNI mode.

A page marks a fenced code block as runnable with an HTML comment right before it (blank
lines between them are allowed; nothing else is). MkDocs renders the comment invisibly, so
learners see only the block::

    <!-- run: flannel/vxlan calico
    needs: lab01
    expect: vxlan id 1
    expect: dstport 8472
    -->
    ```console
    $ lab node-shell netlab-worker -- ip -d link show flannel.1
    5: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 ...
        vxlan id 1 local 172.30.0.3 dev eth0 srcport 0 0 dstport 8472 ...
    ```

The comment holds ``key: value`` lines:

``run:`` (required, first)
    the modes the block is true for: ``cni`` (every backend of that CNI) or
    ``cni/backend``, separated by spaces or commas; ``all`` means every mode.
``needs:`` (optional)
    ``lab01``: the commands need lab 01 solved (namespace ``lab01`` with the ``server``
    and ``client`` pods on two different workers); the runner applies lab 01's setup and
    solution before it runs the block.
``expect:`` (optional, repeatable)
    a piece of text that must appear in the output of the block's commands (all of them
    together), so the excerpt a page shows cannot drift from what the engine prints.
``capture: yes`` (optional)
    the first command is a capture that stops by itself (``tcpdump -c N``); the runner
    starts it, then repeats the block's other commands (the traffic) until it ends.

Inside the block, a ``console`` block's commands are its lines starting with ``$ `` (the
other lines are output); in ``bash``/``sh``/``shell`` blocks every line that is not blank or
a comment is a command. A trailing ``# comment`` is dropped. Every command starts with
``lab`` and names the cluster ``netlab`` (nodes ``netlab-worker``...); the runner puts its own
cluster's name in its place. Placeholders in angle brackets are allowed only from
:data:`PLACEHOLDERS` (resolved from lab 01's pods, so they need ``needs: lab01``).

This module is pure (no cluster, no root): the unit tests check every marker of the docs
with it, and the root tests run what it finds.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Keys a marker may hold.
KEYS = ("run", "needs", "expect", "capture")
#: What ``needs:`` may ask for.
NEEDS = ("lab01",)
#: Placeholders a command may contain, and what they stand for (lab 01's pods).
PLACEHOLDERS = {
    "<server IP>": "the IP of pod lab01/server",
    "<client IP>": "the IP of pod lab01/client",
    "<server node>": "the node pod lab01/server runs on",
    "<client node>": "the node pod lab01/client runs on",
}
#: The cluster name the docs use; the runner replaces it with its own.
DOC_CLUSTER = "netlab"
SHELL_LANGS = ("bash", "sh", "shell")
CONSOLE_LANGS = ("console",)

_MARKER_START = re.compile(r"^\s*<!--\s*run:")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w-]*)")
_PLACEHOLDER = re.compile(r"<[^<>]+>")


class DocMarkerError(ValueError):
    """A marker or its block is malformed; the message starts with ``page:line:``."""


@dataclass(frozen=True)
class Mode:
    """One CNI mode a block applies to; ``backend`` empty means every backend of ``cni``."""

    cni: str
    backend: str = ""

    def matches(self, cni: str, backend: str) -> bool:
        return self.cni in ("all", cni) and (not self.backend or self.backend == backend)

    def __str__(self) -> str:
        return f"{self.cni}/{self.backend}" if self.backend else self.cni


@dataclass(frozen=True)
class DocCommand:
    """One command of a block, as shown on the page (``text``) and split (``argv``)."""

    text: str
    line: int
    argv: tuple[str, ...]

    def placeholders(self) -> list[str]:
        return _PLACEHOLDER.findall(self.text)

    def for_cluster(self, cluster: str, values: dict[str, str] | None = None) -> list[str]:
        """The argv for the real CLI: placeholders filled in from ``values``, ``netlab``
        replaced by ``cluster`` (as a whole name or a node-name prefix), ``lab`` dropped."""
        text = self.text
        for key, value in (values or {}).items():
            text = text.replace(key, value)
        text = re.sub(rf"(?<![\w/.-]){DOC_CLUSTER}(?=-|\b)", cluster, text)
        return list(_split(text, self.line, "")[1:])


@dataclass(frozen=True)
class RunBlock:
    """A runnable block: where it is, which modes it is for, its commands and expectations."""

    page: str
    line: int  # the line of the marker
    modes: tuple[Mode, ...]
    commands: tuple[DocCommand, ...]
    expect: tuple[str, ...] = ()
    needs: str = ""
    capture: bool = False
    lang: str = ""
    shown_output: tuple[str, ...] = field(default=(), compare=False)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def applies_to(self, cni: str, backend: str) -> bool:
        return any(m.matches(cni, backend) for m in self.modes)


def parse_page(text: str, page: str) -> list[RunBlock]:
    """Every runnable block of a Markdown page; DocMarkerError names the first bad one."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if not _MARKER_START.match(lines[i]):
            i += 1
            continue
        start = i
        comment, i = _read_comment(lines, i, page)
        while i < len(lines) and not lines[i].strip():
            i += 1
        fence = _FENCE.match(lines[i]) if i < len(lines) else None
        if fence is None:
            raise DocMarkerError(f"{page}:{start + 1}: a run marker must be followed by a "
                                 "fenced code block")
        body, i = _read_fence(lines, i, fence, page)
        blocks.append(_block(page, start + 1, comment, fence["lang"], body))
    return blocks


def parse_file(path: Path, root: Path | None = None) -> list[RunBlock]:
    name = str(path.relative_to(root)) if root else str(path)
    return parse_page(path.read_text(encoding="utf-8"), name)


def blocks_for(blocks: Iterable[RunBlock], cni: str, backend: str) -> list[RunBlock]:
    return [b for b in blocks if b.applies_to(cni, backend)]


def check_blocks(blocks: Sequence[RunBlock], known: dict[str, Sequence[str]]) -> list[str]:
    """Problems the parser cannot see alone: modes that do not exist (``known`` maps each CNI
    to its backends), commands that are not ``lab`` commands, unknown placeholders, and
    placeholders without ``needs: lab01``."""
    problems = []
    for block in blocks:
        for mode in block.modes:
            if mode.cni == "all":
                continue
            if mode.cni not in known:
                problems.append(f"{block.where}: unknown CNI {mode.cni!r}")
            elif mode.backend and mode.backend not in known[mode.cni]:
                problems.append(f"{block.where}: {mode.cni} has no backend {mode.backend!r}")
        for command in block.commands:
            if not command.argv or command.argv[0] != "lab":
                problems.append(f"{block.page}:{command.line}: not a `lab` command: "
                                f"{command.text!r}")
            for holder in command.placeholders():
                if holder not in PLACEHOLDERS:
                    problems.append(f"{block.page}:{command.line}: unknown placeholder "
                                    f"{holder} (known: {', '.join(PLACEHOLDERS)})")
                elif block.needs != "lab01":
                    problems.append(f"{block.page}:{command.line}: {holder} needs "
                                    "`needs: lab01` in the marker")
        if block.capture and len(block.commands) < 2:
            problems.append(f"{block.where}: `capture: yes` needs a capture command and at "
                            "least one command that makes traffic")
    return problems


# ---- helpers ------------------------------------------------------------------------------


def _read_comment(lines: list[str], i: int, page: str) -> tuple[list[str], int]:
    """The comment's text lines (without ``<!--``/``-->``) and the index after it."""
    parts = []
    start = i
    while i < len(lines):
        line = lines[i]
        if i == start:
            line = line.split("<!--", 1)[1]
        end = "-->" in line
        parts.append(line.split("-->", 1)[0])
        i += 1
        if end:
            return [p.strip() for p in parts if p.strip()], i
    raise DocMarkerError(f"{page}:{start + 1}: the run marker is never closed with -->")


def _read_fence(lines: list[str], i: int, fence: re.Match[str],
                page: str) -> tuple[list[tuple[int, str]], int]:
    opening, indent = fence["fence"], len(fence["indent"])
    start = i
    body: list[tuple[int, str]] = []
    i += 1
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(opening[0] * len(opening)) and not stripped.strip(opening[0]):
            return body, i + 1
        body.append((i + 1, lines[i][indent:] if lines[i][:indent].isspace() else lines[i]))
        i += 1
    raise DocMarkerError(f"{page}:{start + 1}: the code block is never closed")


def _block(page: str, line: int, comment: list[str], lang: str,
           body: list[tuple[int, str]]) -> RunBlock:
    where = f"{page}:{line}"
    values: dict[str, list[str]] = {}
    for entry in comment:
        key, sep, value = entry.partition(":")
        key = key.strip()
        if not sep or key not in KEYS:
            raise DocMarkerError(f"{where}: marker line {entry!r}: expected `key: value` with "
                                 f"a key of {', '.join(KEYS)}")
        values.setdefault(key, []).append(value.strip())
    for key in ("run", "needs", "capture"):
        if len(values.get(key, [])) > 1:
            raise DocMarkerError(f"{where}: {key!r} is given twice")
    modes = tuple(_mode(word, where) for word in re.split(r"[\s,]+", values["run"][0]) if word)
    if not modes:
        raise DocMarkerError(f"{where}: `run:` names no mode")
    needs = values.get("needs", [""])[0]
    if needs and needs not in NEEDS:
        raise DocMarkerError(f"{where}: needs {needs!r}: expected one of {', '.join(NEEDS)}")
    capture_word = values.get("capture", ["no"])[0]
    if capture_word not in ("yes", "no"):
        raise DocMarkerError(f"{where}: capture {capture_word!r}: expected yes or no")
    expect = tuple(values.get("expect", []))
    if any(not e for e in expect):
        raise DocMarkerError(f"{where}: an `expect:` line is empty")
    commands, shown = _commands(lang, body, where, page)
    if not commands:
        raise DocMarkerError(f"{where}: the block holds no command")
    return RunBlock(page, line, modes, tuple(commands), expect, needs, capture_word == "yes",
                    lang, tuple(shown))


def _mode(word: str, where: str) -> Mode:
    cni, _, backend = word.partition("/")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", cni) or (backend and not re.fullmatch(
            r"[a-z][a-z0-9-]*", backend)):
        raise DocMarkerError(f"{where}: mode {word!r}: expected cni or cni/backend")
    if cni == "all" and backend:
        raise DocMarkerError(f"{where}: mode {word!r}: `all` takes no backend")
    return Mode(cni, backend)


def _commands(lang: str, body: list[tuple[int, str]], where: str,
              page: str) -> tuple[list[DocCommand], list[str]]:
    commands, shown = [], []
    if lang in CONSOLE_LANGS:
        for number, text in body:
            if text.startswith("$ "):
                commands.append(_command(text[2:], number, page))
            else:
                shown.append(text)
    elif lang in SHELL_LANGS:
        for number, text in body:
            if text.strip() and not text.lstrip().startswith("#"):
                commands.append(_command(text, number, page))
    else:
        raise DocMarkerError(f"{where}: a runnable block must be console or bash, not "
                             f"{lang or 'plain'!r}")
    return commands, shown


def _command(text: str, number: int, page: str) -> DocCommand:
    shown = text.split(" #", 1)[0].rstrip() if " #" in text else text.rstrip()
    return DocCommand(shown, number, _split(shown, number, page))


def _split(text: str, number: int, page: str) -> tuple[str, ...]:
    """Split like a POSIX shell (quotes, no expansion); ``# ...`` ends the command."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return tuple(lexer)
    except ValueError as err:
        raise DocMarkerError(f"{page}:{number}: cannot split {text!r}: {err}") from err
