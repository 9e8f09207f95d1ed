"""Parse ``lab ...`` command lines with the real click CLI, without running them.

Workflows and docs show ``lab`` commands; these helpers make sure each one would be
accepted by the CLI as it is (the command exists, every option is known, every required
argument is there), so a renamed flag breaks a test instead of a course's CI.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import click

from labs.cli.main import cli

#: Where a command ends in a shell line: a pipe, a redirection, ``;``, ``&&``, ``||``.
_SHELL_END = re.compile(r"\s+(?:\d?>|\||;|&&)")


def lab_argv(line: str) -> list[str] | None:
    """The arguments after ``./lab`` (anywhere in a shell line: after ``sudo`` and its
    options) or ``lab`` / ``.venv/bin/lab`` (starting the line), or None when it runs no lab."""
    match = (re.search(r"(?:^|\s)\./lab\s", line + " ")
             or re.match(r"\s*(?:sudo\s+)?(?:\.venv/bin/)?lab\s", line + " "))
    if match is None:
        return None
    rest = _SHELL_END.split(line[match.end():], maxsplit=1)[0]
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def resolve(argv: Sequence[str]) -> tuple[click.Command, list[str], str]:
    """The click command ``argv`` names, the arguments left for it, and its full name."""
    group: click.Group = cli
    names: list[str] = []
    args = list(argv)
    while True:
        if not args:
            raise AssertionError(f"`lab {' '.join(names)}` names no command")
        name = args.pop(0)
        command = group.commands.get(name)
        if command is None:
            raise AssertionError(f"`lab {' '.join([*names, name])}`: no such command")
        names.append(name)
        if isinstance(command, click.Group):
            group = command
            continue
        return command, args, " ".join(names)


def _known_options(command: click.Command) -> set[str]:
    return {o for p in command.params if isinstance(p, click.Option) for o in p.opts}


def parse(argv: Sequence[str]) -> click.Context:
    """Parse ``lab ARGV`` as the CLI would; click's usage error says what is wrong."""
    command, args, name = resolve(argv)
    return command.make_context(f"lab {name}", args, resilient_parsing=False)
