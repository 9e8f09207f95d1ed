"""Reporting a lab's checks: one line per check on the terminal, and a JSON file.

Quiet on pass, full on failure: a passing check is one ``PASS`` line; a failing one is a
``FAIL`` line followed by its finding (source → destination, expected, observed, hint) or,
for a plain assertion or exception, its message. The JSON report is written at session end,
also when checks errored, for ``lab check`` (progress, hints) and classroom autograding.

Outcomes, best to worst: passed, skipped, failed, unstable, error. A check is *unstable*
when it failed with a finding whose probes flapped (:attr:`Finding.unstable`: the
confirmations of an expected result disagreed, or a matrix cell answered differently when
probed again). That is no verdict on the learner's work either way, so it is never reported
as passed or failed; its finding keeps every observation as the evidence.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from grader.expectations import CheckFailed, Finding

BODY_CAP = 1024  # most characters of a probe's body kept per observation in the JSON report
_ORDER = {"passed": 0, "skipped": 1, "failed": 2, "unstable": 3, "error": 4}
_LABELS = {"passed": "PASS ", "failed": "FAIL ", "unstable": "UNSTABLE", "error": "ERROR",
           "skipped": "SKIP "}
_COLOURS = {"passed": "green", "skipped": "yellow", "unstable": "yellow"}  # as `lab check`


def check_name(item: pytest.Item) -> str:
    """The first line of the test's docstring, else its function name made readable."""
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    first = (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""
    base = getattr(item, "originalname", None) or item.name.split("[")[0]
    name = first or base.removeprefix("test_").replace("_", " ").strip()
    callspec = getattr(item, "callspec", None)
    return f"{name} [{callspec.id}]" if callspec is not None else name


@dataclass
class CheckRecord:
    """One check's result, gathered over its setup, call and teardown."""

    id: str
    name: str
    function: str = ""  # the test function's name (lab.yaml ties checks to tasks by it)
    outcome: str = "passed"
    message: str = ""
    hint: str = ""
    finding: Finding | None = None
    duration: float = 0.0

    def merge(self, outcome: str, message: str = "") -> None:
        """Keep the worst outcome seen (error > unstable > failed > skipped > passed) and its
        message."""
        if _ORDER[outcome] > _ORDER[self.outcome]:
            self.outcome = outcome
            self.message = message or self.message

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "function": self.function,
                                "outcome": self.outcome,
                                "message": self.message, "hint": self.hint,
                                "duration": round(self.duration, 3)}
        if self.finding is not None:
            finding = self.finding.to_dict()
            for obs in finding["observations"]:
                if obs.get("body") and len(obs["body"]) > BODY_CAP:
                    obs["body"] = obs["body"][:BODY_CAP] + "..."
            data["finding"] = finding
        return data

    def text(self) -> str:
        """The terminal form: one line, plus the details when the check did not pass."""
        line = f"{_LABELS[self.outcome]} {self.name}"
        if self.outcome == "passed":
            return line
        if self.finding is not None:
            return f"{line}\n{self.finding}"
        details = [f"  {row}" for row in self.message.strip().splitlines()]
        if self.hint:
            details.append(f"  hint:     {self.hint}")
        return "\n".join([line, *details]) if details else line


def file_hint(hints: Mapping[str, Any], keys: list[str], hint_key: str, generic: bool,
              current: str) -> str:
    """The hint from the ``--lab-hints`` file for a check, by precedence.

    An entry is a string (any failure) or a mapping of hint keys. The file's hint for the
    observed key wins; then the check's own hint; then the file's ``default``; then generic.
    """
    for key in keys:
        entry = hints.get(key)
        if entry is None:
            continue
        if isinstance(entry, str):
            return entry if (generic or not current) else current
        if isinstance(entry, Mapping):
            if entry.get(hint_key):
                return str(entry[hint_key])
            if (generic or not current) and entry.get("default"):
                return str(entry["default"])
    return current


def failure_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """A short message for a plain assertion, ``pytest.fail``, skip or unexpected exception."""
    value = excinfo.value
    if isinstance(value, (pytest.fail.Exception, pytest.skip.Exception)):
        return str(value.msg or "")
    if isinstance(value, AssertionError):
        return str(value) or "assertion failed"
    entry = excinfo.traceback[-1] if excinfo.traceback else None
    where = f" (at {entry.path}:{entry.lineno + 1})" if entry is not None else ""
    return f"{excinfo.exconly().strip()}{where}"


