"""JUnit XML of one ``lab check`` run: what CI systems show in their test tabs.

One ``<testcase>`` per check the run grades (hidden ones too when grading), named as the
learner sees it and classed ``lab<NN>.<task id>``, so a CI test tab groups checks by task.
A check that did not pass carries its finding (source → destination, expected, observed,
hint) in the element's text and ``expected ...; observed ...`` in its ``message``. A check
without a result ("not run") is a failure, never a silent pass; unstable is a failure of
type ``unstable``. Points ride along as ``<property>`` elements, so tools that read
properties (and people) see what each check earned.

Written with :mod:`xml.etree.ElementTree`, which escapes markup characters; the characters
XML 1.0 cannot carry at all (most control characters, from a probe's body or a crash's
output) are removed first, so the file always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.reports import describe
from labs.scoring import NOT_RUN, CheckScore, fmt

SUITES_NAME = "kube-netlab"
#: Characters XML 1.0 forbids (everything outside its Char production).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FAILURE_TYPES = {"failed": "failed", "unstable": "unstable", NOT_RUN: "not run"}


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can hold: control characters and lone surrogates removed."""
    return _NOT_XML.sub("", str(value))


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text:
        element.text = xml_text(text)
    return element


def _properties(parent: ET.Element, values: Mapping[str, object]) -> None:
    props = _el(parent, "properties")
    for name, value in values.items():
        _el(props, "property", name=name, value=value)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _lower(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_case(suite: ET.Element, check: CheckScore, run: CheckRun, lab: Lab) -> str:
    """Add ``check``'s testcase; return the JUnit kind it counts as."""
    case = _el(suite, "testcase", classname=f"lab{lab.id}.{check.task}", name=check.name,
               time=_seconds(describe.duration(check)))
    _properties(case, {"function": check.function, "points": fmt(check.points),
                       "earned": fmt(check.earned), "possible": fmt(check.possible),
                       "hidden": _lower(check.hidden), "outcome": check.outcome})
    text = describe.details(check, run)
    message = describe.summary(check, run)
    if check.outcome in _FAILURE_TYPES:
        _el(case, "failure", text, message=message, type=_FAILURE_TYPES[check.outcome])
        return "failure"
    if check.outcome == "skipped":
        _el(case, "skipped", text if text != message else None, message=message)
        return "skipped"
    if check.outcome != "passed":  # error, or an outcome this version does not know
        _el(case, "error", text, message=message or check.outcome, type=check.outcome)
        return "error"
    return "passed"


def _stray_case(suite: ET.Element, record: Mapping[str, Any], lab: Lab) -> str:
    """A result outside the lab's tasks that did not pass (collection error, crashed run)."""
    case = _el(suite, "testcase", classname=f"lab{lab.id}", name=record.get("name") or
               record.get("id") or "the checks", time=_seconds(float(record.get("duration") or 0)))
    _properties(case, {"points": "0", "earned": "0", "possible": "0",
                       "outcome": record.get("outcome", "error")})
    kind = "failure" if record.get("outcome") == "failed" else "error"
    _el(case, kind, describe.record_details(record), message=describe.record_summary(record),
        type=record.get("outcome", "error"))
    return kind


def junit_element(run: CheckRun, lab: Lab) -> ET.Element:
    """The ``<testsuites>`` element of ``run`` (see :func:`junit_xml` for the text)."""
    result = describe.run_score(run, lab)
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite")
    suite_props: dict[str, object] = {
        "lab": lab.id, "engine": run.engine, "cluster": run.cluster,
        "grading": _lower(run.grading), "points": fmt(result.earned),
        "possible": fmt(result.possible)}
    if run.apply_error:
        suite_props["apply_error"] = run.apply_error
    if run.not_ready:
        suite_props["not_ready"] = run.not_ready
    _properties(suite, suite_props)
    kinds = [_check_case(suite, c, run, lab) for c in result.checks]
    kinds += [_stray_case(suite, r, lab) for r in describe.strays(run)]
    elapsed = sum(describe.duration(c) for c in result.checks) + sum(
        float(r.get("duration") or 0) for r in describe.strays(run))
    counts = {"name": "", "tests": len(kinds), "failures": kinds.count("failure"),
              "errors": kinds.count("error"), "skipped": kinds.count("skipped"),
              "time": _seconds(elapsed)}
    for element, name in ((root, SUITES_NAME), (suite, f"lab {lab.id}: {lab.title}")):
        for key, value in {**counts, "name": name}.items():
            element.set(key, xml_text(value))
    if run.apply_error:
        _el(suite, "system-err", f"your workspace could not be applied:\n{run.apply_error}")
    return root


def junit_xml(run: CheckRun, lab: Lab) -> str:
    """``run`` as a JUnit XML document (UTF-8 text with its declaration, indented)."""
    root = junit_element(run, lab)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
