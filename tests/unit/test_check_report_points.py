"""The terminal report of ``lab check``: points per task and per check, hidden checks
tagged, UNSTABLE and NOT RUN marked apart from a plain failure, and always the last two
lines ``N/M checks passed`` and ``Points X/Y`` (also when nothing could be applied)."""

from __future__ import annotations

import io

import pytest
from check_runs import finding, lab01, lab01_with_hidden, make_run, names, passing, record
from rich.console import Console

from labs.cli import report
from labs.cli.report import check_report


def rendered(capsys: pytest.CaptureFixture[str], *args: object) -> list[str]:
    check_report(*args)  # type: ignore[arg-type]
    return capsys.readouterr().out.splitlines()


def line_of(lines: list[str], text: str, *, indented: bool = False) -> str:
    found = [line for line in lines if text in line and (line.startswith("  ") or not indented)]
    assert len(found) == 1, f"{text!r} in {found}"
    return found[0]


def test_points_per_task_and_check_and_the_points_line_last(
        capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server", "test_server_running")),
               record("test_client_reaches_server", "failed", found=finding()),
               record("test_server_running", "failed", message="server pod not found")]
    lines = rendered(capsys, make_run(records), lab)
    assert lines[-2:] == ["6/8 checks passed", "Points 6/9"]
    assert line_of(lines, "Two pods, two workers").strip() == "Two pods, two workers  (4/5 points)"
    assert line_of(lines, "Reach the server by its pod IP").endswith("(0/2 points)")
    assert line_of(lines, "UDP works the same way").endswith("(1/1 points)")
    reach = line_of(lines, names()["test_client_reaches_server"]).split()
    assert reach[:2] == ["FAIL", "0/2"]
    assert line_of(lines, names()["test_client_running"]).split()[:2] == ["PASS", "1/1"]
    assert line_of(lines, names()["test_server_running"]).split()[:2] == ["FAIL", "0/1"]
    assert "      expected: CONNECTED, HTTP 200, body contains 'server'" in lines
    assert "      observed: REFUSED" in lines
    assert "      server pod not found" in lines
    assert "Stuck? lab hint 01" in lines
    assert not any("hidden" in line for line in lines)


def test_a_passing_run_ends_with_full_points(capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    lines = rendered(capsys, make_run(passing(lab)), lab)
    assert lines[-2:] == ["8/8 checks passed", "Points 9/9"]
    assert not any("Stuck?" in line or "UNSTABLE" in line for line in lines)


def test_hidden_checks_are_tagged_when_grading(capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01_with_hidden()
    records = [*passing(lab, grading=True, but=("test_placement_is_declared",)),
               record("test_placement_is_declared", "failed",
                      found=finding(expected="an anti-affinity rule", observed="nodeName"))]
    lines = rendered(capsys, make_run(records, lab=lab, grading=True), lab)
    hidden = line_of(lines, names()["test_placement_is_declared"])
    assert hidden.split()[:2] == ["FAIL", "0/1"] and hidden.endswith("[hidden]")
    assert "grading: hidden checks included" in lines[1]
    assert lines[-1] == "Points 8/9"
    assert sum("[hidden]" in line for line in lines) == 1


def test_unstable_and_not_run_are_marked_and_explained(capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    flapping = "UNSTABLE over 3 probes: CONNECTED, REFUSED, CONNECTED"
    records = [*passing(lab, but=("test_client_reaches_server", "test_server_answers_udp")),
               record("test_client_reaches_server", "unstable", found=finding(observed=flapping))]
    lines = rendered(capsys, make_run(records), lab)
    unstable = line_of(lines, names()["test_client_reaches_server"], indented=True)
    assert unstable.split()[:2] == ["UNSTABLE", "0/2"]
    assert f"      observed: {flapping}" in lines
    not_run = line_of(lines, names()["test_server_answers_udp"])
    assert not_run.split()[:3] == ["NOT", "RUN", "0/1"]
    assert "      no result came back for this check" in lines
    note = line_of(lines, "earned nothing")
    assert note.startswith("UNSTABLE: 1 check(s)") and "lab check 01" in note
    assert lines[-2:] == ["6/8 checks passed", "Points 6/9"]


def test_skipped_checks_show_but_do_not_count(capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_server_answers_udp",)),
               record("test_server_answers_udp", "skipped", message="no UDP here")]
    lines = rendered(capsys, make_run(records), lab)
    skipped = line_of(lines, names()["test_server_answers_udp"])
    assert skipped.split()[:2] == ["SKIP", "-"] and skipped.endswith("(not counted)")
    assert line_of(lines, "UDP works the same way").endswith("(0/0 points)")
    assert lines[-2:] == ["7/7 checks passed", "Points 8/8"]


def test_an_unapplied_workspace_still_ends_with_the_points_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    why = "server.yaml: document 1: mapping values are not allowed here"
    lines = rendered(capsys, make_run([], apply_error=why), lab)
    assert "Your workspace could not be applied; nothing was checked." in lines
    assert why in lines
    assert lines[-2:] == ["0/8 checks passed", "Points 0/9"]


def test_results_outside_the_tasks_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab01()
    crash = {"id": "pytest", "name": "the checks could not run", "outcome": "error",
             "message": "ImportError: no module named [grader]"}
    lines = rendered(capsys, make_run([crash]), lab)
    assert "Outside the lab's tasks" in lines
    assert line_of(lines, "the checks could not run").split()[0] == "ERROR"
    assert "      ImportError: no module named [grader]" in lines, "brackets kept as text"
    assert sum(line.split()[:2] == ["NOT", "RUN"] for line in lines) == len(lab.check_names())
    assert lines[-2:] == ["0/8 checks passed", "Points 0/9"]


def test_unstable_is_yellow_and_failed_is_red(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server", "test_server_running")),
               record("test_client_reaches_server", "unstable",
                      found=finding(observed="UNSTABLE over 3 probes: CONNECTED, TIMEOUT")),
               record("test_server_running", "failed", message="no pod")]
    buffer = io.StringIO()
    monkeypatch.setattr(report, "out", Console(file=buffer, force_terminal=True, highlight=False,
                                               color_system="standard", width=200))
    check_report(make_run(records), lab)
    text = buffer.getvalue()
    assert "\x1b[33mUNSTABLE\x1b[0m" in text
    assert "\x1b[31mFAIL\x1b[0m" in text
    assert "\x1b[33mUNSTABLE over 3 probes" in text
