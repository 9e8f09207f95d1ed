"""Output for people (rich) and for programs (JSON), from the same result objects."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# The texts below are plain text (paths, error messages, field paths): they are escaped, so
# a "[...]" in them is shown as written instead of being taken for rich markup and dropped.


def step(text: str) -> None:
    """One line per step of a long operation."""
    err.print(f"[cyan]•[/cyan] {escape(text)}")


def note(text: str) -> None:
    err.print(f"[dim]{escape(text)}[/dim]")


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(text)}")


def fail(text: str) -> None:
    err.print(f"[red]error:[/red] {escape(text)}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain, kubectl-like table: columns padded, never truncated, readable when piped.

    Cells may carry rich markup (``[green]ok[/green]``); widths count the visible text.
    """
    cells = [[str(c) for c in r] for r in rows]
    visible = [[Text.from_markup(c).plain for c in r] for r in cells]
    widths = [len(h) for h in headers]
    for r in visible:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    last = len(headers) - 1

    def line(raw: Sequence[str], shown: Sequence[str]) -> str:
        return "".join(
            c + ("" if i == last else " " * (widths[i] - len(v) + 3))
            for i, (c, v) in enumerate(zip(raw, shown, strict=True))
        ).rstrip()

    out.print(escape(line(headers, headers)), markup=True, crop=False, overflow="ignore")
    for raw, shown in zip(cells, visible, strict=True):
        out.print(line(raw, shown), crop=False, overflow="ignore")


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask on a terminal; without one (CI, pipes) only --yes says yes."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        err.print(escape(f"{question} [no terminal to ask: pass --yes to confirm]"))
        return False
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")
