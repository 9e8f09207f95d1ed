"""Writing a batch's three files: ``grades.csv``, ``results.json`` and ``report.html``.

Each file is written to a temporary name and renamed into place, so a reader (or a crash)
never sees half a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clusters.fileio import atomic_write
from labs.grading import csvreport, htmlreport
from labs.grading.batch import Batch

REPORT_MODE = 0o644  # reports are for people to read and share


@dataclass(frozen=True)
class Written:
    csv: Path
    json: Path
    html: Path

    def paths(self) -> list[Path]:
        return [self.csv, self.json, self.html]


def default_out_dir(lab_id: str, now: datetime | None = None) -> Path:
    """``./grades-<lab id>-<UTC YYYYmmddTHHMMSSZ>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path.cwd() / f"grades-{lab_id}-{stamp}"


def write(batch: Batch, out_dir: Path) -> Written:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written(out_dir / "grades.csv", out_dir / "results.json", out_dir / "report.html")
    atomic_write(written.csv, csvreport.render(batch), mode=REPORT_MODE)
    atomic_write(written.json, json.dumps(batch.to_dict(), indent=2, default=str,
                                          ensure_ascii=False) + "\n", mode=REPORT_MODE)
    atomic_write(written.html, htmlreport.render(batch), mode=REPORT_MODE)
    return written
