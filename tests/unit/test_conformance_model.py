"""Loading acceptance files: every problem located as file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.conformance.model import ConformanceFileError, load, parse

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"

GOOD = """\
suite: t
version: 1
fixture: f
fixtures:
  f:
    description: one namespace
    objects: |
      apiVersion: v1
      kind: Namespace
      metadata:
        name: t
cases:
  - id: C1
    title: first
    steps:
      - probe:
          dns: {from: t/client, name: s.t.svc.cluster.local., type: A}
        expect:
          answers: ['{{clusterIP t/s}}']
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConformanceFileError) as err:
        parse(text, Path("case.yaml"))
    return err.value.problems


@pytest.mark.parametrize("name", ["services", "dns", "netpol", "ingress"])
def test_the_shared_acceptance_files_load(name: str) -> None:
    suite = load(ACCEPTANCE / f"{name}.yaml")
    assert suite.cases and suite.objects and suite.namespaces


def test_a_good_file_becomes_typed_data() -> None:
    suite = parse(GOOD, Path("case.yaml"))
    assert (suite.suite, suite.fixture, suite.namespaces) == ("t", "f", ("t",))
    step = suite.case("C1").steps[0]
    assert (step.probe_kind, step.line) == ("dns", 16)
    assert step.expect == {"answers": ["{{clusterIP t/s}}"]}


def test_an_unknown_probe_kind_is_located_and_the_kinds_listed() -> None:
    found = problems(GOOD.replace("dns: {from", "dsn: {from"))
    assert found == ["case.yaml:17: cases[0].steps[0].probe: unknown probe kind 'dsn' (expected "
                     "one of matrix, requests, http, dns, read_file, ingress_status)"]


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("type: A}", "type: MX, colour: red}").replace("answers:", "anwsers:")
    found = problems(text)
    assert "case.yaml:17: cases[0].steps[0].probe.dns.colour: unknown field 'colour'" in found[0]
    assert any("probe.dns.type: unknown type 'MX'" in p for p in found)
    assert any(p.startswith("case.yaml:19: cases[0].steps[0].expect.anwsers: unknown field")
               for p in found)


def test_embedded_manifests_must_parse_and_name_their_objects() -> None:
    found = problems(GOOD.replace("        name: t\n", "        nam: t\n"))
    assert found == ["case.yaml:8: fixtures.f.objects: document 1 lacks metadata.name"]
    broken = GOOD.replace("      kind: Namespace\n", "      kind: [Namespace\n")
    assert problems(broken)[0].startswith("case.yaml:10: fixtures.f.objects: embedded manifest "
                                          "is not valid YAML")


def test_placeholders_are_checked_by_name_and_arity() -> None:
    found = problems(GOOD.replace("{{clusterIP t/s}}", "{{clusterIp t/s}}"))
    assert "expect.answers[0]: unknown placeholder {{clusterIp}}" in found[0]
    found = problems(GOOD.replace("{{clusterIP t/s}}", "{{nodePort t/s}}"))
    assert "{{nodePort}} takes 2 argument(s), got 1" in found[0]


def test_duplicate_ids_missing_fields_and_bad_yaml() -> None:
    doubled = GOOD + GOOD[GOOD.index("  - id: C1"):]
    assert any("duplicate case id 'C1'" in p for p in problems(doubled))
    no_expect = GOOD.replace("        expect:\n          answers: ['{{clusterIP t/s}}']\n", "")
    assert any("required field 'expect' is missing" in p for p in problems(no_expect))
    assert problems("cases: [\n")[0].startswith("case.yaml:2: invalid YAML")
    assert "fixture 'g' is not defined" in problems(GOOD.replace("fixture: f", "fixture: g"))[0]


def test_expectations_must_fit_their_probe() -> None:
    found = problems(GOOD.replace("answers: ['{{clusterIP t/s}}']", "all_succeed: true"))
    assert "expect.all_succeed: unknown field 'all_succeed' (expected one of answers, rcode)" \
        in found[0]
    requests = GOOD.replace("dns: {from: t/client, name: s.t.svc.cluster.local., type: A}",
                            "requests: {from: host, to: 'x.t', count: 0, protocol: udp}") \
        .replace("answers: ['{{clusterIP t/s}}']", "outcome: lost")
    found = problems(requests)
    assert any("count: expected a whole number >= 1" in p for p in found)
    assert any("protocol: expected tcp or http" in p for p in found)
    assert any("unknown outcome 'lost'" in p for p in found)
