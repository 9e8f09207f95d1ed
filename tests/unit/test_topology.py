"""The local engine's topology planning and IPAM: pure functions, no root needed."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from clusters.errors import AddressConflict, ClusterError
from clusters.local.datapath import IPAM
from clusters.local.topology import (
    Topology,
    bridge_name,
    cluster_of_netns,
    host_veth_name,
    owned_netns,
    parse_routes,
    plan,
    pod_netns_name,
    pod_veth_name,
)

N = IPv4Network


def test_nodes_are_named_and_addressed_like_kind() -> None:
    topo = plan("netlab", workers=3, arch="amd64")
    assert [n.name for n in topo.nodes] == [
        "netlab-control-plane", "netlab-worker", "netlab-worker2", "netlab-worker3"]
    assert [n.netns for n in topo.nodes] == [
        "knl-netlab-control-plane", "knl-netlab-worker", "knl-netlab-worker2",
        "knl-netlab-worker3"]
    assert [n.role for n in topo.nodes] == ["control-plane", "worker", "worker", "worker"]
    assert [str(n.pod_cidr) for n in topo.nodes] == [
        "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert [str(n.gateway) for n in topo.nodes] == [
        "10.244.0.1", "10.244.1.1", "10.244.2.1", "10.244.3.1"]
    assert topo.underlay == N("172.30.0.0/24")
    assert topo.host_ip == IPv4Address("172.30.0.1")
    assert [str(n.underlay_ip) for n in topo.nodes] == [
        "172.30.0.2", "172.30.0.3", "172.30.0.4", "172.30.0.5"]
    assert topo.pod_cidr == N("10.244.0.0/16")
    assert topo.service_cidr == N("10.96.0.0/16")
    assert topo.tag == "kube-netlab:netlab"
    assert topo.node("netlab-worker2").index == 2


def test_labels_and_taints() -> None:
    topo = plan("netlab", workers=1, arch="amd64")
    cp, worker = topo.nodes
    assert cp.labels["node-role.kubernetes.io/control-plane"] == ""
    assert cp.labels["kubernetes.io/hostname"] == "netlab-control-plane"
    assert cp.taints == [{"key": "node-role.kubernetes.io/control-plane",
                          "effect": "NoSchedule"}]
    assert worker.labels == {"kubernetes.io/hostname": "netlab-worker",
                             "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    assert worker.taints == []


def test_link_names_fit_the_kernel_limit() -> None:
    name = "a" * 20
    topo = plan(name, workers=12)
    assert len(topo.bridge) <= 15 and topo.bridge == bridge_name(name)
    assert topo.bridge.startswith("knlbr-")
    veths = {host_veth_name(name, n.name) for n in topo.nodes}
    assert len(veths) == len(topo.nodes)
    assert all(len(v) <= 15 for v in veths)
    assert len(pod_veth_name("default/web-0")) <= 15
    assert pod_netns_name(name, "default/web-0").startswith(f"knl-{name}-pod-")
    assert pod_netns_name(name, "default/web-0") != pod_netns_name(name, "default/web-1")


@pytest.mark.parametrize("bad", ["", "Upper", "-lead", "trail-", "has_underscore",
                                 "a" * 21, "dots.in.name"])
def test_bad_cluster_names_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="cluster name"):
        plan(bad)


def test_worker_count_is_bounded() -> None:
    with pytest.raises(ValueError, match="workers"):
        plan("netlab", workers=-1)
    assert len(plan("netlab", workers=0).nodes) == 1


def test_underlay_skips_host_routes_and_other_clusters() -> None:
    routes = [N("172.30.0.0/23"), N("192.168.1.0/24")]
    taken = [N("172.30.2.0/24")]
    topo = plan("netlab", host_routes=routes, taken_underlays=taken)
    assert topo.underlay == N("172.30.3.0/24")
    assert topo.host_ip == IPv4Address("172.30.3.1")


def test_default_route_is_not_a_conflict() -> None:
    topo = plan("netlab", host_routes=[N("0.0.0.0/0")])
    assert topo.underlay == N("172.30.0.0/24")


@pytest.mark.parametrize(("route", "rng"), [("10.0.0.0/8", "10.244.0.0/16"),
                                            ("10.96.5.0/24", "10.96.0.0/16")])
def test_pod_or_service_range_collision_is_refused(route: str, rng: str) -> None:
    with pytest.raises(AddressConflict) as info:
        plan("netlab", host_routes=[N(route)])
    msg = str(info.value)
    assert route in msg and rng in msg and "kind" in msg


def test_no_free_underlay_is_refused() -> None:
    with pytest.raises(AddressConflict, match=re.escape("172.30.0.0/16")):
        plan("netlab", host_routes=[N("172.16.0.0/12")])


def test_round_trips_through_json() -> None:
    topo = plan("netlab", workers=2, taken_underlays=[N("172.30.0.0/24")])
    again = Topology.from_dict(json.loads(json.dumps(topo.to_dict())))
    assert again == topo
    assert again.node("netlab-worker").underlay_ip == IPv4Address("172.30.1.3")


def test_describe_lists_every_node() -> None:
    text = plan("netlab", workers=2).describe()
    assert "knlbr-" in text and "10.96.0.0/16" in text
    for name, ip, cidr in [("netlab-control-plane", "172.30.0.2", "10.244.0.0/24"),
                           ("netlab-worker2", "172.30.0.4", "10.244.2.0/24")]:
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert ip in line and cidr in line


def test_unknown_node_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="netlab-worker"):
        plan("netlab").node("netlab-worker9")


def test_parse_routes_keeps_ipv4_destinations_and_address_prefixes() -> None:
    routes = json.dumps([
        {"dst": "default", "gateway": "192.0.2.1"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"type": "local", "dst": "192.0.2.2", "table": "local"},
        {"dst": "fd00::/64"},
        {"type": "unreachable", "dst": "10.0.0.0/8"},
    ])
    addrs = json.dumps([{"addr_info": [
        {"family": "inet", "local": "100.64.3.7", "prefixlen": 10},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
    ]}])
    assert parse_routes(routes, addrs) == sorted(
        [N("192.0.2.0/24"), N("192.0.2.2/32"), N("10.0.0.0/8"), N("100.64.0.0/10")])


def test_namespace_names_belong_to_exactly_one_cluster() -> None:
    a, ab = owned_netns("a"), owned_netns("a-b")
    assert a.match("knl-a-worker2") and a.match("knl-a-pod-0123456789ab")
    assert not a.match("knl-a-b-worker") and not a.match("knl-a-b-control-plane")
    assert not a.match("knl-a-b-pod-0123456789ab")
    assert ab.match("knl-a-b-worker") and not ab.match("knl-a-worker")
    assert not a.match("knl-a-workerx") and not a.match("knl-a-worker-control-plane")
    assert cluster_of_netns("knl-a-b-worker") == "a-b"
    assert cluster_of_netns("knl-a-worker-worker") == "a-worker"
    assert cluster_of_netns("knl-x-pod-0123456789ab") == "x"
    assert cluster_of_netns("knl-x-other") is None
    assert cluster_of_netns("netns-of-someone-else") is None


# ---- IPAM --------------------------------------------------------------------------------
@pytest.fixture
def ipam() -> IPAM:
    return IPAM(plan("netlab", workers=2))


def test_ipam_hands_out_node_addresses_skipping_the_gateway(ipam: IPAM) -> None:
    a = ipam.allocate("netlab-worker", "default/a")
    b = ipam.allocate("netlab-worker", "default/b")
    c = ipam.allocate("netlab-worker2", "default/c")
    assert (str(a), str(b), str(c)) == ("10.244.1.2", "10.244.1.3", "10.244.2.2")
    assert ipam.allocate("netlab-worker", "default/a") == a  # same key, same address
    assert ipam.allocations() == {"default/a": a, "default/b": b, "default/c": c}


def test_ipam_does_not_reuse_a_freed_address_at_once(ipam: IPAM) -> None:
    a = ipam.allocate("netlab-worker", "default/a")
    ipam.release("default/a")
    assert ipam.lookup("default/a") is None
    assert ipam.allocate("netlab-worker", "default/b") != a
    ipam.release("default/never-allocated")  # no error


def test_ipam_exhaustion_and_wraparound(ipam: IPAM) -> None:
    node = "netlab-control-plane"
    got = [ipam.allocate(node, f"ns/p{i}") for i in range(253)]
    assert len(set(got)) == 253
    assert IPv4Address("10.244.0.1") not in got
    assert {str(got[0]), str(got[-1])} == {"10.244.0.2", "10.244.0.254"}
    with pytest.raises(ClusterError, match="no free pod address"):
        ipam.allocate(node, "ns/one-too-many")
    ipam.release("ns/p7")
    assert ipam.allocate(node, "ns/again") == got[7]


def test_ipam_moves_a_key_to_its_new_node(ipam: IPAM) -> None:
    old = ipam.allocate("netlab-worker", "db/db-0")
    new = ipam.allocate("netlab-worker2", "db/db-0")
    assert new in IPv4Network("10.244.2.0/24")
    assert ipam.lookup("db/db-0") == new
    assert old not in ipam.allocations().values()


def test_ipam_restore_keeps_addresses_and_refuses_misfits(ipam: IPAM) -> None:
    refused = ipam.restore({
        "default/a": "10.244.1.7", "default/b": IPv4Address("10.244.2.9"),
        "default/gw": "10.244.1.1", "default/far": "192.168.0.5", "default/dup": "10.244.1.7",
    })
    assert sorted(refused) == ["default/dup", "default/far", "default/gw"]
    assert ipam.lookup("default/a") == IPv4Address("10.244.1.7")
    assert ipam.allocate("netlab-worker", "default/a") == IPv4Address("10.244.1.7")
    # New pods continue after the restored ones and never collide with them.
    assert ipam.allocate("netlab-worker", "default/new") == IPv4Address("10.244.1.8")
    assert ipam.allocate("netlab-worker2", "default/new2") == IPv4Address("10.244.2.10")


def test_routes_on_our_own_bridges_are_not_host_conflicts() -> None:
    """Another cluster's pinned pod range is no conflict; its underlay still is."""
    import json

    from clusters.local.topology import parse_routes

    routes = json.dumps([
        {"dst": "10.244.0.0/16", "dev": "knlbr-abc123"},
        {"dst": "172.30.0.0/24", "dev": "knlbr-abc123", "protocol": "kernel"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
    ])
    addrs = json.dumps([
        {"ifname": "knlbr-abc123", "addr_info": [{"family": "inet", "local": "172.30.0.1",
                                                  "prefixlen": 24}]},
    ])
    assert [str(n) for n in parse_routes(routes, addrs)] == ["172.30.0.0/24", "192.0.2.0/24"]