@dataclass
class LabReporter:
    """The plugin object: gathers a :class:`CheckRecord` per test, prints, writes JSON."""

    config: pytest.Config
    lab: str | None = None
    cluster: str | None = None
    engine: str | None = None
    report_path: Path | None = None
    hints: Mapping[str, Any] = field(default_factory=dict)
    records: dict[str, CheckRecord] = field(default_factory=dict)
    _messages: dict[tuple[str, str], str] = field(default_factory=dict)
    _unstable: set[tuple[str, str]] = field(default_factory=set)  # (nodeid, when) that flapped
    started: float = field(default_factory=time.monotonic)

    def _record(self, nodeid: str, name: str | None = None) -> CheckRecord:
        if nodeid not in self.records:
            self.records[nodeid] = CheckRecord(nodeid, name or nodeid)
        return self.records[nodeid]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        record = self._record(item.nodeid, check_name(item))
        record.function = getattr(item, "originalname", item.name)
        keys = [item.nodeid, item.name, getattr(item, "originalname", item.name), record.name]
        excinfo = call.excinfo
        if excinfo is None or report.passed:
            return report
        if isinstance(excinfo.value, CheckFailed):
            finding = excinfo.value.finding
            hint = file_hint(self.hints, keys, finding.hint_key, finding.hint_is_generic,
                             finding.hint)
            if hint != finding.hint:
                finding = finding.with_hint(hint)
            record.finding = finding if record.finding is None else record.finding
            record.hint = finding.hint
            report.longrepr = str(finding)
            if finding.unstable:
                self._unstable.add((item.nodeid, report.when))
            self._messages[(item.nodeid, report.when)] = (
                f"expected {finding.expected}; observed {finding.observed or '-'}")
            return report
        if not report.skipped and not record.hint:
            record.hint = file_hint(self.hints, keys, "default", True, "")
        self._messages[(item.nodeid, report.when)] = failure_message(excinfo)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        """Silence pytest's per-test letters: this reporter prints its own line per check."""
        if hasattr(report, "wasxfail"):
            return None
        if report.passed:
            return ("passed" if report.when == "call" else "", "", "")
        if report.skipped:
            return ("skipped", "", "")
        return ("failed" if report.when == "call" else "error", "", "")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._record(report.nodeid)
        record.duration += report.duration
        key = (report.nodeid, report.when)
        message = self._messages.pop(key, "")
        if report.failed:
            if key in self._unstable:
                self._unstable.discard(key)
                record.merge("unstable", message)
            else:
                record.merge("failed" if report.when == "call" else "error", message)
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            record.merge("skipped", message or str(reason).removeprefix("Skipped: "))
        if report.when == "teardown":
            self._write_line(record.text(), record.outcome)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            record = self._record(report.nodeid or "<collection>",
                                  f"collecting {report.nodeid or 'the checks'}")
            record.merge("error", report.longreprtext.strip())
            self._write_line(record.text(), "error")

    def _write_line(self, text: str, outcome: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        terminal.ensure_newline()
        colour = _COLOURS.get(outcome, "red")
        head, _, rest = text.partition("\n")
        terminal.write_line(head, **{colour: True, "bold": outcome != "passed"})
        if rest:
            terminal.write_line(rest)

    def summary(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "unstable": 0, "errors": 0, "skipped": 0}
        for record in self.records.values():
            counts["errors" if record.outcome == "error" else record.outcome] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        counts = self.summary()
        return {
            "lab": self.lab,
            "cluster": self.cluster,
            "engine": self.engine,
            "passed": (counts["failed"] == 0 and counts["unstable"] == 0
                       and counts["errors"] == 0 and counts["passed"] > 0),
            "checks": [r.to_dict() for r in self.records.values()],
            "summary": counts,
            "duration": round(time.monotonic() - self.started, 3),
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        counts = self.summary()
        total = sum(counts.values())
        unstable = (f", {counts['unstable']} unstable (probes flapped: run again, or look at "
                    "the cluster)" if counts["unstable"] else "")
        terminalreporter.write_line(
            f"kube-netlab: {counts['passed']} of {total} checks passed{unstable}"
            + (f", report: {self.report_path}" if self.report_path else "")
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report_path is None:
            return
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.report_path.with_name(self.report_path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(partial, self.report_path)
