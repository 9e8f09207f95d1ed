"""The learner's scope on a shared cluster: names in, names out."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.context.production import ContextInfo, production_signals
from clusters.context.scope import (
    LEARNER_LABEL,
    NAME_LABEL,
    OWNER_LABEL,
    OutsideScope,
    Scope,
    check_prefix,
    learner_from_user,
)

SCOPE = Scope("alice", "f00d", frozenset({"lab04", "monitoring", "lab02"}))


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "metrics", "namespace": "lab04", "labels": {"app": "x"}},
        "spec": {
            "podSelector": {},
            "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {NAME_LABEL: "monitoring"}},
                 "podSelector": {"matchLabels": {"app": "scraper"}}},
                {"namespaceSelector": {"matchExpressions": [
                    {"key": NAME_LABEL, "operator": "In", "values": ["lab02", "kube-system"]}]}},
                {"namespaceSelector": {"matchLabels": {"team": "ops"}}},
            ]}],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NAME_LABEL: "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}],
        },
    }


def test_namespaced_objects_move_to_the_learners_namespace() -> None:
    out = SCOPE.inbound(policy(), namespaced=True)
    assert out["metadata"]["namespace"] == "alice-lab04"
    assert out["metadata"]["labels"] == {"app": "x"}  # namespaced objects get no marks
    peers = out["spec"]["ingress"][0]["from"]
    assert peers[0]["namespaceSelector"]["matchLabels"][NAME_LABEL] == "alice-monitoring"
    assert peers[1]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "alice-lab02", "kube-system"]
    assert peers[2]["namespaceSelector"] == {"matchLabels": {"team": "ops"}}
    dns = out["spec"]["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"]
    assert dns[NAME_LABEL] == "kube-system"  # the cluster's DNS stays where it is


def test_inbound_leaves_the_input_alone_and_outbound_restores_it() -> None:
    doc = policy()
    out = SCOPE.inbound(doc, namespaced=True)
    assert doc == policy()
    assert SCOPE.outbound(out) == policy()


def test_a_namespace_gets_its_real_name_and_the_marks() -> None:
    doc = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "monitoring", "labels": {"team": "ops"}}}
    out = SCOPE.inbound(doc, namespaced=False)
    assert out["metadata"] == {"name": "alice-monitoring", "labels": {
        "team": "ops", LEARNER_LABEL: "alice", OWNER_LABEL: "f00d"}}
    served = {**out, "metadata": {**out["metadata"], "labels": {
        **out["metadata"]["labels"], NAME_LABEL: "alice-monitoring"}}}
    back = SCOPE.outbound(served)
    assert back["metadata"] == {"name": "monitoring",
                                "labels": {"team": "ops", NAME_LABEL: "monitoring"}}


def test_someone_elses_namespace_keeps_its_name_when_read() -> None:
    theirs = {"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": "alice-lab04", "labels": {LEARNER_LABEL: "bob"}}}
    assert SCOPE.outbound(theirs)["metadata"]["name"] == "alice-lab04"


@pytest.mark.parametrize(("text", "expected"), [
    ("web.lab04", "web.alice-lab04"),
    ("web.lab04.", "web.alice-lab04."),
    ("web.lab04.svc", "web.alice-lab04.svc"),
    ("http://web.lab04.svc.cluster.local:8080/x", "http://web.alice-lab04.svc.cluster.local:8080/x"),
    ("10-244-1-5.lab04.pod.cluster.local", "10-244-1-5.alice-lab04.pod.cluster.local"),
    ("_http._tcp.web.lab02.svc.cluster.local.", "_http._tcp.web.alice-lab02.svc.cluster.local."),
    ("wget -qO- web.lab02:80 && nc -z api.monitoring 9", "wget -qO- web.alice-lab02:80 && "
                                                          "nc -z api.alice-monitoring 9"),
    # not names in a lab namespace: left as they are
    ("lab04", "lab04"),
    ("web.lab04.example.com", "web.lab04.example.com"),
    ("web.lab04x", "web.lab04x"),
    ("web.lab04-old", "web.lab04-old"),
    ("kube-dns.kube-system.svc", "kube-dns.kube-system.svc"),
    ("v1.lab05", "v1.lab05"),
])
def test_dns_names_of_lab_namespaces_are_rewritten(text: str, expected: str) -> None:
    assert SCOPE.rewrite_text(text) == expected
    assert SCOPE.restore_text(expected) == text


def test_strings_in_specs_are_rewritten_but_labels_are_not() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "c", "namespace": "lab02", "annotations": {"x": "web.lab02"}},
           "spec": {"containers": [{"name": "c", "image": "agnhost",
                                    "args": ["connect", "web.lab02:80"],
                                    "env": [{"name": "T", "value": "api.lab04.svc"}]}]}}
    out = SCOPE.inbound(pod, namespaced=True)
    assert out["spec"]["containers"][0]["args"] == ["connect", "web.alice-lab02:80"]
    assert out["spec"]["containers"][0]["env"][0]["value"] == "api.alice-lab04.svc"
    assert out["metadata"]["annotations"] == {"x": "web.lab02"}


def test_namespace_references_and_lists_are_rewritten() -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "r", "namespace": "lab04"},
             "spec": {"parentRefs": [{"name": "gw", "namespace": "monitoring"}],
                      "rules": [{"backendRefs": [{"name": "api", "port": 80}]}],
                      "affinity": {"namespaces": ["lab04", "kube-system"]}}}
    out = SCOPE.inbound(route, namespaced=True)
    assert out["spec"]["parentRefs"][0]["namespace"] == "alice-monitoring"
    assert out["spec"]["affinity"]["namespaces"] == ["alice-lab04", "kube-system"]
    assert SCOPE.outbound(out) == route


def test_objects_without_a_namespace_go_to_the_learners_default() -> None:
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert SCOPE.inbound(doc, namespaced=True)["metadata"]["namespace"] == "alice-default"


def test_system_namespaces_and_overlong_names_are_outside() -> None:
    with pytest.raises(OutsideScope, match="kube-system is outside your namespaces"):
        SCOPE.cluster_ns("kube-system")
    with pytest.raises(OutsideScope, match="longer than 63"):
        SCOPE.cluster_ns("x" * 60)


def test_cluster_scoped_objects_get_the_marks() -> None:
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": "mine"}, "spec": {"controller": "k8s.io/x"}}
    out = SCOPE.inbound(doc, namespaced=False)
    assert out["metadata"]["labels"] == {LEARNER_LABEL: "alice", OWNER_LABEL: "f00d"}
    assert SCOPE.owns(out)
    assert not Scope("alice", "beef").owns(out)
    assert "another kube-netlab installation" in Scope("alice", "beef").owner_of(out)
    assert Scope("bob", "f00d").owner_of(out) == "learner alice"


def test_prefixes() -> None:
    assert check_prefix("alice-2") == "alice-2"
    for bad in ("Alice", "2alice", "a" * 21, "alice-", ""):
        with pytest.raises(ValueError, match="--learner alice"):
            check_prefix(bad)
    assert learner_from_user("Alice.Smith") == "alice-smith"
    assert learner_from_user("42") == "learner"
    assert learner_from_user("x" * 40) == "x" * 20
    check_prefix(learner_from_user("--Über_User--"))


@pytest.mark.parametrize(("info", "hits"), [
    (ContextInfo("gke_acme_europe-west1_prod-main", "c", "u", "https://1.2.3.4"), 1),
    (ContextInfo("workshop", "production", "admin", "https://api.live.example.com:6443"), 2),
    (ContextInfo("kind-netlab", "kind-netlab", "kind-netlab", "https://127.0.0.1:40000"), 0),
    (ContextInfo("product-demo", "prodigy", "u", "https://products.example.com"), 0),
])
def test_production_signals(info: ContextInfo, hits: int) -> None:
    found = production_signals(info)
    assert len(found) == hits
    if hits:
        assert "contains" in found[0]
