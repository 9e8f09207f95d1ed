"""The learner's progress: one JSON file, ``<workspace>/.progress.json``.

Every call reads the file, changes it and writes it back atomically (temporary file, fsync,
rename), so two ``lab`` commands never see half a file and a crash never loses it.
A file that cannot be read as progress is not overwritten: it is moved aside to
``.progress.json.corrupt-<UTC timestamp>`` with a :class:`CorruptProgressWarning`, and
progress starts afresh. Once a lab has passed it stays passed.

The file::

    {"version": 1, "current": "01", "engine": "local", "cluster": "netlab",
     "labs": {"01": {"status": "passed", "started_at": "...", "engine": "local",
                     "cluster": "netlab", "attempts": 3, "passed_at": "...",
                     "last_result": {"passed": true, "at": "...", "summary": {...}},
                     "hints_shown": 1}}}
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clusters.fileio import atomic_write

NOT_STARTED: Final = "not started"
IN_PROGRESS: Final = "in progress"
PASSED: Final = "passed"
Status = Literal["not started", "in progress", "passed"]


class CorruptProgressWarning(UserWarning):
    """The progress file could not be read; it was moved aside, not deleted."""


class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")
    passed: bool
    at: str
    summary: dict[str, Any] = Field(default_factory=dict)


class _LabProgress(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Status = NOT_STARTED
    started_at: str | None = None
    engine: str | None = None
    cluster: str | None = None
    attempts: int = Field(default=0, ge=0)
    passed_at: str | None = None
    last_result: _Result | None = None
    hints_shown: int = Field(default=0, ge=0)


class _ProgressFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int = 1
    current: str | None = None
    engine: str | None = None
    cluster: str | None = None
    labs: dict[str, _LabProgress] = Field(default_factory=dict)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Progress:
    """Read and record the learner's progress in the JSON file at ``path``."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = Path(path)
        self._clock = clock
        #: Where a corrupt file was moved, when this object found one.
        self.moved_aside: Path | None = None

    # ---- reading -------------------------------------------------------------------------

    def status(self, lab_id: str) -> str:
        entry = self._read().labs.get(lab_id)
        return entry.status if entry else NOT_STARTED

    def hints_shown(self, lab_id: str) -> int:
        entry = self._read().labs.get(lab_id)
        return entry.hints_shown if entry else 0

    def current_lab(self) -> str | None:
        """The lab started last."""
        return self._read().current

    def as_dict(self) -> dict[str, Any]:
        """The whole file as plain data (``current``, ``engine``, ``cluster``, ``labs``)."""
        return self._read().model_dump(mode="json")

    # ---- recording -----------------------------------------------------------------------

    def mark_started(self, lab_id: str, engine: str, cluster: str) -> None:
        """The learner started (or restarted) a lab on this engine and cluster."""
        data = self._read()
        entry = data.labs.setdefault(lab_id, _LabProgress())
        entry.started_at, entry.engine, entry.cluster = self._now(), engine, cluster
        if entry.status == NOT_STARTED:
            entry.status = IN_PROGRESS
        data.current, data.engine, data.cluster = lab_id, engine, cluster
        self._write(data)

    def record_check(self, lab_id: str, passed: bool, summary: dict[str, Any]) -> None:
        """One ``lab check`` run; ``summary`` must be JSON data (it is stored as given)."""
        try:
            json.dumps(summary)
        except (TypeError, ValueError) as err:
            raise ValueError(f"the check summary is not JSON data: {err}") from err
        data = self._read()
        entry = data.labs.setdefault(lab_id, _LabProgress())
        now = self._now()
        entry.attempts += 1
        entry.last_result = _Result(passed=passed, at=now, summary=summary)
        if passed and entry.passed_at is None:
            entry.passed_at = now
        entry.status = PASSED if passed or entry.status == PASSED else IN_PROGRESS
        self._write(data)

    def bump_hints(self, lab_id: str) -> int:
        """Count one more hint shown for the lab; return the new count."""
        data = self._read()
        entry = data.labs.setdefault(lab_id, _LabProgress())
        entry.hints_shown += 1
        if entry.status == NOT_STARTED:
            entry.status = IN_PROGRESS
        self._write(data)
        return entry.hints_shown

    # ---- the file ------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")

    def _read(self) -> _ProgressFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _ProgressFile()
        try:
            return _ProgressFile.model_validate(json.loads(raw.decode("utf-8")))
        except (ValueError, ValidationError) as err:  # JSON and Unicode errors are ValueErrors
            self._move_aside(err)
            return _ProgressFile()

    def _move_aside(self, err: Exception) -> None:
        stamp = self._clock().strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        os.replace(self.path, target)
        self.moved_aside = target
        reason = str(err).splitlines()[0]
        warnings.warn(
            f"{self.path} could not be read ({reason}); it was moved to {target} "
            "and progress starts afresh",
            CorruptProgressWarning,
            stacklevel=4,
        )

    def _write(self, data: _ProgressFile) -> None:
        text = json.dumps(data.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        atomic_write(self.path, text)
