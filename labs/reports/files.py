"""Writing report files: checked before a run, written whole or not at all.

A check run takes seconds to minutes; finding out afterwards that ``--junit`` points into a
folder that cannot be written wastes it. :func:`ensure_writable` creates the folder and
proves it takes a file *before* the run; :func:`write_report` then writes atomically
(temporary file, fsync, rename), so a CI step never reads half a report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clusters.fileio import atomic_write

REPORT_MODE = 0o644  # reports are read by other tools and people, unlike state files


class ReportFileError(Exception):
    """A report file cannot be written; the message names the path and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def ensure_writable(path: Path) -> None:
    """Create ``path``'s folder and prove a file can be made there (also as root, where
    permission bits say little: a read-only file system or a file in the folder's place
    still refuse). An existing ``path`` must be a file we may replace."""
    if path.is_dir():
        raise ReportFileError(path, "it is a directory")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ReportFileError(path, f"{blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ReportFileError(path, _reason(err)) from err


def ensure_appendable(path: Path) -> None:
    """Prove ``path`` (a file another program owns, like ``$GITHUB_OUTPUT``) takes appends."""
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as err:
        raise ReportFileError(path, _reason(err)) from err


def write_report(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    try:
        atomic_write(path, text, mode=REPORT_MODE)
    except OSError as err:
        raise ReportFileError(path, _reason(err)) from err


def append_output(path: Path, name: str, value: str) -> None:
    """Append ``name=value`` as one line to a GitHub Actions output file (``$GITHUB_OUTPUT``).

    Appending, not replacing: the runner's file holds other steps' outputs too. ``value``
    must be one line (base64 is), else the runner would misread the file.
    """
    if "\n" in value or "\r" in value or "\n" in name or "=" in name:
        raise ValueError(f"output {name!r} must be name=value on one line")
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"{name}={value}\n")
    except OSError as err:
        raise ReportFileError(path, _reason(err)) from err
