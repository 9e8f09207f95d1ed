"""Points per check, partial credit per task and per case, hidden checks only when grading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from demolab import make_demo_lab

from labs.catalogue import Lab
from labs.scoring import fmt, score, worst

TASKS = """\
  - id: first
    title: First
    description: Do it.
    checks:
      - {name: test_a, points: 2}
      - test_b
  - id: second
    title: Second
    description: Do more.
    checks:
      - {name: test_c, points: 3}
      - {name: test_secret, points: 4, hidden: true}
"""


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_demo_lab(tmp_path, TASKS)


def rec(function: str, outcome: str, case: str = "") -> dict[str, Any]:
    suffix = f"[{case}]" if case else ""
    return {"id": f"test_demo.py::{function}{suffix}", "function": function,
            "name": f"{function.removeprefix('test_')} check{' [' + case + ']' if case else ''}",
            "outcome": outcome}


def test_each_check_earns_its_points_and_a_task_gets_partial_credit(lab: Lab) -> None:
    result = score(lab, [rec("test_a", "passed"), rec("test_b", "failed"),
                         rec("test_c", "passed")], grading=False)
    first, second = result.tasks
    assert (first.earned, first.possible) == (2, 3)
    assert (second.earned, second.possible) == (3, 3)
    assert [c.function for c in result.checks] == ["test_a", "test_b", "test_c"]
    assert result.line() == "Points 5/6"
    assert not result.complete


def test_hidden_checks_count_only_when_grading(lab: Lab) -> None:
    records = [rec(n, "passed") for n in ("test_a", "test_b", "test_c")]
    visible = score(lab, records, grading=False)
    assert visible.line() == "Points 6/6" and visible.complete
    graded = score(lab, [*records, rec("test_secret", "failed")], grading=True)
    assert graded.line() == "Points 6/10" and not graded.complete
    secret = graded.checks[-1]
    assert secret.hidden and secret.outcome == "failed" and secret.possible == 4


def test_a_check_without_a_result_is_not_run_and_earns_nothing(lab: Lab) -> None:
    result = score(lab, [rec("test_a", "passed")], grading=True)
    outcomes = {c.function: c.outcome for c in result.checks}
    assert outcomes == {"test_a": "passed", "test_b": "not run", "test_c": "not run",
                        "test_secret": "not run"}
    assert result.line() == "Points 2/10"


def test_parametrised_cases_share_the_points_and_the_worst_case_names_the_outcome(lab: Lab) -> None:
    records = [rec("test_c", "passed", "x"), rec("test_c", "passed", "y"),
               rec("test_c", "failed", "z"), rec("test_a", "passed"), rec("test_b", "passed")]
    result = score(lab, records, grading=False)
    c = result.checks[-1]
    assert (c.outcome, c.cases, fmt(c.earned), c.possible) == ("failed", 3, "2", 3)
    assert c.name == "c check"  # the case suffix is dropped from the check's name
    assert result.line() == "Points 5/6"


def test_unstable_earns_nothing_and_is_listed(lab: Lab) -> None:
    result = score(lab, [rec("test_a", "passed"), rec("test_b", "unstable"),
                         rec("test_c", "passed")], grading=False)
    assert [c.function for c in result.unstable] == ["test_b"]
    assert result.line() == "Points 5/6"
    assert result.to_dict()["unstable"] == ["test_b"]


def test_a_skipped_check_does_not_count_either_way(lab: Lab) -> None:
    result = score(lab, [rec("test_a", "passed"), rec("test_b", "skipped"),
                         rec("test_c", "passed")], grading=False)
    assert result.line() == "Points 5/5"
    assert result.complete


def test_records_of_unknown_functions_earn_nothing(lab: Lab) -> None:
    result = score(lab, [rec("test_other", "passed"), {"id": "<collection>", "outcome": "error"}],
                   grading=False)
    assert result.earned == 0 and result.possible == 6


def test_worst_and_fmt() -> None:
    assert worst(["passed", "skipped", "failed"]) == "failed"
    assert worst(["failed", "unstable"]) == "unstable"
    assert worst(["passed", "something odd"]) == "error"
    assert worst([]) == "not run"
    assert (fmt(6.0), fmt(6.5), fmt(2 / 3)) == ("6", "6.5", "0.67")
