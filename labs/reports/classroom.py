"""The GitHub Classroom autograding form of one ``lab check`` run.

GitHub Classroom's ``autograding-grading-reporter`` action reads, for each runner id it is
given, a base64-encoded JSON document from the env var ``<RUNNER>_RESULTS`` (a workflow
passes a step's ``result`` output there). It sums the tests' ``score`` against the
document's ``max_score`` and posts ``Points X/Y`` to the classroom; it fails the job when
``status`` is ``fail`` or ``error``. This module builds that document from the run's
:class:`labs.scoring.Score`, so the classroom sees the same points as ``lab check``.

Mapping: passed → pass; failed, unstable (message starting ``UNSTABLE:``) and not run →
fail; error → error. Skipped checks are left out: they count neither way, and a test worth
0 of 0 would read as a pass the learner did not earn.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.reports import describe
from labs.scoring import CheckScore

VERSION = 1
_STATUS = {"passed": "pass", "error": "error"}  # everything else that counts is a fail


def _number(value: float) -> int | float:
    """Points as JSON numbers: ``2`` rather than ``2.0``, shares rounded to 2 decimals."""
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def _project_root(lab: Lab) -> Path:
    """The repository holding the catalogue: ``<root>/labs/NN-slug`` → ``<root>``."""
    return lab.folder.resolve().parent.parent


def _filename(lab: Lab, check: CheckScore) -> str:
    path = describe.check_file(lab, check)
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(_project_root(lab)).as_posix()
    except ValueError:
        return ""


def _message(check: CheckScore, run: CheckRun) -> str:
    if check.outcome == "passed":
        return ""
    head = describe.summary(check, run)
    text = describe.details(check, run)
    return head if not text or text == head else f"{head}\n{text}"


def _test_code(run: CheckRun, lab: Lab, function: str) -> str:
    return f"lab check {lab.id}{' --grading' if run.grading else ''} ({function})"


def _check_test(check: CheckScore, run: CheckRun, lab: Lab) -> dict[str, Any]:
    return {
        "name": check.name,
        "status": _STATUS.get(check.outcome, "fail"),
        "score": _number(check.earned),
        "max_score": _number(check.possible),
        "message": _message(check, run),
        "test_code": _test_code(run, lab, check.function),
        "filename": _filename(lab, check),
        "line_no": check.line,
        "execution_time": f"{describe.duration(check):.2f}s",
    }


def _stray_test(record: Mapping[str, Any], run: CheckRun, lab: Lab) -> dict[str, Any]:
    """A result outside the lab's tasks (collection error, crashed run): worth nothing,
    listed so the classroom shows why the run failed."""
    summary, text = describe.record_summary(record), describe.record_details(record)
    return {
        "name": str(record.get("name") or record.get("id") or "the checks"),
        "status": "fail" if record.get("outcome") == "failed" else "error",
        "score": 0,
        "max_score": 0,
        "message": summary if not text or text == summary else f"{summary}\n{text}",
        "test_code": _test_code(run, lab, str(record.get("function") or record.get("id") or "")),
        "filename": "",
        "line_no": 0,
        "execution_time": f"{float(record.get('duration') or 0):.2f}s",
    }


def classroom_result(run: CheckRun, lab: Lab) -> dict[str, Any]:
    """The reporter's JSON document for ``run`` (``version``, ``status``, ``max_score``,
    ``tests``)."""
    result = describe.run_score(run, lab)
    tests = [_check_test(c, run, lab) for c in result.checks if c.counted]
    tests += [_stray_test(r, run, lab) for r in describe.strays(run)]
    statuses = {t["status"] for t in tests}
    if run.apply_error or "error" in statuses:
        status = "error"
    elif "fail" in statuses or not tests:
        status = "fail"
    else:
        status = "pass"
    return {"version": VERSION, "status": status, "max_score": _number(result.possible),
            "tests": tests}


def encode_for_github_output(data: Mapping[str, Any]) -> str:
    """``data`` as one line of base64 (compact UTF-8 JSON), the form the reporter decodes
    from ``<RUNNER>_RESULTS``; safe as the value of a ``GITHUB_OUTPUT`` line."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
