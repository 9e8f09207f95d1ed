"""The grader's DNS probe (Prober.dns, expect_dns, DnsWant) and Prober.matrix."""

from __future__ import annotations

from typing import Any

import pytest
from test_matrix_fakes import ScriptedCluster, pod

from clusters.probing import Observation, Outcome
from grader import CheckFailed, Pods, Prober
from grader.dns import DnsSettled, DnsWant, describe_response, expect_dns

CLIENT = pod("lab02", "client", "10.244.1.4", app="client")
WEB = "web.lab02.svc.cluster.local"


def answer(rcode: str = "NOERROR", *records: tuple[str, Any], name: str = WEB + ".") -> Observation:
    return Observation(Outcome.CONNECTED, elapsed=0.002, extra={
        "rcode": rcode, "qname": name,
        "records": [{"name": name, "type": kind, "ttl": 5, "data": data} for kind, data in records]})


def prober(script: dict[tuple[str, str], list[Any]], *objects: dict[str, Any]) -> Prober:
    cluster = ScriptedCluster([CLIENT, *objects], script)
    return Prober(cluster, Pods(cluster), settle_seconds=0.3, namespaces=("lab02",))


def test_dns_matches_the_answers_and_passes_the_query_through() -> None:
    probe = prober({("lab02/client", WEB): [answer("NOERROR", ("A", "10.96.0.7"))]})
    settled = probe.dns("client", WEB, "a", "tcp", True, "10.96.0.10", answers=["10.96.0.7"])
    assert isinstance(settled, DnsSettled) and settled.matched
    assert settled.rcode == "NOERROR" and settled.answers == ["10.96.0.7"]
    assert settled.summary() == "NOERROR: A 10.96.0.7"
    spec = probe.cluster.probes[0]  # type: ignore[attr-defined]
    assert (spec.kind, spec.target, spec.qtype, spec.transport, spec.search, spec.dns_server) == (
        "dns", WEB, "A", "tcp", True, "10.96.0.10")
    assert str(spec.source) == "lab02/client"


def test_dns_settles_until_the_name_appears() -> None:
    probe = prober({("lab02/client", WEB): [answer("NXDOMAIN"),
                                            answer("NOERROR", ("A", "10.96.0.7"))]})
    settled = probe.dns("lab02/client", WEB, answers=["10.96.0.7"])
    assert settled.matched
    assert [o.extra["rcode"] for o in settled.observations] == ["NXDOMAIN", "NOERROR",
                                                                "NOERROR", "NOERROR"]


def test_expect_dns_on_nxdomain_names_the_namespace_to_look_in() -> None:
    probe = prober({("lab02/client", WEB): [answer("NXDOMAIN")]})
    with pytest.raises(CheckFailed) as failed:
        expect_dns(probe, "client", WEB, answers=["10.96.0.7"])
    finding = failed.value.finding
    assert finding.expected == "NOERROR, A 10.96.0.7"
    assert finding.observed == "NXDOMAIN"
    assert finding.hint_key == "NXDOMAIN" and finding.probe == "dns A/udp"
    assert "no Service web in namespace lab02" in finding.hint
    assert "lab get svc -n lab02" in finding.hint
    assert finding.source == "client" and finding.destination == f"{WEB} A"


def test_expect_dns_on_other_answers_says_which() -> None:
    probe = prober({("lab02/client", WEB): [answer("NOERROR", ("A", "10.96.0.8"))]})
    with pytest.raises(CheckFailed) as failed:
        expect_dns(probe, "client", WEB, answers=["10.96.0.7"],
                   hints={"ANSWERS": "Recreate the Service with clusterIP 10.96.0.7."})
    finding = failed.value.finding
    assert finding.observed == "NOERROR: A 10.96.0.8" and finding.hint_key == "ANSWERS"
    assert finding.hint == "Recreate the Service with clusterIP 10.96.0.7."
    assert not finding.hint_is_generic


def test_no_records_of_the_type_is_nodata() -> None:
    only_cname = answer("NOERROR", ("CNAME", "example.com."))
    probe = prober({("lab02/client", WEB): [only_cname]})
    with pytest.raises(CheckFailed) as failed:
        expect_dns(probe, "client", WEB, answers=["93.184.216.34"])
    assert failed.value.finding.hint_key == "NODATA"
    assert failed.value.finding.observed == "NOERROR, no A records (CNAME example.com.)"


