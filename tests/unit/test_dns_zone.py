"""Zone answers: the Kubernetes DNS spec and CoreDNS behaviour, from plain objects.

The fixture mirrors the ``dns`` fixture of the acceptance cases (D1-D5): in namespace n,
ClusterIP Services s (named port http) and s2 (unnamed port), headless h over ready pods
p1-p3 (hostnames, subdomain h) and never-ready u1, and headless h0 whose only endpoint is u1.
"""

from __future__ import annotations

from typing import Any

import dns.edns
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from clusters.local.dns.zone import NO_UPSTREAM, TTL, Answer, Zone

POD_IPS = {"p1": "10.244.1.11", "p2": "10.244.2.12", "p3": "10.244.1.13", "u1": "10.244.2.14"}
CLUSTER_IPS = {"s": "10.96.0.20", "s2": "10.96.0.21", "kube-dns": "10.96.0.10"}


def service(name: str, ns: str = "n", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint(pod: str, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [POD_IPS[pod]],
                          "targetRef": {"kind": "Pod", "namespace": "n", "name": pod}}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(svc: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]],
                   ns: str = "n", address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def pod(name: str, ns: str = "n") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "status": {"podIP": POD_IPS.get(name)}}


HTTP = {"name": "http", "protocol": "TCP", "port": 8080}
ECHO = {"name": "echo", "protocol": "UDP", "port": 8081}
WEB = [endpoint("p1", hostname="p1"), endpoint("p2", hostname="p2"),
       endpoint("p3", hostname="p3"), endpoint("u1", ready=False, hostname="u1")]


