"""Running the real ``lab`` command the way a learner does: one process per call."""

from __future__ import annotations

import sys

from clusters.proc import Result, run


def lab(*args: str, timeout: float = 120) -> Result:
    """``lab ARGS`` in its own process, as a learner runs it (output and exit code captured)."""
    return run([sys.executable, "-m", "labs.cli.main", *args], check=False, timeout=timeout)
