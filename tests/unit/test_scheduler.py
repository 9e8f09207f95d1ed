"""The local scheduler places pods like kube-scheduler's default plugins and explains refusals."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.local.scheduler import Unschedulable, node_filter_reason, schedule, tolerates

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(name: str, taints: list[dict[str, Any]] | None = None, **labels: str) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels}},
        "spec": {"taints": taints or []}}


def cluster() -> list[dict[str, Any]]:
    """kind's shape: a tainted control plane and two workers."""
    return [node("cp", [CP_TAINT], **{"node-role.kubernetes.io/control-plane": ""}),
            node("w1", zone="a", rack="1"), node("w2", zone="b", rack="2")]


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None,
        on: str | None = None, owner: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    return {"kind": "Pod", "metadata": meta,
            "spec": {**({"nodeName": on} if on else {}), **spec}}


def place_all(pods: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Schedule pods one after another, as the controllers do; name -> node."""
    bound: list[dict[str, Any]] = []
    placed = {}
    for p in pods:
        p["spec"]["nodeName"] = schedule(p, nodes, bound)
        placed[p["metadata"]["name"]] = p["spec"]["nodeName"]
        bound.append(p)
    return placed


def refusal(p: dict[str, Any], nodes: list[dict[str, Any]],
            pods: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(Unschedulable) as info:
        schedule(p, nodes, pods or [])
    return str(info.value)


def test_plain_pods_avoid_the_tainted_control_plane_and_balance_by_pod_count() -> None:
    placed = place_all([pod(f"p{i}") for i in range(4)], cluster())
    assert sorted(placed.values()) == ["w1", "w1", "w2", "w2"]


def test_node_name_binds_as_given_even_to_a_tainted_node() -> None:
    assert schedule(pod("p", on="cp"), cluster(), []) == "cp"


def test_node_selector_mismatch_reads_like_the_scheduler_event() -> None:
    message = refusal(pod("p", nodeSelector={"disk": "ssd"}), cluster())
    assert message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node "
        "affinity/selector.")


def test_no_nodes_at_all() -> None:
    assert "0/0 nodes are available" in refusal(pod("p"), [])


@pytest.mark.parametrize(("toleration", "ok"), [
    ({"operator": "Exists"}, True),
    ({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}, True),
    ({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
      "effect": "NoExecute"}, False),
    ({"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}, True),
    ({"key": "node-role.kubernetes.io/control-plane", "value": "x"}, False),
    ({"key": "other", "operator": "Exists"}, False),
])
def test_tolerations_match_like_the_api(toleration: dict[str, str], ok: bool) -> None:
    assert tolerates([toleration], CP_TAINT) is ok


def test_tolerating_the_control_plane_taint_lets_a_pod_land_there() -> None:
    p = pod("p", nodeSelector={"node-role.kubernetes.io/control-plane": ""},
            tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}])
    assert schedule(p, cluster(), []) == "cp"


def test_no_execute_taint_with_value_is_named_in_the_message() -> None:
    nodes = [node("w1", [{"key": "dedicated", "value": "db", "effect": "NoExecute"}])]
    assert refusal(pod("p"), nodes) == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.")


def test_prefer_no_schedule_taint_only_lowers_the_score() -> None:
    nodes = [node("w1", [{"key": "slow", "effect": "PreferNoSchedule"}]), node("w2")]
    assert schedule(pod("p"), nodes, []) == "w2"
    # It outranks "fewest pods", but a toleration removes the penalty.
    bound = [pod("x", on="w2"), pod("y", on="w2")]
    assert schedule(pod("p"), nodes, bound) == "w2"
    tolerant = pod("p", tolerations=[{"key": "slow", "operator": "Exists"}])
    assert schedule(tolerant, nodes, bound) == "w1"


def test_unschedulable_node_is_skipped() -> None:
    nodes = [node("w1"), node("w2")]
    nodes[0]["spec"]["unschedulable"] = True
    assert schedule(pod("p"), nodes, []) == "w2"
    assert "1 node(s) were unschedulable" in refusal(pod("p"), nodes[:1])


def affinity_pod(*exprs: dict[str, Any], fields: list[dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = fields
    return pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}})


@pytest.mark.parametrize(("expr", "expected"), [
    ({"key": "zone", "operator": "In", "values": ["b"]}, "w2"),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, "w2"),
    ({"key": "rack", "operator": "Gt", "values": ["1"]}, "w2"),
    ({"key": "rack", "operator": "Lt", "values": ["2"]}, "w1"),
    ({"key": "zone", "operator": "Exists"}, "w1"),
])
def test_required_node_affinity_operators(expr: dict[str, Any], expected: str) -> None:
    assert schedule(affinity_pod(expr), cluster(), []) == expected


def test_does_not_exist_and_match_fields() -> None:
    nodes = cluster()
    does_not_exist = affinity_pod({"key": "zone", "operator": "DoesNotExist"})
    does_not_exist["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert schedule(does_not_exist, nodes, []) == "cp"
    by_name = affinity_pod(fields=[{"key": "metadata.name", "operator": "In", "values": ["w2"]}])
    assert schedule(by_name, nodes, []) == "w2"


def test_node_affinity_terms_are_ored_and_an_empty_term_matches_nothing() -> None:
    p = pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}, {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["b"]}]}]}}})
    assert schedule(p, cluster(), []) == "w2"
    assert node_filter_reason(affinity_pod(), cluster()[1]) is not None


SPREAD = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
          "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
          "labelSelector": {"matchExpressions": [
              {"key": "pod", "operator": "In", "values": ["a", "b", "c"]}]}}


def test_hard_spread_with_taints_honoured_puts_three_pods_on_two_workers() -> None:
    pods = [pod(n, "x", {"pod": n}, topologySpreadConstraints=[SPREAD]) for n in "abc"]
    # Unrelated pods on w2: without the constraint all three would go to the emptier w1.
    noise = [pod(f"n{i}", "other", on="w2") for i in range(5)]
    bound = list(noise)
    placed = {}
    for p in pods:
        p["spec"]["nodeName"] = placed[p["metadata"]["name"]] = schedule(p, cluster(), bound)
        bound.append(p)
    assert set(placed.values()) == {"w1", "w2"}


def test_spread_counts_only_the_pods_own_namespace() -> None:
    bound = [pod(n, "y", {"pod": n}, on="w1") for n in "abc"]
    p = pod("a", "x", {"pod": "a"}, topologySpreadConstraints=[SPREAD])
    # Namespace x has no matching pod anywhere, so the node with fewer pods wins.
    assert schedule(p, cluster(), bound) == "w2"


def test_spread_with_taints_ignored_counts_the_control_plane_as_an_empty_domain() -> None:
    ignore = {**SPREAD, "nodeTaintsPolicy": "Ignore"}
    bound = [pod("a", "x", {"pod": "a"}, on="w1"), pod("b", "x", {"pod": "b"}, on="w2")]
    message = refusal(pod("c", "x", {"pod": "c"}, topologySpreadConstraints=[ignore]),
                      cluster(), bound)
    assert message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match pod topology "
        "spread constraints.")
    honor = pod("c", "x", {"pod": "c"}, topologySpreadConstraints=[SPREAD])
    assert schedule(honor, cluster(), bound) in ("w1", "w2")


def test_spread_on_a_missing_topology_key() -> None:
    zone = {**SPREAD, "topologyKey": "region"}
    message = refusal(pod("a", "x", {"pod": "a"}, topologySpreadConstraints=[zone]), cluster())
    assert "didn't match pod topology spread constraints (missing required label)" in message


def test_spread_over_a_custom_label_and_match_label_keys() -> None:
    by_zone = {**SPREAD, "topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}},
               "matchLabelKeys": ["version"]}
    bound = [pod("old1", labels={"app": "web", "version": "1"}, on="w1"),
             pod("old2", labels={"app": "web", "version": "1"}, on="w1")]
    p = pod("new", labels={"app": "web", "version": "2"}, topologySpreadConstraints=[by_zone])
    # Only version=2 pods count: zone a has 0, zone b has 1, so b would exceed the skew.
    bound.append(pod("new0", labels={"app": "web", "version": "2"}, on="w2"))
    assert schedule(p, cluster(), bound) == "w1"
    without_keys = {**by_zone, "matchLabelKeys": []}  # now a=2, b=1: a would exceed it
    p2 = pod("new", labels={"app": "web", "version": "2"}, topologySpreadConstraints=[without_keys])
    assert schedule(p2, cluster(), bound) == "w2"


def test_soft_spread_prefers_the_emptier_domain_over_fewer_pods() -> None:
    soft = {**SPREAD, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "h"}}}
    bound = [pod("h1", labels={"app": "h"}, on="w2"),
             pod("x1", on="w1"), pod("x2", on="w1"), pod("x3", on="w1")]
    assert schedule(pod("h2", labels={"app": "h"}, topologySpreadConstraints=[soft]),
                    cluster(), bound) == "w1"


def test_required_pod_affinity_follows_the_target_and_waits_for_it() -> None:
    near = pod("near", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname",
         "labelSelector": {"matchLabels": {"app": "solo"}}}]}})
    assert refusal(near, cluster()) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match pod affinity rules.")
    solo = pod("solo", labels={"app": "solo"}, on="w2")
    assert schedule(near, cluster(), [solo, pod("a", on="w1")]) == "w2"


def test_the_first_pod_of_a_self_selecting_affinity_group_may_go_anywhere() -> None:
    term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"g": "1"}}}
    group = [pod(f"g{i}", labels={"g": "1"}, affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}) for i in range(3)]
    placed = place_all(group, cluster())
    assert len(set(placed.values())) == 1


def test_required_anti_affinity_keeps_away_from_the_target() -> None:
    far = pod("far", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app": "solo"}}}]}})
    solo = pod("solo", labels={"app": "solo"}, on="w1")
    assert schedule(far, cluster(), [solo, pod("b", on="w2"), pod("c", on="w2")]) == "w2"


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    far = pod("far", on="w1", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app": "solo"}}}]}})
    solo = pod("solo", labels={"app": "solo"})
    assert schedule(solo, cluster(), [far]) == "w2"
    nodes = cluster()[:2]
    assert "1 node(s) didn't satisfy existing pods anti-affinity rules" in refusal(
        solo, nodes, [far])


def test_self_selecting_anti_affinity_puts_one_replica_per_node_then_refuses() -> None:
    term = {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app": "db"}}}
    replicas = [pod(f"db{i}", labels={"app": "db"}, owner="rs", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}) for i in range(3)]
    placed = place_all(replicas[:2], cluster())
    assert sorted(placed.values()) == ["w1", "w2"]
    assert refusal(replicas[2], cluster(), replicas[:2]) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match pod anti-affinity "
        "rules.")


def test_affinity_terms_look_in_the_pods_namespace_unless_told_otherwise() -> None:
    term: dict[str, Any] = {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app": "solo"}}}
    solo = pod("solo", "other", {"app": "solo"}, on="w2")
    near = pod("near", "mine", affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    refusal(near, cluster(), [solo])
    term["namespaces"] = ["other"]
    assert schedule(near, cluster(), [solo]) == "w2"
    del term["namespaces"]
    term["namespaceSelector"] = {"matchLabels": {"team": "blue"}}
    namespaces = [{"metadata": {"name": "other", "labels": {"team": "blue"}}}]
    assert schedule(near, cluster(), [solo], namespaces=namespaces) == "w2"
    term["namespaceSelector"] = {}
    assert schedule(near, cluster(), [solo]) == "w2"


def test_preferred_affinity_and_anti_affinity_score_nodes() -> None:
    bound = [pod("cache", labels={"app": "cache"}, on="w2"), pod("x", on="w2")]
    likes = pod("web", affinity={"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app": "cache"}}}}]}})
    assert schedule(likes, cluster(), bound) == "w2"
    dislikes = pod("web", affinity={"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app": "cache"}}}}]}})
    assert schedule(dislikes, cluster(), [*bound, pod("y", on="w1"), pod("z", on="w1"),
                                          pod("zz", on="w1")]) == "w1"


def test_replicas_of_one_owner_spread_before_fewest_pods() -> None:
    bound = [pod("r1", labels={"app": "r"}, owner="rs1", on="w1"),
             pod("o1", on="w2"), pod("o2", on="w2")]
    assert schedule(pod("r2", labels={"app": "r"}, owner="rs1"), cluster(), bound) == "w2"


def test_host_port_conflict() -> None:
    def with_port(name: str, on: str | None = None) -> dict[str, Any]:
        return pod(name, on=on, containers=[{"name": "c", "ports": [
            {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]}])
    assert schedule(with_port("b"), cluster(), [with_port("a", "w1")]) == "w2"
    message = refusal(with_port("c"), cluster(), [with_port("a", "w1"), with_port("b", "w2")])
    assert "2 node(s) didn't have free ports for the requested pod ports" in message


def test_terminating_and_unbound_pods_are_ignored() -> None:
    gone = pod("solo", labels={"app": "solo"}, on="w1")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    far = pod("far", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchLabels": {"app": "solo"}}}]}})
    assert schedule(far, cluster()[:2], [gone, pod("unbound", labels={"app": "solo"})]) == "w1"