def test_expected_nxdomain_passes_and_an_answer_fails_it() -> None:
    gone = prober({("lab02/client", "nope.lab02.svc.cluster.local"): [answer("NXDOMAIN")]})
    assert expect_dns(gone, "client", "nope.lab02.svc.cluster.local", rcode="nxdomain").matched
    there = prober({("lab02/client", WEB): [answer("NOERROR", ("A", "10.96.0.7"))]})
    with pytest.raises(CheckFailed) as failed:
        expect_dns(there, "client", WEB, rcode="NXDOMAIN")
    assert failed.value.finding.hint_key == "NOERROR"
    assert failed.value.finding.expected == "NXDOMAIN"


def test_no_response_is_judged_by_its_outcome() -> None:
    probe = prober({("lab02/client", WEB): [Observation(Outcome.TIMEOUT, elapsed=2.0)]})
    with pytest.raises(CheckFailed) as failed:
        expect_dns(probe, "client", WEB)
    finding = failed.value.finding
    assert finding.hint_key == "TIMEOUT" and finding.observed == "TIMEOUT after 2.0s"
    assert finding.expected == "a DNS response" and "port 53" in finding.hint


def test_a_dns_refused_rcode_is_not_a_refused_connection() -> None:
    want = DnsWant.for_query("A", rcode="NOERROR")
    assert want.mismatch(answer("REFUSED")) == "RCODE_REFUSED"
    assert want.mismatch(Observation(Outcome.REFUSED)) == "REFUSED"


def test_answers_compare_case_and_trailing_dots_and_srv_data() -> None:
    srv = {"priority": 0, "weight": 100, "port": 80, "target": "web.lab02.svc.cluster.local."}
    obs = answer("NOERROR", ("SRV", srv), ("SRV", {**srv, "port": 81}))
    exact = DnsWant.for_query("srv", answers=["0 100 80 WEB.lab02.svc.cluster.local",
                                              "0 100 81 web.lab02.svc.cluster.local."])
    assert exact.matches(obs)
    some = DnsWant.for_query("SRV", answers=["0 100 80 web.lab02.svc.cluster.local."])
    assert not some.matches(obs) and some.mismatch(obs) == "ANSWERS"
    assert DnsWant.for_query("SRV", answers=["0 100 80 web.lab02.svc.cluster.local"],
                             subset=True).matches(obs)
    assert describe_response(obs, "SRV") == (
        "NOERROR: SRV 0 100 80 web.lab02.svc.cluster.local., "
        "0 100 81 web.lab02.svc.cluster.local.")


def test_unstable_answers_never_pass() -> None:
    probe = prober({("lab02/client", WEB): [answer("NOERROR", ("A", "10.96.0.7")),
                                            answer("NOERROR", ("A", "10.96.0.9"))]})
    settled = probe.dns("client", WEB, answers=["10.96.0.7"])
    assert not settled.matched and not settled.stable and settled.hint_key == "UNSTABLE"
    assert settled.summary() == "UNSTABLE over 2 queries: NOERROR: A 10.96.0.7, NOERROR: A 10.96.0.9"


def test_bad_queries_are_refused() -> None:
    probe = prober({})
    with pytest.raises(ValueError, match="record type 'MX'"):
        probe.dns("client", WEB, "MX")
    with pytest.raises(ValueError, match="transport 'quic'"):
        probe.dns("client", WEB, transport="quic")
    with pytest.raises(ValueError, match="rcode 'GONE'"):
        probe.dns("client", WEB, expect_rcode="GONE")


def test_a_missing_source_pod_fails_the_check_naming_it() -> None:
    probe = prober({})
    with pytest.raises(CheckFailed) as failed:
        probe.dns("lab02/ghost", WEB)
    assert "pod lab02/ghost exists" in failed.value.finding.expected
    assert "client" in failed.value.finding.observed


# --------------------------------------------------------------------------- Prober.matrix


def test_matrix_uses_the_lab_namespaces_by_default() -> None:
    server = pod("lab02", "server", "10.244.2.5", app="server")
    elsewhere = pod("other", "x", "10.244.2.9")
    probe = prober({("lab02/client", "10.244.2.5:8080"): [Outcome.TIMEOUT]}, server, elsewhere)
    result = probe.matrix(ports=[8080], attempts=2)
    assert result.sources == ["lab02/client", "lab02/server"]
    assert result.cell("lab02/client", "lab02/server", 8080).blocked
    assert result.cell("lab02/server", "lab02/client", 8080).allowed
    wider = probe.matrix(["lab02", "other"], [8080])
    assert "other/x" in wider.destinations


def test_matrix_without_pods_fails_the_check() -> None:
    with pytest.raises(CheckFailed) as failed:
        prober({}).matrix(["empty"], [80])
    assert failed.value.finding.expected == "running pods with IPs in empty"
