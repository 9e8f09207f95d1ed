"""``lab check --junit/--classroom/--grading`` end to end through ``lab``'s real entry point,
with ``run_check`` replaced by a prepared run of lab 01 (no cluster): the files written, the
``GITHUB_OUTPUT`` line, exit codes, progress, and an unwritable path refused before the run."""

from __future__ import annotations

import base64
import json
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from check_runs import finding, lab01, make_run, passing, record
from labrun import lab

from labs.checking import CheckRun
from labs.cli import labs_cmd
from labs.reports import files as report_files
from labs.session import Session


@dataclass
class Harness:
    """What the fake ``run_check`` returns and what it and ``Session.cluster`` were asked."""

    tmp: Path
    kwargs: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    connects: int = 0

    def use(self, **kwargs: Any) -> None:
        """The next check returns ``make_run(**kwargs)`` for the grading flag it is given."""
        self.kwargs = kwargs

    @property
    def progress(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.tmp / "ws" / ".progress.json").read_text())
        return data["labs"]["01"]["last_result"]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAB_CLUSTER", f"knlt{uuid.uuid4().hex[:6]}")
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    h = Harness(tmp_path)
    h.use(records=passing(lab01()))
    cluster = object()

    def connect(self: Session) -> object:
        h.connects += 1
        return cluster

    def run_check(lab: Any, got: object, workspace: Any, say: Any = None, *,
                  grading: bool = False) -> CheckRun:
        assert got is cluster
        h.runs.append({"lab": lab.id, "grading": grading})
        kwargs = dict(h.kwargs)
        if "records" in kwargs and callable(kwargs["records"]):
            kwargs["records"] = kwargs["records"](grading)
        return make_run(grading=grading, **kwargs)

    monkeypatch.setattr(Session, "cluster", connect)
    monkeypatch.setattr(labs_cmd, "run_check", run_check)
    return h


def failing_records() -> list[dict[str, Any]]:
    lab = lab01()
    return [*passing(lab, but=("test_client_reaches_server",)),
            record("test_client_reaches_server", "failed", found=finding())]


def test_junit_and_classroom_files_and_the_github_output_line(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = tmp_path / "gh" / "output"
    outputs.parent.mkdir()
    outputs.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    harness.use(records=failing_records())
    junit, classroom = tmp_path / "out" / "deep" / "lab01.xml", tmp_path / "out" / "c.json"
    ran = lab("check", "01", "--junit", str(junit), "--classroom", str(classroom))
    assert ran.code == 1, ran.err
    assert harness.runs == [{"lab": "01", "grading": False}]
    assert ran.out.rstrip().splitlines()[-1] == "Points 7/9"
    root = ET.fromstring(junit.read_bytes())
    assert (root.get("tests"), root.get("failures")) == ("8", "1")
    data = json.loads(classroom.read_text(encoding="utf-8"))
    assert data["status"] == "fail" and data["max_score"] == 9
    assert sum(t["score"] for t in data["tests"]) == 7
    lines = outputs.read_text().splitlines()
    assert lines[0] == "earlier=1" and len(lines) == 2, "appended, never replaced"
    name, _, value = lines[1].partition("=")
    assert name == "result"
    assert json.loads(base64.b64decode(value, validate=True).decode("utf-8")) == data
    assert str(junit) in ran.err and str(classroom) in ran.err
    assert (harness.progress["summary"]["points"],
            harness.progress["summary"]["possible"]) == (7, 9)
    assert harness.progress["passed"] is False


def test_grading_runs_hidden_checks_and_a_passing_run_exits_0(harness: Harness,
                                                              tmp_path: Path) -> None:
    harness.use(records=lambda grading: passing(lab01(), grading=grading))
    report = tmp_path / "c.json"
    ran = lab("check", "01", "--grading", "--classroom", str(report), "--json")
    assert ran.code == 0, ran.err
    assert harness.runs == [{"lab": "01", "grading": True}]
    printed = json.loads(ran.out)
    assert printed["grading"] is True
    assert (printed["score"]["earned"], printed["score"]["possible"]) == (9, 9)
    assert json.loads(report.read_text())["status"] == "pass"
    assert harness.progress["summary"]["grading"] is True
    assert not (tmp_path / "gh").exists()


def test_without_classroom_github_output_is_left_alone(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = tmp_path / "output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    ran = lab("check", "01", "--junit", str(tmp_path / "r.xml"))
    assert ran.code == 0, ran.err
    assert not outputs.exists()
    assert ran.out.rstrip().splitlines()[-2:] == ["8/8 checks passed", "Points 9/9"]


def test_reports_are_written_when_the_workspace_cannot_be_applied(
        harness: Harness, tmp_path: Path) -> None:
    harness.use(records=[], apply_error="server.yaml: mapping values are not allowed here")
    junit, classroom = tmp_path / "r.xml", tmp_path / "c.json"
    ran = lab("check", "01", "--junit", str(junit), "--classroom", str(classroom))
    assert ran.code == 1
    assert ran.out.rstrip().splitlines()[-1] == "Points 0/9"
    root = ET.fromstring(junit.read_bytes())
    types = {f.get("type") for f in root.iter("failure")}
    assert types == {"not run"} and root.get("failures") == "8"
    assert json.loads(classroom.read_text())["status"] == "error"
    assert harness.progress["summary"]["points"] == 0


@pytest.mark.parametrize("flag", ["--junit", "--classroom"])
def test_an_unwritable_report_path_is_refused_before_connecting_or_running(
        harness: Harness, tmp_path: Path, flag: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    target = blocker / "reports" / "out.xml"
    ran = lab("check", "01", flag, str(target))
    assert ran.code == 2
    assert flag in ran.err and str(target) in ran.err
    assert f"{blocker} is a file, not a folder" in ran.err
    assert harness.runs == [] and harness.connects == 0
    assert not (tmp_path / "ws" / ".progress.json").exists(), "no check was recorded"


def test_a_directory_is_not_a_report_file(harness: Harness, tmp_path: Path) -> None:
    ran = lab("check", "01", "--junit", str(tmp_path))
    assert ran.code == 2 and "--junit" in ran.err
    assert harness.runs == []


def test_an_unwritable_github_output_is_refused_before_the_run(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path))  # a directory: cannot be appended to
    ran = lab("check", "01", "--classroom", str(tmp_path / "c.json"))
    assert ran.code == 2 and "GITHUB_OUTPUT" in ran.err and str(tmp_path) in ran.err
    assert harness.runs == []


def test_a_write_failing_after_the_run_is_a_clear_error(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, text: str, mode: int = 0o600) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_files, "atomic_write", full)
    target = tmp_path / "r.xml"
    ran = lab("check", "01", "--junit", str(target))
    assert ran.code == 1
    assert harness.runs == [{"lab": "01", "grading": False}]
    assert str(target) in ran.err and "No space left on device" in ran.err
    assert "Points 9/9" in ran.out, "the terminal report is printed before the files"
    assert not target.exists()
