"""Results of a conformance run, for people (text) and for programs (JSON).

A step ends in one :class:`Status`: ``pass``, ``fail`` (with, for every expectation key,
what was expected and what was observed) or ``n/a`` (not applicable, with the reason: a
precondition does not hold, or the engine cannot run this probe). A case fails at its
first failing step; it is ``n/a`` when a step was not applicable and none failed. The run
passes when every case that ran passed: ``n/a`` cases never make it fail, and never count
as passed either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NA = "n/a"

    @property
    def label(self) -> str:
        return {"pass": "PASS", "fail": "FAIL", "n/a": "N/A"}[self.value]


@dataclass(frozen=True)
class Check:
    """One expectation key judged: ``key`` holds (``ok``) or not, expected vs observed."""

    key: str
    ok: bool
    expected: str
    observed: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "ok": self.ok, "expected": self.expected,
                "observed": self.observed}


@dataclass
class Verdict:
    """One probe run judged against its ``expect``."""

    status: Status
    checks: list[Check] = field(default_factory=list)
    reason: str = ""  # why n/a, or what went wrong before the expectations could be judged
    data: dict[str, Any] = field(default_factory=dict)  # raw observations for --json
    label: str = ""  # which fan-out run (``nodeIP 172.30.0.2``)

    @classmethod
    def of(cls, checks: list[Check], data: dict[str, Any] | None = None) -> Verdict:
        status = Status.PASS if all(c.ok for c in checks) else Status.FAIL
        return cls(status, checks, data=data or {})

    @classmethod
    def na(cls, reason: str) -> Verdict:
        return cls(Status.NA, reason=reason)

    @classmethod
    def failed(cls, reason: str, data: dict[str, Any] | None = None) -> Verdict:
        return cls(Status.FAIL, reason=reason, data=data or {})

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "label": self.label, "reason": self.reason,
                "checks": [c.to_dict() for c in self.checks], "data": self.data}


@dataclass
class StepResult:
    index: int
    line: int
    probe: str  # ``requests svc/client-far -> {{clusterIP svc/hostnames}}:80 x300``
    status: Status
    runs: list[Verdict] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.line, "probe": self.probe,
                "status": self.status.value, "reason": self.reason,
                "seconds": round(self.seconds, 3), "runs": [r.to_dict() for r in self.runs]}


@dataclass
class CaseResult:
    id: str
    title: str
    status: Status
    steps: list[StepResult] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value,
                "reason": self.reason, "seconds": round(self.seconds, 3),
                "steps": [s.to_dict() for s in self.steps]}


@dataclass
class FileResult:
    path: str
    suite: str
    fixture: str
    cases: list[CaseResult] = field(default_factory=list)
    error: str = ""  # the fixture could not be built or cleaned up

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "suite": self.suite, "fixture": self.fixture,
                "error": self.error or None, "cases": [c.to_dict() for c in self.cases]}


@dataclass
class RunReport:
    cluster: str
    engine: str
    files: list[FileResult] = field(default_factory=list)
    interrupted: bool = False

    def cases(self) -> list[CaseResult]:
        return [c for f in self.files for c in f.cases]

    def count(self, status: Status) -> int:
        return sum(c.status is status for c in self.cases())

    @property
    def passed(self) -> bool:
        """Every case that ran passed (n/a cases do not count), and nothing broke."""
        return (not self.interrupted and self.count(Status.FAIL) == 0
                and not any(f.error for f in self.files))

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster, "engine": self.engine, "passed": self.passed,
            "interrupted": self.interrupted,
            "summary": {"total": len(self.cases()), "passed": self.count(Status.PASS),
                        "failed": self.count(Status.FAIL),
                        "not_applicable": self.count(Status.NA)},
            "files": [f.to_dict() for f in self.files],
        }


def render_case(case: CaseResult) -> list[str]:
    """A case's lines: the case, then each step; failures say expected vs observed."""
    lines = [f"{case.status.label:<4} {case.id}  {case.title}"
             + (f"  ({case.reason})" if case.reason else "")]
    for step in case.steps:
        lines.append(f"     {step.status.label:<4} step {step.index + 1}: {step.probe}"
                     + (f"  ({step.reason})" if step.reason and step.status is not Status.FAIL
                        else ""))
        if step.status is Status.FAIL:
            if step.reason:
                lines.append(f"            {step.reason}")
            for run in step.runs:
                if run.status is Status.PASS:
                    continue
                prefix = f"[{run.label}] " if run.label else ""
                if run.reason:
                    lines.append(f"            {prefix}{run.reason}")
                for check in run.checks:
                    if not check.ok:
                        lines.append(f"            {prefix}{check.key}: expected {check.expected}")
                        lines.append(f"            {' ' * len(prefix)}{' ' * len(check.key)}"
                                     f"  observed {check.observed}")
    return lines


def render(report: RunReport) -> str:
    """The whole report as text: per file, per case and step, then a summary line."""
    lines: list[str] = []
    for file in report.files:
        lines.append(f"{file.path} (suite {file.suite}, fixture {file.fixture})")
        if file.error:
            lines.append(f"  error: {file.error}")
        for case in file.cases:
            lines += ["  " + line for line in render_case(case)]
        lines.append("")
    total = len(report.cases())
    lines.append(
        f"{report.count(Status.PASS)} passed, {report.count(Status.FAIL)} failed, "
        f"{report.count(Status.NA)} not applicable, of {total} case(s) on cluster "
        f"{report.cluster} (engine {report.engine})"
        + ("; interrupted" if report.interrupted else ""))
    return "\n".join(lines)
