"""clusters.netpol.model: reading NetworkPolicy, Pod and Namespace manifests, defaults, errors."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

import clusters.netpol as netpol
from clusters import labels
from clusters.local import selectors
from clusters.netpol import (
    HostEndpoint,
    IPBlock,
    NamedPort,
    NamespaceInfo,
    Peer,
    PodInfo,
    Policy,
    PortRule,
)

REPO = Path(__file__).resolve().parents[2]


def _policy(spec: dict[str, Any], name: str = "p", namespace: str = "x") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# ---------------------------------------------------------------- labels move


def test_selector_helpers_moved_to_clusters_labels_and_are_reexported() -> None:
    for name in ("matches_selector", "parse_selector", "label_key_error", "label_value_error"):
        assert getattr(selectors, name) is getattr(labels, name)
    assert labels.matches_selector({"a": "1"}, {"matchExpressions": [
        {"key": "b", "operator": "DoesNotExist"}]})


def test_format_selector_writes_kubectl_syntax() -> None:
    sel = {"matchLabels": {"app": "api"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]},
        {"key": "env", "operator": "NotIn", "values": ["prod"]},
        {"key": "team", "operator": "Exists"},
        {"key": "legacy", "operator": "DoesNotExist"}]}
    text = labels.format_selector(sel)
    assert text == "app=api,tier in (a,b),env notin (prod),team,!legacy"
    assert labels.parse_selector(text) == sel
    assert labels.format_selector({}) == ""
    assert labels.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert labels.format_labels({}) == "(no labels)"


def test_netpol_imports_nothing_engine_specific() -> None:
    code = ("import sys, clusters.netpol; "
            "bad = [m for m in sys.modules if m.startswith(('clusters.local', 'grader', 'labs'))]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_public_surface_is_exported() -> None:
    for name in netpol.__all__:
        assert hasattr(netpol, name), name
    assert {"PolicySet", "Policy", "PodInfo", "Verdict", "RuleRef"} <= set(netpol.__all__)


# ---------------------------------------------------------------- small values


def test_port_rule_describe() -> None:
    assert PortRule("TCP", 8080).describe() == "TCP/8080"
    assert PortRule("TCP", 8000, 8080).describe() == "TCP/8000-8080"
    assert PortRule("TCP", "serve-80-tcp").describe() == "TCP/serve-80-tcp"
    assert PortRule("UDP", None).describe() == "UDP (any port)"


def test_ip_block_contains_honours_excepts() -> None:
    block = IPBlock(IPv4Network("10.0.0.0/8"), (IPv4Network("10.1.0.0/16"),))
    assert block.contains("10.2.3.4")
    assert not block.contains("10.1.2.3")
    assert not block.contains("192.168.0.1")
    assert not block.contains("")
    assert not block.contains("fd00::1")
    assert block.describe() == "10.0.0.0/8 except 10.1.0.0/16"


def test_peer_describe() -> None:
    assert Peer(pod_selector={"matchLabels": {"app": "api"}}).describe("lab04") == \
        "pods app=api in namespace lab04"
    assert Peer(namespace_selector={"matchLabels": {"ns": "y"}}).describe("x") == \
        "every pod in namespaces ns=y"
    assert Peer(namespace_selector={}).describe("x") == "every pod in every namespace"
    assert Peer(pod_selector={}).describe("x") == "every pod in namespace x"
    both = Peer(pod_selector={"matchLabels": {"pod": "b"}},
                namespace_selector={"matchLabels": {"ns": "y"}})
    assert both.describe("x") == "pods pod=b in namespaces ns=y"
    block = Peer(ip_block=IPBlock(IPv4Network("10.0.0.0/8"), (IPv4Network("10.1.0.0/16"),)))
    assert "10.0.0.0/8 except 10.1.0.0/16" in block.describe("x")


def test_host_endpoint_label() -> None:
    assert HostEndpoint("172.30.0.2", node="c-worker").label == "node/c-worker"
    assert HostEndpoint("203.0.113.9").label == "203.0.113.9"


# ---------------------------------------------------------------- Policy.from_object


def test_defaults_like_the_api_server() -> None:
    policy = Policy.from_object(_policy({}), source="deny.yaml")
    assert policy.ref == "x/p" and policy.source == "deny.yaml"
    assert policy.pod_selector == {}
    assert policy.types == frozenset({"Ingress"})
    assert policy.ingress == () and policy.egress == ()
    no_ns = Policy.from_object({"kind": "NetworkPolicy", "metadata": {"name": "q"}})
    assert no_ns.namespace == "default"


@pytest.mark.parametrize(("spec", "types"), [
    ({"egress": [{}]}, {"Ingress", "Egress"}),
    ({"egress": []}, {"Ingress"}),
    ({"ingress": [{}]}, {"Ingress"}),
    ({"policyTypes": [], "egress": [{}]}, {"Ingress", "Egress"}),
    ({"policyTypes": ["Egress"]}, {"Egress"}),
    ({"policyTypes": ["Egress"], "ingress": [{}]}, {"Egress"}),
])
def test_policy_types_defaulting(spec: dict[str, Any], types: set[str]) -> None:
    assert Policy.from_object(_policy(spec)).types == frozenset(types)


def test_rules_peers_and_ports_are_read_in_order() -> None:
    policy = Policy.from_object(_policy({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}},
                      {"namespaceSelector": {}, "podSelector": {}},
                      {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
             "ports": [{"port": 80}, {"protocol": "UDP", "port": 53, "endPort": 60},
                       {"port": "serve-81-tcp"}, {"protocol": "SCTP"}]},
            {},
            {"from": []},
        ]}))
    first, second, third = policy.ingress
    assert [r.index for r in policy.ingress] == [0, 1, 2]
    assert first.direction == "ingress"
    assert first.peers[0] == Peer(pod_selector={"matchLabels": {"pod": "b"}})
    assert first.peers[1] == Peer(pod_selector={}, namespace_selector={})
    assert first.peers[2].ip_block == IPBlock(IPv4Network("10.0.0.0/8"),
                                              (IPv4Network("10.1.0.0/16"),))
    assert first.ports == (PortRule("TCP", 80), PortRule("UDP", 53, 60),
                           PortRule("TCP", "serve-81-tcp"), PortRule("SCTP", None))
    assert second.peers == () and second.ports == ()
    assert third.peers == ()   # from: [] admits every source, like a missing from


@pytest.mark.parametrize(("spec", "field"), [
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0/33"}}]}]}, "spec.ingress[0].from[0].ipBlock.cidr"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}]}, "spec.egress[0].to[0].ipBlock.cidr"),
    ({"egress": [{"to": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
     "spec.egress[0].to[0]"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
     "spec.egress[0].to[0]"),
    ({"ingress": [{"from": [{"podSelectr": {}}]}]}, "spec.ingress[0].from[0].podSelectr"),
    ({"ingress": [{"ports": [{"protocol": "tcp", "port": 80}]}]}, "spec.ingress[0].ports[0].protocol"),
    ({"ingress": [{"ports": [{"port": 70000}]}]}, "spec.ingress[0].ports[0].port"),
    ({"ingress": [{"ports": [{"port": "80"}]}]}, "spec.ingress[0].ports[0].port"),
    ({"ingress": [{"ports": [{"port": "Not_A_Name"}]}]}, "spec.ingress[0].ports[0].port"),
    ({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "spec.ingress[0].ports[0].endPort"),
    ({"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}},
     "spec.podSelector.matchExpressions[0].operator"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}},
     "spec.podSelector.matchExpressions[0].values"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
     "spec.podSelector.matchExpressions[0].values"),
    ({"podSelector": {"matchLabels": {"app": "has space"}}}, "spec.podSelector.matchLabels"),
    ({"podSelector": {"matchLabel": {"app": "x"}}}, "spec.podSelector.matchLabel"),
    ({"policyTypes": ["ingress"]}, "spec.policyTypes[0]"),
    ({"ingress": {"from": []}}, "spec.ingress"),
    ({"egress": [{"from": []}]}, "spec.egress[0].from"),
])
def test_from_object_errors_name_policy_and_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as info:
        Policy.from_object(_policy(spec, name="bad", namespace="lab04"), source="bad.yaml")
    message = str(info.value)
    assert message.startswith("NetworkPolicy lab04/bad (bad.yaml): ")
    assert f": {field}: " in message


def test_from_object_needs_a_name_and_the_right_kind() -> None:
    with pytest.raises(ValueError, match=r"metadata\.name"):
        Policy.from_object({"kind": "NetworkPolicy", "metadata": {}})
    with pytest.raises(ValueError, match="kind"):
        Policy.from_object({"kind": "Service", "metadata": {"name": "s"}})


# ---------------------------------------------------------------- pods and namespaces


def test_pod_from_object_reads_every_container_port() -> None:
    pod = PodInfo.from_object({
        "metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"}},
        "spec": {"nodeName": "w1", "containers": [
            {"ports": [{"name": "http", "containerPort": 8080}]},
            {"ports": [{"containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"podIP": "10.244.1.5"}})
    assert pod.label == "x/a" and pod.ip == "10.244.1.5" and pod.node == "w1"
    assert pod.ports == (NamedPort("http", "TCP", 8080), NamedPort("", "UDP", 53))
    assert pod.named_ports("http", "TCP") == [8080]
    assert pod.named_ports("http", "UDP") == []
    assert not pod.host_network


def test_pod_without_ip_and_host_network_pod() -> None:
    pending = PodInfo.from_object({"metadata": {"name": "p"}, "spec": {"containers": [{}]}})
    assert pending.ip == "" and pending.namespace == "default" and pending.node == ""
    host = PodInfo.from_object({"metadata": {"name": "h", "namespace": "kube-system"},
                                "spec": {"hostNetwork": True}, "status": {"podIP": "172.30.0.2"}})
    assert host.host_network


def test_pod_from_object_errors() -> None:
    with pytest.raises(ValueError, match=r"Pod x/a: spec.containers\[0\].ports\[0\].containerPort"):
        PodInfo.from_object({"metadata": {"name": "a", "namespace": "x"},
                             "spec": {"containers": [{"ports": [{"containerPort": "80"}]}]}})
    with pytest.raises(ValueError, match=r"metadata\.name"):
        PodInfo.from_object({"metadata": {}})


def test_namespace_gets_its_automatic_name_label() -> None:
    ns = NamespaceInfo.from_object({"metadata": {"name": "y", "labels": {"ns": "y"}}})
    assert ns.labels == {"ns": "y", "kubernetes.io/metadata.name": "y"}
    with pytest.raises(ValueError, match=r"metadata\.name"):
        NamespaceInfo.from_object({"metadata": {}})
