"""clusters.netpol.engine: upstream NetworkPolicy semantics, verdicts and their explanations."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest

from clusters.netpol import HostEndpoint, NamedPort, NamespaceInfo, PodInfo, Policy, PolicySet
from clusters.netpol.engine import PortRange, RuleRef

NODE1, NODE2 = "c-worker", "c-worker2"
WEB = (NamedPort("http", "TCP", 80), NamedPort("metrics", "TCP", 9090), NamedPort("dns", "UDP", 53))


def pod(label: str, ip: str, node: str = NODE1, ports: tuple[NamedPort, ...] = WEB,
        host_network: bool = False, **labels: str) -> PodInfo:
    namespace, name = label.split("/")
    return PodInfo(namespace, name, ip, labels or {"app": name}, node, ports, host_network)


def namespaces() -> list[NamespaceInfo]:
    return [NamespaceInfo(n, {"kubernetes.io/metadata.name": n, **extra}) for n, extra in (
        ("app", {"team": "shop", "env": "prod"}), ("mon", {"team": "ops"}), ("dev", {}))]


def pods() -> list[PodInfo]:
    return [
        pod("app/frontend", "10.244.1.10", NODE1),
        pod("app/api", "10.244.2.11", NODE2, ports=(NamedPort("http", "TCP", 8080),)),
        pod("app/db", "10.244.1.12", NODE1),
        pod("mon/prom", "10.244.2.20", NODE2),
        pod("dev/api", "10.244.2.30", NODE2, ports=()),
        pod("dev/frontend", "10.244.1.31", NODE1),
    ]


def policy(spec: dict[str, Any], name: str = "p", namespace: str = "app",
           source: str = "policies.yaml") -> Policy:
    return Policy.from_object({"kind": "NetworkPolicy",
                               "metadata": {"name": name, "namespace": namespace},
                               "spec": spec}, source=source)


def pset(*policies: Policy, extra: tuple[PodInfo, ...] = ()) -> PolicySet:
    return PolicySet(policies, [*pods(), *extra], namespaces())


def allowed(s: PolicySet, src: str, dst: str, port: int = 80, protocol: str = "TCP") -> bool:
    src_pod, dst_pod = s.pod(src), s.pod(dst)
    assert src_pod is not None and dst_pod is not None
    return s.verdict(src_pod, dst_pod, port, protocol).allowed


def reachable_from(s: PolicySet, dst: str, port: int = 80, protocol: str = "TCP") -> set[str]:
    return {p.label for p in s.pods if p.label != dst and allowed(s, p.label, dst, port, protocol)}


EVERYONE_BUT = lambda *labels: {p.label for p in pods()} - set(labels)  # noqa: E731


# ---------------------------------------------------------------- isolation


def test_no_policy_everything_allowed_and_explained() -> None:
    s = pset()
    v = s.verdict(s.pod("app/frontend"), s.pod("app/db"), 5432, "TCP")  # type: ignore[arg-type]
    assert v.allowed
    assert not v.egress.isolated_by and not v.ingress.isolated_by
    assert "app/db is not isolated for ingress: no NetworkPolicy selects it" in v.explain()


def test_default_deny_ingress_isolates_only_its_namespace() -> None:
    s = pset(policy({"podSelector": {}}, name="deny"))
    assert reachable_from(s, "app/db") == set()
    assert reachable_from(s, "dev/api") == EVERYONE_BUT("dev/api")
    v = s.verdict(s.pod("app/frontend"), s.pod("app/db"), 80, "tcp")  # type: ignore[arg-type]
    assert v.protocol == "TCP" and v.ingress.isolated_by == ("app/deny",)
    assert v.egress.allowed and not v.ingress.allowed
    assert v.ingress.denied_because == (
        "app/deny (policies.yaml) has no ingress rules: it isolates the pod and allows nothing "
        "by itself",)


def test_ingress_empty_list_denies_but_empty_rule_allows_all() -> None:
    deny = pset(policy({"podSelector": {}, "ingress": []}))
    allow = pset(policy({"podSelector": {}, "ingress": [{}]}))
    assert reachable_from(deny, "app/db") == set()
    assert reachable_from(allow, "app/db", port=12345, protocol="UDP") == EVERYONE_BUT("app/db")
    v = allow.verdict(allow.pod("dev/api"), allow.pod("app/db"), 1, "UDP")  # type: ignore[arg-type]
    assert v.ingress.allowed_by == (RuleRef("app/p", "ingress", 0, "policies.yaml"),)


def test_policy_types_decide_which_direction_is_isolated() -> None:
    egress_only = pset(policy({"podSelector": {}, "policyTypes": ["Egress"], "ingress": []}))
    assert reachable_from(egress_only, "app/db") == EVERYONE_BUT("app/db", "app/frontend", "app/api")
    assert not allowed(egress_only, "app/frontend", "dev/api")
    # no policyTypes but egress rules: both directions isolated
    both = pset(policy({"podSelector": {"matchLabels": {"app": "db"}},
                        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}))
    assert reachable_from(both, "app/db") == set()
    assert allowed(both, "app/db", "dev/frontend", 53, "UDP")
    assert not allowed(both, "app/db", "dev/frontend", 80)
    # no policyTypes and egress: [] -> Ingress only, egress stays open
    ingress_only = pset(policy({"podSelector": {"matchLabels": {"app": "db"}}, "egress": []}))
    assert allowed(ingress_only, "app/db", "dev/frontend", 80)
    assert reachable_from(ingress_only, "app/db") == set()


def test_selecting_needs_namespace_selector_and_type() -> None:
    p = policy({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]})
    s = pset(p)
    assert s.selecting(s.pod("app/api"), "ingress") == [p]  # type: ignore[arg-type]
    assert s.selecting(s.pod("app/api"), "egress") == []  # type: ignore[arg-type]
    assert s.selecting(s.pod("dev/api"), "ingress") == []  # type: ignore[arg-type]


# ---------------------------------------------------------------- peers


def test_pod_selector_alone_means_the_policy_namespace() -> None:
    s = pset(policy({"podSelector": {"matchLabels": {"app": "db"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}))
    assert reachable_from(s, "app/db") == {"app/api"}   # dev/api has the label but not the namespace


def test_empty_pod_selector_is_own_namespace_empty_namespace_selector_is_all() -> None:
    own = pset(policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}))
    assert reachable_from(own, "app/db") == {"app/frontend", "app/api"}
    every = pset(policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}))
    assert reachable_from(every, "app/db") == EVERYONE_BUT("app/db")


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    and_peer = {"namespaceSelector": {"matchLabels": {"team": "ops"}},
                "podSelector": {"matchLabels": {"app": "frontend"}}}
    s = pset(policy({"podSelector": {}, "ingress": [{"from": [and_peer]}]}))
    assert reachable_from(s, "app/db") == set()   # mon has no frontend, app/frontend not in ops
    s2 = pset(policy({"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "ops"}}},
        {"podSelector": {"matchLabels": {"app": "frontend"}}}]}]}))
    assert reachable_from(s2, "app/db") == {"mon/prom", "app/frontend"}   # OR


def test_match_expressions_on_namespaces_and_pods() -> None:
    s = pset(policy({"podSelector": {}, "ingress": [{"from": [{
        "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
        "podSelector": {"matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["frontend"]}]}}]}]}))
    assert reachable_from(s, "app/db") == {"app/api", "mon/prom"}
    s2 = pset(policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}}]}]}))
    assert reachable_from(s2, "app/db") == {"dev/api", "dev/frontend"}
    s3 = pset(policy({"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["db", "api"]}]}, "ingress": []}))
    assert reachable_from(s3, "app/api") == set() and reachable_from(s3, "app/db") == set()
    assert reachable_from(s3, "app/frontend") == EVERYONE_BUT("app/frontend")


def test_namespace_label_change_is_seen() -> None:
    p = policy({"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "ops"}}}]}]})
    relabelled = [NamespaceInfo("dev", {"team": "ops"}), *namespaces()[:2]]
    s = PolicySet([p], pods(), relabelled)
    assert reachable_from(s, "app/db") == {"mon/prom", "dev/api", "dev/frontend"}


def test_namespace_missing_from_the_set_has_only_its_name_label() -> None:
    s = PolicySet([policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]}]})], pods(), [])
    assert reachable_from(s, "app/db") == {"dev/api", "dev/frontend"}


def test_ip_block_with_except_applies_to_pod_ips_and_outside_addresses() -> None:
    s = pset(policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}},
        {"ipBlock": {"cidr": "203.0.113.0/24"}}]}]}))
    assert reachable_from(s, "app/db") == {"app/frontend", "dev/frontend"}   # node1 pods only
    db = s.pod("app/db")
    assert db is not None
    assert s.verdict(HostEndpoint("203.0.113.7"), db, 80, "TCP").allowed
    assert not s.verdict(HostEndpoint("198.51.100.1"), db, 80, "TCP").allowed


def test_selectors_never_match_non_pods_or_host_network_pods() -> None:
    host_pod = pod("mon/agent", "172.30.0.3", NODE2, host_network=True, app="agent")
    s = pset(policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
        {"namespaceSelector": {}}]}]}), extra=(host_pod,))
    db = s.pod("app/db")
    assert db is not None
    assert not s.verdict(HostEndpoint("172.30.0.99"), db, 80, "TCP").allowed
    assert not s.verdict(host_pod, db, 80, "TCP").allowed
    by_ip = pset(policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "172.30.0.0/24"}}]}]}), extra=(host_pod,))
    assert by_ip.verdict(host_pod, db, 80, "TCP").allowed


# ---------------------------------------------------------------- ports


def test_numeric_port_range_and_protocol_only() -> None:
    s = pset(policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"ports": [{"port": 5432}, {"port": 8000, "endPort": 8080}, {"protocol": "UDP"}]}]}))
    for port, protocol, ok in [(5432, "TCP", True), (5433, "TCP", False), (5432, "UDP", True),
                               (8000, "TCP", True), (8080, "TCP", True), (8081, "TCP", False),
                               (7999, "TCP", False), (1, "UDP", True), (80, "SCTP", False)]:
        assert allowed(s, "dev/api", "app/db", port, protocol) is ok, (port, protocol)


def test_ingress_named_port_is_resolved_per_destination_pod() -> None:
    s = pset(policy({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}))
    assert allowed(s, "dev/api", "app/frontend", 80)          # frontend: http = 80
    assert not allowed(s, "dev/api", "app/frontend", 8080)
    assert allowed(s, "dev/api", "app/api", 8080)             # api: http = 8080
    assert not allowed(s, "dev/api", "app/api", 80)
    udp = pset(policy({"podSelector": {}, "ingress": [{"ports": [{"port": "dns"}]}]}))
    assert not allowed(udp, "dev/api", "app/db", 53, "UDP")   # dns is UDP, the rule is TCP
    udp2 = pset(policy({"podSelector": {}, "ingress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}))
    assert allowed(udp2, "dev/api", "app/db", 53, "UDP")


def test_egress_named_port_is_resolved_against_the_destination() -> None:
    s = pset(policy({"podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
                     "egress": [{"ports": [{"port": "http"}]}]}))
    assert allowed(s, "app/frontend", "app/api", 8080)
    assert not allowed(s, "app/frontend", "app/api", 80)
    assert allowed(s, "app/frontend", "app/db", 80)
    assert not allowed(s, "app/frontend", "dev/api", 80)      # dev/api declares no ports
    frontend = s.pod("app/frontend")
    assert frontend is not None
    outside = HostEndpoint("203.0.113.7")
    assert not s.verdict(frontend, outside, 80, "TCP").allowed   # a name never matches a non-pod
    numeric = pset(policy({"podSelector": {"matchLabels": {"app": "frontend"}},
                           "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]}))
    assert numeric.verdict(frontend, outside, 80, "TCP").allowed


def test_port_ranges_for_enforcers() -> None:
    p = policy({"podSelector": {}, "ingress": [
        {}, {"ports": [{"port": 80}, {"port": 80}, {"port": 8000, "endPort": 8010},
                       {"port": "http"}, {"protocol": "UDP"}]}]})
    s = pset(p)
    assert s.port_ranges(p.ingress[0], None) is None
    api = s.pod("app/api")
    assert s.port_ranges(p.ingress[1], api) == [
        PortRange("TCP", 80, 80), PortRange("TCP", 8000, 8010), PortRange("TCP", 8080, 8080),
        PortRange("UDP", 1, 65535)]
    assert PortRange("TCP", 80, 80) in (s.port_ranges(p.ingress[1], None) or [])
    assert len(s.port_ranges(p.ingress[1], None) or []) == 3   # the name drops out
    assert PortRange("UDP", 1, 65535).describe() == "UDP (any port)"


# ---------------------------------------------------------------- stacking and exemptions


def test_stacked_policies_add_up_and_every_allowing_rule_is_named() -> None:
    a = policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 80}]}]},
        name="db-from-api", source="db.yaml")
    b = policy({"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
        {"ports": [{"port": 80}]}]}, name="wide", source="wide.yaml")
    deny = policy({"podSelector": {}}, name="deny", source="deny.yaml")
    s = pset(a, b, deny)
    api, db = s.pod("app/api"), s.pod("app/db")
    assert api is not None and db is not None
    v = s.verdict(api, db, 80, "TCP")
    assert v.ingress.isolated_by == ("app/db-from-api", "app/deny", "app/wide")
    assert v.ingress.allowed_by == (RuleRef("app/db-from-api", "ingress", 0, "db.yaml"),
                                    RuleRef("app/wide", "ingress", 1, "wide.yaml"))
    assert "allowed by app/db-from-api ingress[0] (db.yaml), app/wide ingress[1] (wide.yaml)" \
        in v.explain()
    assert not allowed(s, "app/api", "app/db", 81)
    assert allowed(s, "mon/prom", "app/db", 81)


def test_own_node_traffic_is_exempt_both_ways() -> None:
    s = pset(policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    db = s.pod("app/db")
    assert db is not None and db.node == NODE1
    own, other = HostEndpoint("172.30.0.2", node=NODE1), HostEndpoint("172.30.0.3", node=NODE2)
    into, out = s.verdict(own, db, 80, "TCP"), s.verdict(db, own, 80, "TCP")
    assert into.allowed and into.ingress.exempt == "the pod's own node"
    assert into.egress.exempt == "not a pod" and into.egress.pod == ""
    assert out.allowed and out.egress.exempt == "the pod's own node"
    assert "own node" in into.explain()
    assert not s.verdict(other, db, 80, "TCP").allowed
    assert not s.verdict(db, other, 80, "TCP").allowed
    host_pod_here = pod("mon/agent", "172.30.0.2", NODE1, host_network=True)
    assert pset(policy({"podSelector": {}}), extra=(host_pod_here,)).verdict(
        host_pod_here, db, 80, "TCP").allowed


def test_host_network_pods_are_never_isolated() -> None:
    host_pod = pod("app/agent", "172.30.0.3", NODE2, host_network=True, app="agent")
    s = pset(policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}), extra=(host_pod,))
    assert s.selecting(host_pod, "ingress") == []
    frontend = s.pod("app/frontend")
    assert frontend is not None
    v = s.verdict(host_pod, HostEndpoint("203.0.113.1"), 80, "TCP")
    assert v.allowed and v.egress.exempt == "hostNetwork pod"
    assert "hostNetwork" in v.explain()
    assert not s.verdict(frontend, host_pod, 80, "TCP").allowed   # frontend's egress is isolated


def test_pods_without_ip_match_selectors_but_not_ip_blocks_or_networks() -> None:
    pending = pod("dev/new", "", NODE2, app="api")
    p = policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 81}]}]})
    s = pset(p, extra=(pending,))
    db = s.pod("app/db")
    assert db is not None
    assert s.verdict(pending, db, 80, "TCP").allowed
    v = s.verdict(pending, db, 81, "TCP")
    assert v.ingress.allowed_by == (RuleRef("app/p", "ingress", 0, "policies.yaml"),)
    assert pending not in s.peer_pods(p, p.ingress[0])
    assert IPv4Network("10.244.2.30/32") in (s.peer_networks(p, p.ingress[0]) or [])


# ---------------------------------------------------------------- enforcer helpers


def test_peer_networks_and_peer_pods() -> None:
    host_pod = pod("app/agent", "172.30.0.3", NODE2, host_network=True, app="api")
    p = policy({"podSelector": {}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}},
                  {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.1.0.0/16"]}}]},
        {},
        {"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]}]})
    s = pset(p, extra=(host_pod,))
    nets = s.peer_networks(p, p.ingress[0])
    assert nets is not None
    assert IPv4Network("10.244.2.11/32") in nets                     # app/api
    assert all(not n.overlaps(IPv4Network("10.1.0.0/16")) for n in nets)
    assert not any(IPv4Network("172.30.0.3/32").subnet_of(n) for n in nets)   # hostNetwork
    assert sum(n.num_addresses for n in nets) == 2**24 - 2 * 2**16 + 1
    assert s.peer_networks(p, p.ingress[1]) is None
    assert [x.label for x in s.peer_pods(p, p.ingress[0])] == ["app/api"]
    assert len(s.peer_pods(p, p.ingress[1])) == len(pods())
    assert [x.label for x in s.peer_pods(p, p.ingress[2])] == [
        "app/db", "app/frontend", "dev/frontend"]


def test_rule_allows_and_peer_matches_directly() -> None:
    p = policy({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": 80}]}]})
    s = pset(p)
    frontend, db, dev = s.pod("app/frontend"), s.pod("app/db"), s.pod("dev/api")
    assert frontend is not None and db is not None and dev is not None
    rule = p.egress[0]
    assert s.peer_matches(p, rule.peers[0], db) and not s.peer_matches(p, rule.peers[0], dev)
    assert s.rule_allows(p, rule, db, db, 80, "TCP")
    assert not s.rule_allows(p, rule, db, db, 81, "TCP")


def test_from_objects_uses_sources() -> None:
    s = PolicySet.from_objects(
        [{"kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "app"}, "spec": {}}],
        [{"metadata": {"name": "db", "namespace": "app", "labels": {"app": "db"}},
          "status": {"podIP": "10.244.1.2"}}],
        [{"metadata": {"name": "app"}}], sources={"app/deny": "deny.yaml"})
    assert s.policies[0].source == "deny.yaml"
    assert s.namespaces["app"].labels == {"kubernetes.io/metadata.name": "app"}
    with pytest.raises(ValueError, match=r"NetworkPolicy app/bad: spec.ingress\[0\].ports\[0\].protocol"):
        PolicySet.from_objects([{"kind": "NetworkPolicy", "metadata": {"name": "bad", "namespace": "app"},
                                 "spec": {"ingress": [{"ports": [{"protocol": "ICMP"}]}]}}], [], [])


# ---------------------------------------------------------------- explanations


def test_over_restrictive_explanation_names_policies_and_why_each_rule_fails() -> None:
    deny = policy({"podSelector": {}}, name="default-deny", source="deny.yaml")
    db_policy = policy({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}},
                   "podSelector": {"matchLabels": {"app": "prom"}}}], "ports": [{"port": "metrics"}]}]},
        name="db-policy", source="db.yaml")
    s = pset(deny, db_policy)
    frontend, db, dev_api = s.pod("app/frontend"), s.pod("app/db"), s.pod("dev/api")
    assert frontend is not None and db is not None and dev_api is not None
    text = s.verdict(frontend, db, 5432, "TCP").explain()
    assert text.startswith("app/frontend -> app/db TCP/5432 is blocked:\n  ingress: ")
    assert ("app/db is isolated for ingress by app/db-policy (db.yaml), app/default-deny "
            "(deny.yaml); no rule admits app/frontend on TCP/5432:") in text
    assert ("app/db-policy ingress[0] (db.yaml): the peer does not match (it admits pods app=api "
            "in namespace app, but app/frontend has labels app=frontend)") in text
    assert ("app/db-policy ingress[1] (db.yaml): the peer does not match (it admits pods app=prom "
            "in namespaces team=ops, but namespace app has labels env=prod,"
            "kubernetes.io/metadata.name=app,team=shop and app/frontend has labels app=frontend); "
            "and the port does not match: it opens only TCP/metrics (= TCP/9090 on app/db)") in text
    assert "app/default-deny (deny.yaml) has no ingress rules" in text
    other_ns = s.verdict(dev_api, db, 5432, "TCP").ingress.explain()
    assert "dev/api is in namespace dev, not app" in other_ns
    api = s.pod("app/api")
    assert api is not None
    wrong_port = s.verdict(api, db, 80, "TCP").ingress.denied_because[0]
    assert wrong_port == ("app/db-policy ingress[0] (db.yaml): the port does not match: it opens "
                          "only TCP/5432 on the pod")


def test_explanations_for_ip_blocks_non_pods_and_missing_named_ports() -> None:
    p = policy({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}},
                                      {"podSelector": {}}]}],
                "egress": [{"ports": [{"port": "nope"}]}]})
    s = pset(p)
    db, prom = s.pod("app/db"), s.pod("mon/prom")
    assert db is not None and prom is not None
    text = s.verdict(prom, db, 80, "TCP").ingress.explain()
    assert "(1) addresses in 10.244.0.0/16 except 10.244.2.0/24, but mon/prom (10.244.2.20) " \
           "falls in the except 10.244.2.0/24" in text
    assert "(2) every pod in namespace app, but mon/prom is in namespace mon, not app" in text
    outside = s.verdict(HostEndpoint("192.0.2.1"), db, 80, "TCP").ingress.explain()
    assert "192.0.2.1 is outside 10.244.0.0/16" in outside
    assert "192.0.2.1 is not a pod" in outside
    egress = s.verdict(db, prom, 80, "TCP").egress.explain()
    assert "no rule lets it reach mon/prom on TCP/80" in egress
    assert "TCP/nope (mon/prom has no TCP container port of that name)" in egress
    to_host = s.verdict(db, HostEndpoint("192.0.2.1"), 80, "TCP").egress.explain()
    assert "a port name only matches pods, and 192.0.2.1 is not one" in to_host


def test_verdict_puts_the_deciding_side_first() -> None:
    s = pset(policy({"podSelector": {}, "ingress": [{}]}, name="allow"),
             policy({"podSelector": {}, "policyTypes": ["Egress"]}, name="deny-out", namespace="dev"))
    v = s.verdict(s.pod("dev/api"), s.pod("app/db"), 80, "TCP")  # type: ignore[arg-type]
    assert not v.allowed and v.deciding()[0] is v.egress
    assert v.explain().splitlines()[1].startswith("  egress: dev/api is isolated for egress by dev/deny-out")
    ok = s.verdict(s.pod("app/frontend"), s.pod("app/db"), 80, "TCP")  # type: ignore[arg-type]
    assert ok.allowed and ok.deciding()[0] is ok.ingress
    assert ok.explain().splitlines()[1] == "  ingress: allowed by app/allow ingress[0] (policies.yaml)"


@pytest.mark.parametrize("protocol", ["TCP", "UDP"])
def test_matrix_of_the_issue_example(protocol: str) -> None:
    """Lab-04-like: default deny, frontend -> api 8080, api -> db 5432, monitoring 9090."""
    ps = [
        policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, name="deny"),
        policy({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
             "ports": [{"port": 8080, "protocol": protocol}]}]}, name="api-in"),
        policy({"podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                            "ports": [{"port": 8080, "protocol": protocol}]}]}, name="fe-out"),
    ]
    s = pset(*ps)
    assert allowed(s, "app/frontend", "app/api", 8080, protocol)
    assert not allowed(s, "app/frontend", "app/api", 8081, protocol)
    assert not allowed(s, "app/api", "app/frontend", 8080, protocol)
    assert not allowed(s, "dev/frontend", "app/api", 8080, protocol)
    assert not allowed(s, "app/frontend", "dev/api", 8080, protocol)
