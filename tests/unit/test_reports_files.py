"""Report files: proven writable before a run (folders created, nothing left behind), written
whole with readable permissions, and ``$GITHUB_OUTPUT`` appended one line at a time."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from labs.reports import files
from labs.reports.files import ReportFileError


def test_ensure_writable_creates_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.xml"
    files.ensure_writable(target)
    assert target.parent.is_dir()
    assert list(target.parent.iterdir()) == []


def test_a_refused_probe_file_names_the_path_and_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "report.xml"
    with pytest.raises(ReportFileError) as caught:
        files.ensure_writable(target)
    assert str(caught.value) == f"cannot write {target}: Permission denied"
    assert caught.value.path == target


def test_a_file_in_place_of_a_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("oops\n")
    with pytest.raises(ReportFileError, match="reports is a file, not a folder"):
        files.ensure_writable(tmp_path / "reports" / "lab01" / "r.xml")


def test_write_report_replaces_the_file_whole_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.xml"
    files.write_report(target, "first\n")
    files.write_report(target, "second → ü\n")
    assert target.read_text(encoding="utf-8") == "second → ü\n"
    assert stat.S_IMODE(target.stat().st_mode) == files.REPORT_MODE
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.xml"]


def test_append_output_adds_one_line_and_refuses_multiline_values(tmp_path: Path) -> None:
    outputs = tmp_path / "github_output"
    outputs.write_text("other=1\n")
    files.append_output(outputs, "result", "eyJhIjoxfQ==")
    assert outputs.read_text() == "other=1\nresult=eyJhIjoxfQ==\n"
    with pytest.raises(ValueError, match="one line"):
        files.append_output(outputs, "result", "a\nb")
    assert outputs.read_text() == "other=1\nresult=eyJhIjoxfQ==\n"
    with pytest.raises(ReportFileError, match="Is a directory"):
        files.ensure_appendable(tmp_path)
