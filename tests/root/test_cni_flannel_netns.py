"""Flannel on the local engine, on real namespaces: the artefacts a learner inspects in a node
(cni0, flannel.1, its FDB/ARP entries and routes, subnet.env), traffic across nodes and
through Services, VXLAN seen on the underlay, and NetworkPolicy not enforced.

One cluster per test (``make_cluster``), removed and proven gone afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from cnipods import capture_during, deploy, http, node_out

from clusters.local.cni.flannel import vtep_mac
from clusters.local.datapath import Datapath
from clusters.local.engine import LocalCluster
from clusters.probing import Outcome

pytestmark = pytest.mark.root

NS = "flt"
MakeCluster = Callable[..., LocalCluster]


def _outer(captured: str) -> list[str]:
    """The packets' own lines of a tcpdump output (they start with a timestamp; decoded
    inner packets follow on lines of their own)."""
    return [line for line in captured.splitlines() if re.match(r"^\d\d:\d\d:", line)]


def _assert_services_and_policy(cluster: LocalCluster, ips: dict[str, str]) -> None:
    """Same-node pod → ClusterIP → same-node pod (bridged reply, needs bridge netfilter),
    hairpin, cross-node via the Service; then a default-deny policy that changes nothing."""
    for src in ("near", "web", "far"):
        seen = http(cluster, NS, src, ips["svc"], 80)
        assert seen.status == 200 and seen.body == "web", f"{src}: {seen.summary()}"
    results = cluster.apply([{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": NS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}], source="test")
    assert any("does not enforce" in w for r in results for w in r.warnings), results
    assert cluster.capabilities().network_policy is False
    for src, target, port in (("far", ips["web"], 8080), ("near", ips["web"], 8080),
                              ("near", ips["svc"], 80)):
        seen = http(cluster, NS, src, target, port)
        assert seen.outcome is Outcome.CONNECTED and seen.body == "web", \
            f"flannel must not enforce the policy: {src} -> {target}: {seen.summary()}"


def test_vxlan_overlay_as_a_flannel_node_shows_it(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("flannel", "vxlan")
    topo = cluster.topology
    cp, w1, w2 = topo.nodes

    # ---- the node's devices, as `lab node-shell NODE -- ...` shows them
    link = node_out(cluster, w1.name, "ip", "-d", "link", "show", "flannel.1")
    assert "mtu 1450 " in link
    assert f"link/ether {vtep_mac(topo.cluster, w1.name)} " in link
    assert re.search(rf"vxlan id 1 local {w1.underlay_ip} dev eth0 .*dstport 8472 nolearning",
                     link), link
    assert f"inet {w1.tunnel_ip}/32 " in node_out(cluster, w1.name, "ip", "addr", "show", "flannel.1")
    bridge = node_out(cluster, w1.name, "ip", "addr", "show", "cni0")
    assert "mtu 1450 " in bridge and f"inet {w1.gateway}/24 " in bridge
    fdb = node_out(cluster, w1.name, "bridge", "fdb", "show", "dev", "flannel.1")
    neigh = node_out(cluster, w1.name, "ip", "neigh", "show", "dev", "flannel.1")
    routes = node_out(cluster, w1.name, "ip", "route")
    for other in (cp, w2):
        mac = vtep_mac(topo.cluster, other.name)
        assert f"{mac} dst {other.underlay_ip} self permanent" in fdb, fdb
        assert f"{other.tunnel_ip} lladdr {mac} PERMANENT" in neigh, neigh
        assert f"{other.pod_cidr} via {other.tunnel_ip} dev flannel.1 onlink" in routes, routes
    assert vtep_mac(topo.cluster, w1.name) not in fdb
    assert f"{w1.pod_cidr} dev cni0 proto kernel scope link src {w1.gateway}" in routes
    assert "default" not in routes
    assert node_out(cluster, w1.name, "cat", "/run/flannel/subnet.env") == (
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    assert node_out(cluster, w1.name, "cat",
                 "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
    node_obj = cluster.get("Node", None, w2.name)[0]
    annotations = node_obj["metadata"]["annotations"]
    assert json.loads(annotations["flannel.alpha.coreos.com/backend-data"]) == {
        "VNI": 1, "VtepMAC": vtep_mac(topo.cluster, w2.name)}
    assert annotations["flannel.alpha.coreos.com/public-ip"] == str(w2.underlay_ip)

    # ---- pods: on cni0 with hairpin, 1450 MTU, default via the bridge
    ips = deploy(cluster, NS)
    pod_link = cluster.exec(NS, "web", ["ip", "-o", "link", "show", "eth0"], capture=True)
    assert "mtu 1450 " in pod_link.stdout, pod_link
    pod_routes = cluster.exec(NS, "web", ["ip", "route"], capture=True).stdout
    assert f"default via {w1.gateway} dev eth0" in pod_routes
    assert f"10.244.0.0/16 via {w1.gateway} dev eth0" in pod_routes
    ports = node_out(cluster, w1.name, "bridge", "-d", "link", "show", "master", "cni0")
    # web, near, and whatever else runs there (CoreDNS): every port has hairpin on.
    assert ports.count("hairpin on") == ports.count("master cni0") >= 2, ports

    # ---- cross-node TCP over the overlay keeps the client's pod IP; same node over L2
    seen = http(cluster, NS, "far", ips["web"], path="/clientip")
    assert seen.status == 200 and (seen.body or "").startswith(f"{ips['far']}:"), seen.summary()
    seen = http(cluster, NS, "near", ips["web"], path="/clientip")
    assert seen.status == 200 and (seen.body or "").startswith(f"{ips['near']}:"), seen.summary()

    # ---- the underlay carries VXLAN (UDP 8472, VNI 1) and never the bare pod TCP
    captured = capture_during(
        cluster, w1.name, f"udp port 8472 or ( tcp and host {ips['web']} )", 2,
        lambda: http(cluster, NS, "far", ips["web"]) and None)
    outer = _outer(captured)
    assert len(outer) == 2 and all(".8472: VXLAN" in line and "vni 1" in line
                                   for line in outer), captured
    # tcpdump decodes the inner frame: the pods' own addresses, inside the tunnel.
    assert f"IP {ips['far']}." in captured and f" > {ips['web']}.8080: " in captured, captured

    _assert_services_and_policy(cluster, ips)

    # ---- a restarted daemon builds over the running nodes without error or duplicates
    Datapath(topo).create()
    assert node_out(cluster, w1.name, "bridge", "fdb", "show", "dev", "flannel.1").count(
        "self permanent") == 2
    seen = http(cluster, NS, "far", ips["web"])
    assert seen.body == "web", seen.summary()


def test_host_gw_routes_pods_directly_over_the_underlay(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("flannel", "host-gw")
    topo = cluster.topology
    cp, w1, w2 = topo.nodes

    links = cluster.node_exec(w1.name, ["ip", "link", "show", "flannel.1"], capture=True)
    assert links.returncode != 0 and "does not exist" in links.stderr
    assert "mtu 1500 " in node_out(cluster, w1.name, "ip", "link", "show", "cni0")
    routes = node_out(cluster, w1.name, "ip", "route")
    for other in (cp, w2):
        assert f"{other.pod_cidr} via {other.underlay_ip} dev eth0" in routes, routes
    assert "flannel" not in routes
    assert "FLANNEL_MTU=1500\n" in node_out(cluster, w1.name, "cat", "/run/flannel/subnet.env")
    annotations = cluster.get("Node", None, w1.name)[0]["metadata"]["annotations"]
    assert annotations["flannel.alpha.coreos.com/backend-type"] == "host-gw"
    assert annotations["flannel.alpha.coreos.com/backend-data"] == "null"

    ips = deploy(cluster, NS)
    pod_link = cluster.exec(NS, "far", ["ip", "-o", "link", "show", "eth0"], capture=True)
    assert "mtu 1500 " in pod_link.stdout, pod_link
    seen = http(cluster, NS, "far", ips["web"], path="/clientip")
    assert seen.status == 200 and (seen.body or "").startswith(f"{ips['far']}:"), seen.summary()

    # The pod's own TCP is on the underlay wire; nothing is encapsulated.
    captured = capture_during(
        cluster, w1.name, f"udp port 8472 or ( tcp and host {ips['web']} )", 2,
        lambda: http(cluster, NS, "far", ips["web"]) and None)
    outer = _outer(captured)
    assert len(outer) == 2 and all(ips["web"] in line and "8472" not in line
                                   for line in outer), captured

    _assert_services_and_policy(cluster, ips)
