"""The batch's files: the CSV parses back to what was graded (hidden checks marked), the HTML
escapes everything a learner wrote, and the three files land atomically in the out folder."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from demolab import make_demo_lab

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.grading import batch as batches
from labs.grading import csvreport, htmlreport, reports
from labs.grading.submissions import Submission
from labs.scoring import score

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_demo_lab(tmp_path, title="A demo <lab>")


def rec(function: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"test_demo.py::{function}", "name": f"{function} check", "function": function,
            "outcome": outcome, "message": "", "hint": "", **extra}


def graded(lab: Lab, learner: str, checks: list[dict[str, Any]]) -> batches.LearnerResult:
    run = CheckRun(lab.id, lab.title, "local", "grd01-beef-1", f"/subs/{learner}", checks=checks,
                   grading=True)
    run.score = score(lab, checks, grading=True)
    return batches.classify(lab, Submission(learner, Path("/subs") / learner), run)


@pytest.fixture
def batch(lab: Lab) -> batches.Batch:
    finding = {"source": "client", "destination": "lab01/server:8080", "probe": "http /hostname",
               "expected": "CONNECTED", "observed": f"REFUSED {EVIL}", "hint": f"open it {EVIL}",
               "observations": []}
    flaps = {"source": "client", "destination": "lab01/server:8080", "expected": "CONNECTED",
             "observed": "flapping", "hint": "", "probe": "tcp",
             "observations": [{"outcome": "CONNECTED", "detail": ""},
                              {"outcome": "TIMEOUT", "detail": f"no answer {EVIL}"}]}
    full = graded(lab, "alice", [rec(f, "passed") for f in ("test_a", "test_b", "test_c",
                                                            "test_secret")])
    half = graded(lab, EVIL, [rec("test_a", "passed"), rec("test_b", "failed", finding=finding),
                              rec("test_c", "passed"),
                              rec("test_secret", "failed", message=f"plain {EVIL}", hint="h")])
    shaky = graded(lab, "carol", [rec("test_a", "passed"), rec("test_b", "passed"),
                                  rec("test_c", "unstable", finding=flaps),
                                  rec("test_secret", "passed")])
    bad = Submission("dave", Path("/subs/dave"), problems=[f"dave/p.yaml: bad {EVIL}", "second"])
    result = batches.Batch(lab, "local", lab.profile(), jobs=2, started="2026-01-01T00:00:00+00:00",
                           ended="2026-01-01T00:01:00+00:00", clusters=["grd01-beef-1"],
                           ignored=[f"notes{EVIL}.txt: not a folder"])
    result.results = [full, half, shaky, batches.invalid_result(lab, bad)]
    return result


def test_csv_parses_back_with_a_column_per_check_hidden_ones_marked(batch: batches.Batch) -> None:
    rows = list(csv.reader(io.StringIO(csvreport.render(batch))))
    assert rows[0] == ["learner", "status", "points", "possible", "percent", "test_a", "test_b",
                       "test_c", "test_secret (hidden)", "message"]
    table = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert list(table) == ["alice", EVIL, "carol", "dave"]
    assert [table["alice"][k] for k in ("status", "points", "possible", "percent")] == [
        "graded", "7", "7", "100"]
    half = table[EVIL]
    assert (half["points"], half["percent"], half["test_a"], half["test_b"],
            half["test_secret (hidden)"]) == ("3", "42.9", "2", "0", "0")
    assert half["message"] == "not passed: test_b, test_secret"
    assert (table["carol"]["status"], table["carol"]["points"]) == ("unstable", "6")
    assert table["carol"]["message"] == "unstable (a person should look): test_c"
    assert (table["dave"]["status"], table["dave"]["points"], table["dave"]["possible"]) == (
        "invalid", "0", "7")
    assert table["dave"]["message"] == f"dave/p.yaml: bad {EVIL} (and 1 more problem(s))"


def test_html_escapes_everything_a_learner_wrote(batch: batches.Batch) -> None:
    page = htmlreport.render(batch)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;") >= 6  # name x2, observed, hint, message, problem, ...
    assert "A demo &lt;lab&gt;" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page), "no external resources"
    assert "<style>" in page and "<link" not in page


def test_html_shows_failures_with_expected_observed_hint_and_unstable_observations(
        batch: batches.Batch) -> None:
    page = htmlreport.render(batch)
    sections = dict(re.findall(r'<section class="learner" id="(learner-\d)">(.*?)</section>',
                               page, re.S))
    assert "Every check passed." in sections["learner-1"]
    half = sections["learner-2"]
    for text in ("client → lab01/server:8080", "<dt>expected</dt><dd>CONNECTED</dd>",
                 "<dt>hint</dt><dd>open it &lt;script&gt;", "<dt>message</dt><dd>plain",
                 '<span class="tag">hidden</span>'):
        assert text in half, text
    shaky = sections["learner-3"]
    assert "UNSTABLE" in shaky and "<td>TIMEOUT</td>" in shaky and "<td>CONNECTED</td>" in shaky
    assert "no answer &lt;script&gt;" in shaky
    invalid = sections["learner-4"]
    assert "Not graded" in invalid and "second" in invalid
    assert 'href="#learner-4"' in page and "width: 42.9%" in page


def test_write_puts_three_files_in_the_out_folder(batch: batches.Batch, tmp_path: Path) -> None:
    written = reports.write(batch, tmp_path / "out" / "nested")
    assert [p.name for p in written.paths()] == ["grades.csv", "results.json", "report.html"]
    data = json.loads(written.json.read_text(encoding="utf-8"))
    assert (data["lab"], data["engine"], data["cni"], data["jobs"]) == ("01", "local", "kindnet", 2)
    assert data["start"] and data["end"] and data["clusters"] == ["grd01-beef-1"]
    assert [c["function"] for c in data["checks"] if c["hidden"]] == ["test_secret"]
    learners = {entry["learner"]: entry for entry in data["learners"]}
    assert learners[EVIL]["score"]["earned"] == 3 and learners[EVIL]["run"]["cluster"] == "grd01-beef-1"
    assert learners["dave"]["run"] is None and learners["dave"]["problems"][1] == "second"
    assert written.csv.read_text(encoding="utf-8") == csvreport.render(batch)
    assert not [p for p in written.csv.parent.iterdir() if p.name.startswith(".")]


def test_default_out_dir_is_named_by_lab_and_utc_time() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert reports.default_out_dir("01", when) == Path.cwd() / "grades-01-20260304T050607Z"


def test_csv_cells_never_start_a_spreadsheet_formula(lab: Lab) -> None:
    learner = '=HYPERLINK("http://evil","x")'
    result = graded(lab, learner, [rec("test_a", "passed")])
    batch = batches.Batch(lab, "local", lab.profile(), jobs=1, started="", ended="")
    batch.results = [result]
    rows = list(csv.reader(io.StringIO(csvreport.render(batch))))
    assert rows[1][0] == "'" + learner
    assert csvreport.cell("-1+2") == "'-1+2" and csvreport.cell("alice") == "alice"
