"""JUnit XML of a ``lab check`` run: one testcase per graded check of lab 01, counts that add
up, failures that carry source → destination, expected, observed and hint, and a missing
result that is a failure, never a silent pass. Parsed back with ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from check_runs import CLUSTER, finding, lab01, lab01_with_hidden, make_run, names, passing, record

from labs.reports.junit import junit_xml, xml_text


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text.encode("utf-8"))


def props(element: ET.Element) -> dict[str, str]:
    found = element.find("properties")
    assert found is not None
    return {p.get("name", ""): p.get("value", "") for p in found.findall("property")}


def case(root: ET.Element, function: str) -> ET.Element:
    for tc in root.iter("testcase"):
        if props(tc).get("function") == function:
            return tc
    raise AssertionError(f"no testcase for {function}")


def counts(element: ET.Element) -> tuple[int, int, int, int]:
    return tuple(int(element.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped"))  # type: ignore[return-value]


def test_a_passing_run_has_one_passing_testcase_per_check_classed_by_task() -> None:
    lab = lab01()
    root = parse(junit_xml(make_run(passing(lab)), lab))
    assert root.tag == "testsuites" and root.get("name") == "kube-netlab"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == f"lab 01: {lab.title}"
    assert counts(root) == counts(suite) == (len(lab.check_names()), 0, 0, 0)
    assert props(suite) == {"lab": "01", "engine": "local", "cluster": CLUSTER,
                            "grading": "false", "points": "9", "possible": "9"}
    cases = suite.findall("testcase")
    assert [props(tc)["function"] for tc in cases] == lab.check_names()
    for tc in cases:
        function = props(tc)["function"]
        task = lab.task_for_check(function)
        ref = lab.check_ref(function)
        assert task is not None and ref is not None
        assert tc.get("classname") == f"lab01.{task.id}"
        assert tc.get("name") == names()[function]
        assert float(tc.get("time", "")) == 0.1
        assert props(tc)["points"] == props(tc)["earned"] == str(ref.points)
        assert list(tc) == [tc.find("properties")], "a passing check has no failure element"


def test_a_failure_carries_expected_observed_route_and_hint() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server",)),
               record("test_client_reaches_server", "failed", found=finding())]
    root = parse(junit_xml(make_run(records), lab))
    assert counts(root) == (8, 1, 0, 0)
    assert props(root.find("testsuite"))["points"] == "7"  # type: ignore[arg-type]
    tc = case(root, "test_client_reaches_server")
    assert (props(tc)["points"], props(tc)["earned"]) == ("2", "0")
    failure = tc.find("failure")
    assert failure is not None and failure.get("type") == "failed"
    assert failure.get("message") == ("expected CONNECTED, HTTP 200, body contains 'server'; "
                                      "observed REFUSED")
    text = failure.text or ""
    assert "lab01/client → lab01/server:8080" in text and "[http /hostname]" in text
    assert "expected: CONNECTED" in text and "observed: REFUSED" in text
    assert "hint:     A containerPort does not open a port." in text


def test_a_plain_assertion_uses_the_records_message() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_server_running",)),
               record("test_server_running", "failed", message="server pod not found\nin lab01",
                      hint="Apply server.yaml")]
    failure = case(parse(junit_xml(make_run(records), lab)), "test_server_running").find("failure")
    assert failure is not None
    assert failure.get("message") == "server pod not found"
    assert failure.text == "server pod not found\nin lab01\nhint:     Apply server.yaml"


def test_unstable_not_run_skipped_and_error_each_have_their_element() -> None:
    lab = lab01()
    flapping = finding(observed="UNSTABLE over 3 probes: CONNECTED, TIMEOUT, CONNECTED")
    records = [*passing(lab, but=("test_client_reaches_server", "test_server_answers_udp",
                                  "test_server_sees_client_pod_ip", "test_server_running")),
               record("test_client_reaches_server", "unstable", found=flapping),
               record("test_server_sees_client_pod_ip", "skipped", message="no HTTP probe here"),
               record("test_server_running", "error", message="KeyError: 'pods'\n  at line 3")]
    # test_server_answers_udp has no record at all: not run.
    root = parse(junit_xml(make_run(records), lab))
    assert counts(root) == (8, 2, 1, 1)
    unstable = case(root, "test_client_reaches_server").find("failure")
    assert unstable is not None and unstable.get("type") == "unstable"
    assert (unstable.get("message") or "").startswith("UNSTABLE: expected CONNECTED")
    assert "observed: UNSTABLE over 3 probes: CONNECTED, TIMEOUT, CONNECTED" in (unstable.text or "")
    missing = case(root, "test_server_answers_udp")
    assert missing.get("name") == names()["test_server_answers_udp"], "named as when it runs"
    not_run = missing.find("failure")
    assert not_run is not None and not_run.get("type") == "not run"
    assert "no result came back" in (not_run.get("message") or "")
    skipped = case(root, "test_server_sees_client_pod_ip").find("skipped")
    assert skipped is not None and skipped.get("message") == "no HTTP probe here"
    assert props(case(root, "test_server_sees_client_pod_ip"))["possible"] == "0"
    error = case(root, "test_server_running").find("error")
    assert error is not None and error.get("message") == "KeyError: 'pods'"
    assert props(root.find("testsuite"))["possible"] == "8"  # type: ignore[arg-type]


def test_apply_error_makes_every_check_a_not_run_failure_with_the_reason() -> None:
    lab = lab01()
    why = "server.yaml: document 1: mapping values are not allowed here (line 4)"
    root = parse(junit_xml(make_run([], apply_error=why), lab))
    n = len(lab.check_names())
    assert counts(root) == (n, n, 0, 0)
    suite = root.find("testsuite")
    assert suite is not None
    assert props(suite)["points"] == "0" and props(suite)["apply_error"] == why
    for tc in suite.findall("testcase"):
        failure = tc.find("failure")
        assert failure is not None and failure.get("type") == "not run"
        assert why in (failure.get("message") or "") and why in (failure.text or "")
    assert why in (suite.findtext("system-err") or "")


def test_a_crashed_run_shows_its_error_besides_the_not_run_checks() -> None:
    lab = lab01()
    crash = {"id": "pytest", "name": "the checks could not run", "outcome": "error",
             "message": "ImportError: no module named grader"}
    root = parse(junit_xml(make_run([crash]), lab))
    n = len(lab.check_names())
    assert counts(root) == (n + 1, n, 1, 0)
    stray = [tc for tc in root.iter("testcase") if tc.get("classname") == "lab01"]
    assert len(stray) == 1 and stray[0].get("name") == "the checks could not run"
    error = stray[0].find("error")
    assert error is not None and error.get("message") == "ImportError: no module named grader"


def test_parametrised_cases_share_the_points_and_list_the_failing_case() -> None:
    lab = lab01()
    records = [*passing(lab, but=("test_client_reaches_server",)),
               record("test_client_reaches_server", "passed", case="ipv4"),
               record("test_client_reaches_server", "failed", case="ipv6",
                      found=finding(observed="TIMEOUT"))]
    tc = case(parse(junit_xml(make_run(records), lab)), "test_client_reaches_server")
    assert (props(tc)["earned"], props(tc)["possible"]) == ("1", "2")
    assert tc.get("time") == "0.200"
    failure = tc.find("failure")
    assert failure is not None and failure.get("message", "").endswith("observed TIMEOUT")
    assert "[ipv6]: FAILED" in (failure.text or "") and "[ipv4]" not in (failure.text or "")


def test_hidden_checks_are_marked_when_grading() -> None:
    lab = lab01_with_hidden()
    graded = parse(junit_xml(make_run(passing(lab, grading=True), lab=lab, grading=True), lab))
    assert props(graded.find("testsuite"))["grading"] == "true"  # type: ignore[arg-type]
    assert props(case(graded, "test_placement_is_declared"))["hidden"] == "true"
    assert int(graded.get("tests", "0")) == len(lab.check_names(grading=True))
    visible = parse(junit_xml(make_run(passing(lab), lab=lab), lab))
    assert "test_placement_is_declared" not in [props(tc)["function"]
                                                for tc in visible.iter("testcase")]


def test_control_characters_are_removed_and_markup_is_escaped() -> None:
    lab = lab01()
    nasty = "bad\x00 body\x1b[31m <b>&amp;</b> \ud800 \"q\" → ok"
    records = [*passing(lab, but=("test_client_reaches_server",)),
               record("test_client_reaches_server", "failed", found=finding(observed=nasty))]
    text = junit_xml(make_run(records), lab)
    assert "\x00" not in text and "\x1b" not in text
    failure = case(parse(text), "test_client_reaches_server").find("failure")
    assert failure is not None
    assert failure.get("message", "").endswith('observed bad body[31m <b>&amp;</b>  "q" → ok')
    assert xml_text("tab\tnew\nline\r\x07\x0b\uffff") == "tab\tnew\nline\r"
