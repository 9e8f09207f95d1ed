"""A check's result in words, shared by the JUnit and classroom reports.

Both reports must say the same thing about a failure that the terminal says: source →
destination, expected vs observed, and the hint (from the record's ``finding``), else the
record's message. A check without any record ("not run") says why no result came back, so a
missing result reads as a failure with a reason, never as a silent pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.scoring import NOT_RUN, CheckScore, Score, score

NO_RESULT = "no result came back for this check"
MAX_MESSAGE_LINES = 30  # a crash's traceback is cut here; the JSON report keeps it whole


def run_score(run: CheckRun, lab: Lab) -> Score:
    """The run's score, computed from its records when the run carries none."""
    return run.score if run.score is not None else score(lab, run.checks, grading=run.grading)


def strays(run: CheckRun) -> list[dict[str, Any]]:
    """Results outside every task of the lab that did not pass (a collection error, a crashed
    pytest): they earn nothing but fail the run, so reports must show them."""
    return [c for c in run.checks if c.get("task") is None and c.get("outcome") != "passed"]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


def record_summary(record: Mapping[str, Any]) -> str:
    """One line: ``expected X; observed Y`` from the finding, else the message's first line."""
    finding = record.get("finding") or {}
    if finding.get("expected"):
        return f"expected {finding['expected']}; observed {finding.get('observed') or '-'}"
    return _first_line(str(record.get("message") or "")) or str(record.get("outcome", "error"))


def record_details(record: Mapping[str, Any]) -> str:
    """Several lines: source → destination, expected, observed, hint; else the message."""
    finding = {k: v for k, v in (record.get("finding") or {}).items() if v not in (None, "")}
    lines: list[str] = []
    src, dst = finding.get("source"), finding.get("destination")
    if src or dst:
        probe = f"   [{finding['probe']}]" if finding.get("probe") else ""
        lines.append(f"{src or '?'} → {dst or '?'}{probe}")
    if finding.get("expected"):
        lines.append(f"expected: {finding['expected']}")
    if finding.get("observed"):
        lines.append(f"observed: {finding['observed']}")
    if not finding.get("expected") and record.get("message"):
        lines += str(record["message"]).strip().splitlines()[:MAX_MESSAGE_LINES]
    hint = finding.get("hint") or record.get("hint")
    if hint:
        lines.append(f"hint:     {' '.join(str(hint).split())}")
    return "\n".join(lines)


def _not_run_reason(run: CheckRun) -> str:
    if run.apply_error:
        return f"not run: your workspace could not be applied ({_first_line(run.apply_error)})"
    return f"not run: {NO_RESULT}"


def _bad_records(check: CheckScore) -> list[Mapping[str, Any]]:
    """The records that did not pass, the one that decided the outcome first."""
    bad = [r for r in check.records if r.get("outcome") not in ("passed", "skipped")]
    return sorted(bad, key=lambda r: r.get("outcome") != check.outcome)


def summary(check: CheckScore, run: CheckRun) -> str:
    """One line saying why ``check`` did not pass (``""`` when it passed)."""
    if check.outcome == "passed":
        return ""
    if check.outcome == NOT_RUN:
        return _not_run_reason(run)
    if check.outcome == "skipped":
        return record_summary(check.records[0]) if check.records else "skipped"
    bad = _bad_records(check)
    text = record_summary(bad[0]) if bad else check.outcome
    return f"UNSTABLE: {text}" if check.outcome == "unstable" else text


def details(check: CheckScore, run: CheckRun) -> str:
    """Every failing case of ``check`` with its finding; the apply error when it did not run."""
    if check.outcome == NOT_RUN:
        reason = _not_run_reason(run)
        return f"{reason}\n{run.apply_error.strip()}" if run.apply_error else reason
    bad = _bad_records(check) if check.outcome != "skipped" else list(check.records)
    if len(bad) == 1 and check.cases == 1:
        return record_details(bad[0])
    parts = [f"{r.get('name', check.name)}: {str(r.get('outcome', 'error')).upper()}\n"
             + record_details(r) for r in bad]
    return "\n\n".join(p.rstrip() for p in parts)


def duration(check: CheckScore) -> float:
    """Seconds the check's cases took together (0 when it did not run)."""
    return sum(float(r.get("duration") or 0.0) for r in check.records)


def check_file(lab: Lab, check: CheckScore) -> Path | None:
    """The file defining ``check``'s test function (read from the lab's check sources)."""
    return Path(check.file) if check.file else None
