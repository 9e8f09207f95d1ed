"""The GitHub Classroom autograding form of a ``lab check`` run of lab 01: the points the
reporter sums, the statuses that make it fail the job, skipped checks left out, and the
one-line base64 it decodes from ``<RUNNER>_RESULTS``."""

from __future__ import annotations

import base64
import json

from check_runs import finding, lab01, lab01_with_hidden, make_run, names, passing, record

from labs.reports.classroom import classroom_result, encode_for_github_output

CHECK_FILE = "labs/01-pod-networking/checks/test_pod_networking.py"


def by_name(result: dict) -> dict[str, dict]:
    return {t["name"]: t for t in result["tests"]}


def test_a_passing_run_lists_every_check_with_its_points() -> None:
    lab = lab01()
    result = classroom_result(make_run(passing(lab)), lab)
    assert result["version"] == 1 and result["status"] == "pass"
    assert result["max_score"] == 9
    assert [t["name"] for t in result["tests"]] == [names()[f] for f in lab.check_names()]
    assert sum(t["score"] for t in result["tests"]) == 9
    for test, function in zip(result["tests"], lab.check_names(), strict=True):
        ref = lab.check_ref(function)
        assert ref is not None
        assert test == {"name": names()[function], "status": "pass", "score": ref.points,
                        "max_score": ref.points, "message": "",
                        "test_code": f"lab check 01 ({function})", "filename": CHECK_FILE,
                        "line_no": lab.check_defs()[function].line,
                        "execution_time": "0.10s"}


def test_failed_unstable_and_not_run_are_fails_with_their_reason() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server", "test_server_running",
                                  "test_server_answers_udp")),
               record("test_client_reaches_server", "failed", found=finding()),
               record("test_server_running", "unstable",
                      found=finding(observed="UNSTABLE over 3 probes: CONNECTED, REFUSED"))]
    result = classroom_result(make_run(records), lab)
    assert result["status"] == "fail" and result["max_score"] == 9
    tests = by_name(result)
    failed = tests[names()["test_client_reaches_server"]]
    assert (failed["status"], failed["score"], failed["max_score"]) == ("fail", 0, 2)
    assert failed["message"].startswith(
        "expected CONNECTED, HTTP 200, body contains 'server'; observed REFUSED\n")
    assert "lab01/client → lab01/server:8080" in failed["message"]
    assert "hint:     A containerPort does not open a port." in failed["message"]
    unstable = tests[names()["test_server_running"]]
    assert unstable["status"] == "fail" and unstable["message"].startswith("UNSTABLE:")
    not_run = tests[names()["test_server_answers_udp"]]
    assert (not_run["status"], not_run["score"]) == ("fail", 0)
    assert "no result came back" in not_run["message"]
    assert not_run["filename"] == CHECK_FILE, "found by its def line though it did not run"
    assert not_run["execution_time"] == "0.00s"
    assert sum(t["score"] for t in result["tests"]) == 9 - 2 - 1 - 1


def test_skipped_checks_are_left_out_and_do_not_count() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_server_answers_udp",)),
               record("test_server_answers_udp", "skipped", message="no UDP probe on this engine")]
    result = classroom_result(make_run(records), lab)
    assert names()["test_server_answers_udp"] not in by_name(result)
    assert result["max_score"] == 8 and result["status"] == "pass"
    assert len(result["tests"]) == len(lab.check_names()) - 1


def test_an_erroring_check_makes_the_run_an_error() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_server_running",)),
               record("test_server_running", "error", message="RuntimeError: boom")]
    result = classroom_result(make_run(records), lab)
    assert result["status"] == "error"
    errored = by_name(result)[names()["test_server_running"]]
    assert errored["status"] == "error" and errored["message"] == "RuntimeError: boom"


def test_apply_error_is_an_error_with_every_check_a_fail_worth_nothing() -> None:
    lab = lab01()
    why = "workspace: client.yaml is a symlink leading outside the workspace"
    result = classroom_result(make_run([], apply_error=why), lab)
    assert result["status"] == "error" and result["max_score"] == 9
    assert len(result["tests"]) == len(lab.check_names())
    for test in result["tests"]:
        assert (test["status"], test["score"]) == ("fail", 0)
        assert why in test["message"]


def test_a_crashed_run_lists_its_error() -> None:
    lab = lab01()
    crash = {"id": "pytest", "name": "the checks could not run", "outcome": "error",
             "message": "ImportError: no module named grader"}
    result = classroom_result(make_run([crash]), lab)
    assert result["status"] == "error"
    stray = by_name(result)["the checks could not run"]
    assert (stray["status"], stray["score"], stray["max_score"]) == ("error", 0, 0)


def test_shared_points_are_rounded_and_grading_shows_in_the_test_code() -> None:
    lab = lab01_with_hidden()
    records = [*passing(lab, grading=True, but=("test_client_reaches_server",)),
               record("test_client_reaches_server", "passed", case="a"),
               record("test_client_reaches_server", "failed", case="b", found=finding()),
               record("test_client_reaches_server", "failed", case="c", found=finding())]
    result = classroom_result(make_run(records, lab=lab, grading=True), lab)
    shared = by_name(result)[names()["test_client_reaches_server"]]
    assert (shared["score"], shared["max_score"]) == (0.67, 2)
    assert shared["test_code"] == "lab check 01 --grading (test_client_reaches_server)"
    assert names()["test_placement_is_declared"] in by_name(result), "hidden check graded"
    assert result["max_score"] == 9


def test_github_output_value_is_one_line_of_base64_that_decodes_to_the_document() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server",)),
               record("test_client_reaches_server", "failed",
                      found=finding(observed="TIMEOUT\nafter 3 s \x00 ünïcode → ok"))]
    result = classroom_result(make_run(records), lab)
    encoded = encode_for_github_output(result)
    assert "\n" not in encoded and "\r" not in encoded
    assert encoded.isascii()
    decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    assert json.loads(decoded) == result