def fixture_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    services = [
        service("s", clusterIP=CLUSTER_IPS["s"], type="ClusterIP",
                ports=[{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]),
        service("s2", clusterIP=CLUSTER_IPS["s2"],
                ports=[{"protocol": "TCP", "port": 80, "targetPort": 8080}]),
        service("h", clusterIP="None", ports=[HTTP, ECHO]),
        service("h0", clusterIP="None", ports=[HTTP]),
        service("ext", type="ExternalName", externalName="www.example.com"),
        service("alias", type="ExternalName", externalName="s.n.svc.cluster.local"),
        service("kube-dns", "kube-system", clusterIP=CLUSTER_IPS["kube-dns"],
                ports=[{"name": "dns", "protocol": "UDP", "port": 53}]),
    ]
    unnamed = [{"protocol": "TCP", "port": 8080}]
    slices = [
        endpoint_slice("s", [endpoint(p) for p in ("p1", "p2", "p3")] + [endpoint("u1", False)],
                       [HTTP]),
        endpoint_slice("s2", [endpoint(p) for p in ("p1", "p2", "p3")], unnamed),
        endpoint_slice("h", WEB, [HTTP, ECHO]),
        endpoint_slice("h0", [endpoint("u1", ready=False, hostname="u1")], [HTTP]),
        endpoint_slice("ghost", [endpoint("p1")], [HTTP]),  # a slice whose Service is gone
    ]
    pods = [pod(p) for p in POD_IPS] + [pod("client"), pod("client", "other")]
    return services, slices, pods


@pytest.fixture(scope="module")
def zone() -> Zone:
    return Zone.build(*fixture_objects())


def values(answer: Answer, rdtype: str) -> set[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return {rdata.to_text() for rrset in answer.answer_rrs if rrset.rdtype == wanted
            for rdata in rrset}


def addresses(answer: Answer) -> set[str]:
    return values(answer, "A")


def is_nodata(answer: Answer) -> bool:
    return (answer.rcode == dns.rcode.NOERROR and not answer.answer_rrs
            and [r.rdtype for r in answer.authority_rrs] == [dns.rdatatype.SOA])


def is_nxdomain(answer: Answer) -> bool:
    return (answer.rcode == dns.rcode.NXDOMAIN
            and [r.rdtype for r in answer.authority_rrs] == [dns.rdatatype.SOA])


# -- D1: ClusterIP A records ------------------------------------------------------------


def test_clusterip_service_has_an_a_record(zone: Zone) -> None:
    answer = zone.answer("s.n.svc.cluster.local.", "A")
    assert answer.rcode == dns.rcode.NOERROR and answer.authoritative
    assert addresses(answer) == {CLUSTER_IPS["s"]}
    assert all(rrset.ttl == TTL for rrset in answer.answer_rrs)


def test_partial_names_do_not_exist_in_the_zone(zone: Zone) -> None:
    """Only full names exist; short forms work through the client's search list."""
    assert is_nxdomain(zone.answer("s.n.svc.cluster.local.n.svc.cluster.local.", "A"))
    assert is_nxdomain(zone.answer("s.n.n.svc.cluster.local.", "A"))


@pytest.mark.parametrize("spelling", ["S.N.SVC.CLUSTER.LOCAL.", "s.N.svc.Cluster.local"])
def test_names_ignore_case_and_answers_keep_the_question_spelling(zone: Zone, spelling: str) -> None:
    answer = zone.answer(spelling, "A")
    assert addresses(answer) == {CLUSTER_IPS["s"]}
    owner = answer.answer_rrs[0].name.to_text()
    assert owner == spelling.rstrip(".") + "."


# -- D2: SRV ----------------------------------------------------------------------------


def test_named_port_of_a_clusterip_service_has_srv_to_the_service(zone: Zone) -> None:
    answer = zone.answer("_http._tcp.s.n.svc.cluster.local.", "SRV")
    [srv] = [r for rrset in answer.answer_rrs for r in rrset]
    assert (srv.port, srv.target.to_text()) == (80, "s.n.svc.cluster.local.")
    assert {r.to_text() for rrset in answer.additional_rrs for r in rrset} == {CLUSTER_IPS["s"]}


def test_unnamed_port_has_no_srv(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("_http._tcp.s2.n.svc.cluster.local.", "SRV"))
    assert is_nxdomain(zone.answer("_.tcp.s2.n.svc.cluster.local.", "SRV"))


def test_srv_protocol_must_match(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("_http._udp.s.n.svc.cluster.local.", "SRV"))


def test_headless_srv_lists_each_ready_endpoint_with_the_endpoint_port(zone: Zone) -> None:
    answer = zone.answer("_echo._udp.h.n.svc.cluster.local.", "SRV")
    got = {(r.port, r.target.to_text()) for rrset in answer.answer_rrs for r in rrset}
    assert got == {(8081, f"{p}.h.n.svc.cluster.local.") for p in ("p1", "p2", "p3")}
    extra = {(rrset.name.to_text(), r.to_text()) for rrset in answer.additional_rrs for r in rrset}
    assert extra == {(f"{p}.h.n.svc.cluster.local.", POD_IPS[p]) for p in ("p1", "p2", "p3")}


def test_headless_srv_without_hostname_targets_the_dashed_address() -> None:
    zone = Zone.build([service("h", clusterIP="None", ports=[HTTP])],
                      [endpoint_slice("h", [endpoint("p1")], [HTTP])], [])
    answer = zone.answer("_http._tcp.h.n.svc.cluster.local.", "SRV")
    [srv] = [r for rrset in answer.answer_rrs for r in rrset]
    assert srv.target.to_text() == "10-244-1-11.h.n.svc.cluster.local."
    assert addresses(zone.answer("10-244-1-11.h.n.svc.cluster.local.", "A")) == {POD_IPS["p1"]}


# -- D3: PTR ----------------------------------------------------------------------------


def test_clusterip_has_a_ptr_record(zone: Zone) -> None:
    answer = zone.answer("20.0.96.10.in-addr.arpa.", "PTR")
    assert values(answer, "PTR") == {"s.n.svc.cluster.local."}


def test_ready_endpoint_address_has_ptr_records_for_its_services(zone: Zone) -> None:
    answer = zone.answer("11.1.244.10.in-addr.arpa.", "PTR")
    assert values(answer, "PTR") == {"p1.h.n.svc.cluster.local.", "10-244-1-11.s.n.svc.cluster.local.",
                                     "10-244-1-11.s2.n.svc.cluster.local."}


def test_not_ready_endpoint_has_no_ptr(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("14.2.244.10.in-addr.arpa.", "PTR"))


def test_reverse_names_outside_the_cluster_ranges_have_no_upstream(zone: Zone) -> None:
    answer = zone.answer("1.2.0.192.in-addr.arpa.", "PTR")
    assert answer.rcode == dns.rcode.SERVFAIL and not answer.authoritative
    assert answer.ede == (int(dns.edns.EDECode.NO_REACHABLE_AUTHORITY), NO_UPSTREAM)


def test_partial_reverse_names(zone: Zone) -> None:
    assert is_nodata(zone.answer("96.10.in-addr.arpa.", "PTR"))  # has names below it
    assert is_nxdomain(zone.answer("200.96.10.in-addr.arpa.", "PTR"))  # inside the Service range
    assert zone.answer("97.10.in-addr.arpa.", "PTR").rcode == dns.rcode.SERVFAIL


# -- D4, D5: headless -------------------------------------------------------------------


def test_headless_service_answers_exactly_its_ready_endpoints(zone: Zone) -> None:
    answer = zone.answer("h.n.svc.cluster.local.", "A")
    assert addresses(answer) == {POD_IPS[p] for p in ("p1", "p2", "p3")}


def test_headless_service_without_ready_endpoints_is_nxdomain(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("h0.n.svc.cluster.local.", "A"))
    assert is_nxdomain(zone.answer("_http._tcp.h0.n.svc.cluster.local.", "SRV"))


def test_endpoint_hostname_resolves_under_its_service(zone: Zone) -> None:
    assert addresses(zone.answer("p1.h.n.svc.cluster.local.", "A")) == {POD_IPS["p1"]}
    assert addresses(zone.answer("P2.H.n.svc.cluster.local.", "A")) == {POD_IPS["p2"]}


def test_not_ready_endpoint_hostname_does_not_resolve(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("u1.h.n.svc.cluster.local.", "A"))


def test_endpoint_without_ready_condition_counts_as_ready() -> None:
    zone = Zone.build([service("h", clusterIP="None", ports=[HTTP])],
                      [endpoint_slice("h", [endpoint("p1", ready=None, hostname="a")], [HTTP])], [])
    assert addresses(zone.answer("a.h.n.svc.cluster.local.", "A")) == {POD_IPS["p1"]}


def test_slices_of_unknown_services_and_fqdn_slices_are_ignored(zone: Zone) -> None:
    assert is_nxdomain(zone.answer("ghost.n.svc.cluster.local.", "A"))
    fqdn = Zone.build([service("h", clusterIP="None", ports=[HTTP])],
                      [endpoint_slice("h", [endpoint("p1")], [HTTP], address_type="FQDN")], [])
    assert is_nxdomain(fqdn.answer("h.n.svc.cluster.local.", "A"))


# -- ExternalName, TXT, pods, zone apex -------------------------------------------------


def test_external_name_is_a_cname_and_nothing_more(zone: Zone) -> None:
    answer = zone.answer("ext.n.svc.cluster.local.", "A")
    assert answer.rcode == dns.rcode.NOERROR
    assert values(answer, "CNAME") == {"www.example.com."} and not addresses(answer)
    assert answer.ede is not None  # the target would need an upstream
    assert values(zone.answer("ext.n.svc.cluster.local.", "CNAME"), "CNAME") == {"www.example.com."}


def test_external_name_inside_the_cluster_is_followed(zone: Zone) -> None:
    answer = zone.answer("alias.n.svc.cluster.local.", "A")
    assert values(answer, "CNAME") == {"s.n.svc.cluster.local."}
    assert addresses(answer) == {CLUSTER_IPS["s"]}


def test_invalid_external_name_gives_no_record() -> None:
    zone = Zone.build([service("bad", type="ExternalName", externalName="a" * 70 + ".com")], [], [])
    assert is_nxdomain(zone.answer("bad.n.svc.cluster.local.", "A"))


def test_schema_version_txt(zone: Zone) -> None:
    assert values(zone.answer("dns-version.cluster.local.", "TXT"), "TXT") == {'"1.1.0"'}


def test_pod_a_records_are_synthesised_for_existing_namespaces(zone: Zone) -> None:
    assert addresses(zone.answer("10-244-9-9.n.pod.cluster.local.", "A")) == {"10.244.9.9"}
    assert addresses(zone.answer("1-2-3-4.other.pod.cluster.local.", "A")) == {"1.2.3.4"}
    assert is_nodata(zone.answer("1-2-3-4.other.pod.cluster.local.", "AAAA"))
    assert is_nxdomain(zone.answer("1-2-3-4.nosuchns.pod.cluster.local.", "A"))
    assert is_nxdomain(zone.answer("1-2-3-256.n.pod.cluster.local.", "A"))
    assert is_nxdomain(zone.answer("1-2-3.n.pod.cluster.local.", "A"))


def test_apex_has_soa_and_ns_and_the_ns_host_is_kube_dns(zone: Zone) -> None:
    soa = zone.answer("cluster.local.", "SOA")
    [rdata] = [r for rrset in soa.answer_rrs for r in rrset]
    assert rdata.minimum == TTL
    assert values(zone.answer("cluster.local.", "NS"), "NS") == {"ns.dns.cluster.local."}
    assert addresses(zone.answer("ns.dns.cluster.local.", "A")) == {CLUSTER_IPS["kube-dns"]}


# -- NXDOMAIN vs no data, out of zone, malformed ----------------------------------------


def test_aaaa_for_an_ipv4_service_is_no_data(zone: Zone) -> None:
    answer = zone.answer("s.n.svc.cluster.local.", "AAAA")
    assert is_nodata(answer)
    assert answer.authority_rrs[0].name.to_text() == "cluster.local."


@pytest.mark.parametrize("name", ["n.svc.cluster.local.", "other.svc.cluster.local.",
                                  "svc.cluster.local.", "n.pod.cluster.local.",
                                  "_tcp.s.n.svc.cluster.local."])
def test_existing_names_without_the_type_are_no_data(zone: Zone, name: str) -> None:
    assert is_nodata(zone.answer(name, "A"))


@pytest.mark.parametrize("name", ["nope.n.svc.cluster.local.", "s.nosuchns.svc.cluster.local.",
                                  "x.cluster.local.", "nosuchns.svc.cluster.local."])
def test_missing_names_in_the_zone_are_nxdomain(zone: Zone, name: str) -> None:
    assert is_nxdomain(zone.answer(name, "A"))


def test_names_outside_the_cluster_fail_at_once_with_a_reason(zone: Zone) -> None:
    answer = zone.answer("www.example.com.", "A")
    assert answer.rcode == dns.rcode.SERVFAIL and not answer.answer_rrs
    assert answer.ede is not None and "no upstream" in answer.ede[1]


def test_ipv6_cluster_ip_answers_aaaa() -> None:
    zone = Zone.build([service("v6", clusterIP="fd00::20", clusterIPs=["fd00::20"])], [], [])
    assert values(zone.answer("v6.n.svc.cluster.local.", "AAAA"), "AAAA") == {"fd00::20"}
    assert is_nodata(zone.answer("v6.n.svc.cluster.local.", "A"))


@pytest.mark.parametrize(("name", "rdtype"), [("a..b.cluster.local", "A"), ("x" * 64 + ".cluster.local", "A"),
                                               ("s.n.svc.cluster.local", "NOSUCHTYPE")])
def test_malformed_questions_are_formerr(zone: Zone, name: str, rdtype: str) -> None:
    assert zone.answer(name, rdtype).rcode == dns.rcode.FORMERR


def test_odd_but_valid_names_are_just_missing(zone: Zone) -> None:
    name = dns.name.Name([b"we ird\x00", b"n", b"svc", b"cluster", b"local", b""])
    assert is_nxdomain(zone.answer(name, dns.rdatatype.A))


def test_objects_with_missing_fields_do_not_break_the_build() -> None:
    zone = Zone.build([{"metadata": {}}, {"metadata": {"name": "x"}}, service("y", clusterIP="")],
                      [{"metadata": {"labels": {"kubernetes.io/service-name": "x"}}}], [{}])
    assert is_nodata(zone.answer("default.svc.cluster.local.", "A"))
    assert is_nxdomain(zone.answer("y.n.svc.cluster.local.", "A"))


def test_a_malformed_service_loses_only_its_own_records() -> None:
    zone = Zone.build([service("bad", clusterIP="10.96.0.30", ports=[{"name": "p", "port": "eighty"}]),
                       service("far", clusterIP="10.96.0.31", ports=[{"name": "p", "port": 70000}]),
                       service("ok", clusterIP="10.96.0.32")], [], [])
    assert addresses(zone.answer("ok.n.svc.cluster.local.", "A")) == {"10.96.0.32"}
    assert addresses(zone.answer("far.n.svc.cluster.local.", "A")) == {"10.96.0.31"}
    assert is_nxdomain(zone.answer("_p._tcp.far.n.svc.cluster.local.", "SRV"))


def test_a_custom_cluster_domain() -> None:
    zone = Zone.build([service("s", clusterIP="10.96.0.20")], [], [], domain="example.internal")
    assert addresses(zone.answer("s.n.svc.example.internal.", "A")) == {"10.96.0.20"}
    assert zone.answer("s.n.svc.cluster.local.", "A").rcode == dns.rcode.SERVFAIL
