"""``grades.csv``: one row per learner, one column per check, for a spreadsheet or a gradebook.

Columns: learner, status (graded | invalid | error | unstable), points, possible, percent,
then the points each check earned (hidden checks too, headed ``test_x (hidden)``), then a
message saying why a learner was not graded or what they did not pass.

Text cells that a spreadsheet would run as a formula (a learner folder named ``=HYPERLINK(..)``,
a message starting with ``-``) get a leading apostrophe, so opening the file runs nothing.
"""

from __future__ import annotations

import csv
import io

from labs.grading.batch import Batch, LearnerResult
from labs.scoring import fmt

FIXED = ("learner", "status", "points", "possible", "percent")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """``text`` safe to open in a spreadsheet: never read as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def headers(batch: Batch) -> list[str]:
    hidden = set(batch.lab.hidden_checks)
    checks = [f"{c} (hidden)" if c in hidden else c for c in batch.lab.check_names(grading=True)]
    return [*FIXED, *checks, "message"]


def row(batch: Batch, result: LearnerResult) -> list[str]:
    earned = {c.function: c.earned for c in result.score.checks}
    checks = [fmt(earned.get(c, 0.0)) for c in batch.lab.check_names(grading=True)]
    return [cell(result.learner), result.status, fmt(result.points), fmt(result.possible),
            f"{result.percent:g}", *checks, cell(result.message)]


def render(batch: Batch) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers(batch))
    for result in batch.results:
        writer.writerow(row(batch, result))
    return buffer.getvalue()
