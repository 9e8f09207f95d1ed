"""Running the real ``lab`` command the way a learner does: one process per call."""

from __future__ import annotations

import json
import sys
from typing import Any

from clusters.proc import Result, run


def lab(*args: str, timeout: float = 300) -> Result:
    """``lab ARGS`` in its own process, as a learner runs it (output and exit code captured);
    the timeout leaves room for a whole ``lab check``."""
    return run([sys.executable, "-m", "labs.cli.main", *args], check=False, timeout=timeout)


def get_items(*args: str) -> list[dict[str, Any]]:
    """The objects ``lab get ARGS -o json`` lists (the command must succeed)."""
    got = lab("get", *args, "-o", "json")
    assert got.returncode == 0, got.stderr
    items: list[dict[str, Any]] = json.loads(got.stdout)["items"]
    return items
