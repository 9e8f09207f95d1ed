"""Reading manifest files: files, folders (sorted, ``*.yaml|*.yml|*.json``) or stdin."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusters.errors import ManifestError
from clusters.local.validation import load_documents

SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class ManifestFile:
    source: str
    docs: list[dict[str, Any]]


def expand(path: Path) -> list[Path]:
    """A file is itself; a folder gives its manifest files, sorted, hidden ones skipped."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix in SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path]


def read(target: str) -> list[ManifestFile]:
    """``-`` reads stdin; otherwise a file or folder. Errors name the file."""
    if target == "-":
        return [ManifestFile("<stdin>", load_documents(sys.stdin.read(), "<stdin>"))]
    path = Path(target)
    if not path.exists():
        raise ManifestError("no such file or folder", source=target)
    files = []
    for f in expand(path):
        if f.stat().st_size > MAX_BYTES:
            raise ManifestError(f"file is larger than {MAX_BYTES} bytes", source=str(f))
        try:
            text = f.read_text()
        except UnicodeDecodeError as err:
            raise ManifestError("not a UTF-8 text file", source=str(f)) from err
        files.append(ManifestFile(str(f), load_documents(text, str(f))))
    return files
