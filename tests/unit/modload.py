"""Importing a Python file that is not on the path (a script, a lab's check module) for a test."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_file(path: Path, name: str) -> ModuleType:
    """``path`` executed as a fresh module called ``name`` (not added to ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` of this repository."""
    return load_file(ROOT / "scripts" / f"{name}.py", name)
