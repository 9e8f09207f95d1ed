"""Calico on the local engine, on real namespaces: what a learner inspects in a node (BIRD's
mesh, ``proto bird`` routes and the block's blackhole, cali* veths with proxy ARP, or the
vxlan.calico device with Felix's routes), pods talking across nodes and through a Service,
VXLAN seen on the underlay, and a default-deny NetworkPolicy that blocks.

One cluster per test (``make_cluster``); the fixture deletes it and proves nothing is left,
BIRD processes included.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from functools import partial

import pytest
from cnipods import capture_during, deploy, http, node_out

from clusters.local import cleanup
from clusters.local.cni import bird
from clusters.local.cni.calico import CALI_MAC, Calico, cali_name, vxlan_mac
from clusters.local.datapath import Datapath
from clusters.local.engine import LocalCluster
from clusters.local.topology import NodePlan
from clusters.probing import Outcome, ProbeSpec, Source
from clusters.proc import wait_until

pytestmark = pytest.mark.root

NS = "calt"
MakeCluster = Callable[..., LocalCluster]


def _pod_cmd(cluster: LocalCluster, pod: str, *argv: str) -> str:
    done = cluster.exec(NS, pod, list(argv), capture=True, timeout=15)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout


def _mesh(cluster: LocalCluster, node: NodePlan) -> dict[str, bird.Protocol]:
    """``birdc show protocols`` in the node, as a learner runs it (default socket path)."""
    shown = node_out(cluster, node.name, "birdc", "show", "protocols")
    assert shown.startswith("BIRD 2."), shown
    return {p.name: p for p in bird.parse_protocols(shown) if p.proto == "BGP"}


def _expected_peers(cluster: LocalCluster, node: NodePlan) -> set[str]:
    return {bird.mesh_name(o.underlay_ip) for o in cluster.topology.nodes if o != node}


def _assert_pods_wired_like_calico(cluster: LocalCluster, ips: dict[str, str], mtu: int) -> None:
    w1 = cluster.topology.workers[0]
    veth = cali_name(f"{NS}/web")
    link = node_out(cluster, w1.name, "ip", "-d", "link", "show", veth)
    assert f"link/ether {CALI_MAC} " in link and f"mtu {mtu} " in link, link
    assert "inet " not in node_out(cluster, w1.name, "ip", "addr", "show", veth)
    routes = node_out(cluster, w1.name, "ip", "route")
    assert f"{ips['web']} dev {veth} scope link" in routes, routes
    assert f"{ips['near']} dev {cali_name(f'{NS}/near')} scope link" in routes, routes
    assert "default" not in routes
    assert node_out(cluster, w1.name, "sysctl", "-n", f"net.ipv4.conf.{veth}.proxy_arp") == "1\n"
    assert node_out(cluster, w1.name, "sysctl", "-n", f"net.ipv4.neigh.{veth}.proxy_delay") == "0\n"
    links = node_out(cluster, w1.name, "ip", "-o", "link", "show", "type", "veth")
    assert re.findall(r"\d+: (cali[0-9a-f]{11})@", links), links

    pod_routes = _pod_cmd(cluster, "web", "ip", "route")
    assert "default via 169.254.1.1 dev eth0" in pod_routes, pod_routes
    assert "169.254.1.1 dev eth0 scope link" in pod_routes, pod_routes
    assert f"inet {ips['web']}/32 " in _pod_cmd(cluster, "web", "ip", "addr", "show", "eth0")
    assert f"mtu {mtu} " in _pod_cmd(cluster, "web", "ip", "link", "show", "eth0")

    # Cross-node and same-node TCP, the server seeing the client's own pod IP (no NAT).
    for src in ("far", "near"):
        seen = http(cluster, NS, src, ips["web"], path="/clientip")
        assert seen.status == 200 and (seen.body or "").startswith(f"{ips[src]}:"), \
            f"{src}: {seen.summary()}"
    # The pods reached their gateway: the node answered the ARP for 169.254.1.1 by proxy.
    for pod in ("far", "near"):
        neigh = _pod_cmd(cluster, pod, "ip", "neigh", "show", "169.254.1.1")
        assert f"169.254.1.1 dev eth0 lladdr {CALI_MAC} " in neigh, f"{pod}: {neigh!r}"
    # A ClusterIP Service, from the same node (hairpin included) and across nodes.
    for src in ("near", "web", "far"):
        seen = http(cluster, NS, src, ips["svc"], 80)
        assert seen.status == 200 and seen.body == "web", f"{src}: {seen.summary()}"


def _assert_default_deny_blocks(cluster: LocalCluster, ips: dict[str, str]) -> None:
    assert cluster.capabilities().network_policy is True
    cluster.apply([{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "deny-all", "namespace": NS},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}], source="test")
    for src, target, port in (("far", ips["web"], 8080), ("near", ips["web"], 8080),
                              ("far", ips["svc"], 80)):
        spec = ProbeSpec("tcp", Source(NS, src), target, port, timeout=1.0)
        seen = wait_until(
            f"{spec.describe()} blocked", partial(cluster.probe, spec),
            lambda o: o.outcome is not Outcome.CONNECTED, timeout=15,
            describe=lambda o: o.summary())
        assert seen.outcome is Outcome.TIMEOUT, seen.summary()


def test_bgp_mesh_as_a_calico_node_shows_it(make_cluster: MakeCluster) -> None:
    started = time.monotonic()
    cluster = make_cluster("calico", "bgp")
    print(f"\nmake_cluster('calico', 'bgp'), 3 nodes until ready: "
          f"{time.monotonic() - started:.2f}s")
    topo = cluster.topology
    assert str(topo.pod_cidr) == "192.168.0.0/16"

    # ---- BIRD: every mesh session Established, seen with birdc's default socket
    for node in topo.nodes:
        mesh = _mesh(cluster, node)
        assert set(mesh) == _expected_peers(cluster, node)
        assert all(p.established for p in mesh.values()), mesh
        routes = node_out(cluster, node.name, "ip", "route")
        assert f"blackhole {node.pod_cidr} proto bird" in routes, routes
        assert "169.254.1.1 dev eth0 scope link" in routes
        assert "default" not in routes
        for other in topo.nodes:
            if other != node:
                assert f"{other.pod_cidr} via {other.underlay_ip} dev eth0 proto bird" in routes
        learned = node_out(cluster, node.name, "birdc", "show", "route")
        assert f"{node.pod_cidr}" in learned and "blackhole" in learned, learned
    node_obj = cluster.get("Node", None, topo.nodes[1].name)[0]
    assert node_obj["metadata"]["annotations"]["projectcalico.org/IPv4Address"] == \
        f"{topo.nodes[1].underlay_ip}/24"

    # ---- pods: cali veths, 169.254.1.1, proxy ARP, cross-node TCP, Service
    ips = deploy(cluster, NS)
    assert all(ip.startswith("192.168.") for ip in ips.values() if ip != ips["svc"])
    _assert_pods_wired_like_calico(cluster, ips, mtu=1500)

    # ---- a BIRD left by an earlier daemon with another config is replaced
    w2 = topo.workers[1]
    plugin = Calico(topo)
    paths = plugin.bird_paths(w2)
    bird.stop([paths])
    stale = plugin.bird_config(w2).split("# ------------- Node-to-node mesh")[0]
    bird.start(paths, w2.netns, stale)  # no mesh at all
    old = bird.running(paths)
    assert len(old) == 1 and _mesh(cluster, w2) == {}
    Datapath(topo).create()  # what a restarted daemon does: rebuild, restart, wait
    assert bird.running(paths) not in ([], old)
    assert all(p.established for p in _mesh(cluster, w2).values())
    assert set(_mesh(cluster, w2)) == _expected_peers(cluster, w2)
    assert paths.config.read_text() == plugin.bird_config(w2)
    seen = http(cluster, NS, "far", ips["near"])
    assert seen.body == "near", seen.summary()

    _assert_default_deny_blocks(cluster, ips)

    # ---- stopped BIRDs take their routes with them
    plugin.stop()
    assert [p for p, _ in cleanup.agent_processes(topo.cluster)] == []
    assert "proto bird" not in node_out(cluster, w2.name, "ip", "route")


def test_vxlan_mode_as_a_calico_node_shows_it(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("calico", "vxlan")
    topo = cluster.topology
    cp, w1, w2 = topo.nodes

    # ---- Felix's device, routes, neighbours and FDB; no BIRD at all
    link = node_out(cluster, w1.name, "ip", "-d", "link", "show", "vxlan.calico")
    assert "mtu 1450 " in link and f"link/ether {vxlan_mac(topo.cluster, w1.name)} " in link
    assert re.search(rf"vxlan id 4096 local {w1.underlay_ip} dev eth0 .*dstport 4789 nolearning",
                     link), link
    assert f"inet {w1.tunnel_ip}/32 " in node_out(cluster, w1.name, "ip", "addr", "show",
                                               "vxlan.calico")
    routes = node_out(cluster, w1.name, "ip", "route")
    neigh = node_out(cluster, w1.name, "ip", "neigh", "show", "dev", "vxlan.calico")
    fdb = node_out(cluster, w1.name, "bridge", "fdb", "show", "dev", "vxlan.calico")
    for other in (cp, w2):
        mac = vxlan_mac(topo.cluster, other.name)
        assert (f"{other.pod_cidr} via {other.tunnel_ip} dev vxlan.calico proto 80 onlink"
                in routes), routes
        assert f"{other.tunnel_ip} lladdr {mac} PERMANENT" in neigh, neigh
        assert f"{mac} dst {other.underlay_ip} self permanent" in fdb, fdb
    assert f"blackhole {w1.pod_cidr} proto 80" in routes
    assert "default" not in routes and "proto bird" not in routes
    assert cleanup.agent_processes(topo.cluster) == []
    birdc = cluster.node_exec(w1.name, ["birdc", "show", "protocols"], capture=True, timeout=15)
    assert birdc.returncode != 0
    annotations = cluster.get("Node", None, w2.name)[0]["metadata"]["annotations"]
    assert annotations["projectcalico.org/IPv4VXLANTunnelAddr"] == str(w2.tunnel_ip)
    assert annotations["projectcalico.org/IPv4Address"] == f"{w2.underlay_ip}/24"

    # ---- pods: same wiring, MTU 1450; cross-node traffic is VXLAN on the underlay
    ips = deploy(cluster, NS)
    _assert_pods_wired_like_calico(cluster, ips, mtu=1450)

    def traffic() -> None:
        http(cluster, NS, "far", ips["web"])

    captured = capture_during(cluster, w1.name, "udp port 4789", 1, traffic)
    # The outer packet: node to node on UDP 4789, VNI 4096; inside it, the pods' own TCP
    # (the first packet seen may go either way).
    u1, u2 = (re.escape(str(n.underlay_ip)) for n in (w1, w2))
    outer = rf"IP ({u2}\.\d+ > {u1}|{u1}\.\d+ > {u2})\.4789: VXLAN, flags \[I\] \(0x08\), vni 4096"
    assert re.search(outer, captured), captured
    far, web = re.escape(ips["far"]), re.escape(ips["web"])
    assert re.search(rf"IP ({far}\.\d+ > {web}\.8080|{web}\.8080 > {far}\.\d+): ", captured), \
        captured
    _assert_default_deny_blocks(cluster, ips)

    # ---- a restarted daemon builds over the running nodes without error or duplicates
    Datapath(topo).create()
    assert node_out(cluster, w1.name, "bridge", "fdb", "show", "dev", "vxlan.calico").count(
        "self permanent") == 2
    status = json.loads(json.dumps(Calico(topo).status()))
    assert "not used" in status["bgp"]
