"""The proxier against real namespaces: a hand-built two-node topology with pods.

Layout (names prefixed ``knlt`` and unique per test run), like the local engine's::

    host: bridge knlt<6>br 172.31.250.1/24
      ├─ node n0 (172.31.250.2) ── pod c0 10.244.0.3 (client)
      └─ node n1 (172.31.250.3) ── pod p1 10.244.1.2 (TCP server :8080)

Each node routes the other's pod /24 via its address and the Service range via the other
node (un-NATed Service traffic must be routable for REJECT to happen in FORWARD).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from sockets import tcp_answer

from clusters.local.netns import entered, socket_in
from clusters.local.services.iptables import TOP_LEVEL, endpoint_chain_name, render
from clusters.local.services.proxier import Proxier
from clusters.local.topology import NodePlan, Topology
from clusters.proc import run

pytestmark = pytest.mark.root

UNDERLAY = IPv4Network("172.31.250.0/24")


@dataclass
class Lab:
    topo: Topology
    client: str  # netns of pod c0
    server: str  # netns of pod p1
    peers: list[str] = field(default_factory=list)


def _ip(ns: str, *args: str) -> None:
    run(["ip", "-n", ns, *args])


def _sysctl(ns: str) -> None:
    with entered(ns):
        for key in ("net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter",
                    "net/ipv4/conf/default/rp_filter"):
            with open(f"/proc/sys/{key}", "w") as f:
                f.write("1" if key.endswith("forward") else "0")


def _pod(node_ns: str, pod_ns: str, ip: str, gateway: str, veth: str) -> None:
    run(["ip", "netns", "add", pod_ns])
    _ip(node_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
    _ip(node_ns, "addr", "add", f"{gateway}/32", "dev", veth)
    _ip(node_ns, "link", "set", veth, "up")
    _ip(node_ns, "route", "add", f"{ip}/32", "dev", veth, "scope", "host")
    _ip(pod_ns, "link", "set", "lo", "up")
    _ip(pod_ns, "addr", "add", f"{ip}/24", "dev", "eth0", "noprefixroute")
    _ip(pod_ns, "link", "set", "eth0", "up")
    _ip(pod_ns, "route", "add", gateway, "dev", "eth0", "scope", "link", "src", ip)
    _ip(pod_ns, "route", "add", "default", "via", gateway, "dev", "eth0", "src", ip)


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"knlt{uuid.uuid4().hex[:6]}"
    names = [f"{tag}-n0", f"{tag}-n1", f"{tag}-c0", f"{tag}-p1"]
    nodes = tuple(
        NodePlan(name=f"{tag}-node{i}", role="worker", index=i, netns=names[i],
                 underlay_ip=UNDERLAY.network_address + 2 + i,
                 pod_cidr=IPv4Network(f"10.244.{i}.0/24"),
                 gateway=IPv4Address(f"10.244.{i}.1"))
        for i in range(2))
    topo = Topology(cluster=tag, tag=f"kube-netlab:{tag}", nodes=nodes, underlay=UNDERLAY,
                    host_ip=UNDERLAY.network_address + 1, bridge=f"{tag}br")
    try:
        run(["ip", "link", "add", topo.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{topo.host_ip}/24", "dev", topo.bridge])
        run(["ip", "link", "set", topo.bridge, "up"])
        for n in nodes:
            run(["ip", "netns", "add", n.netns])
            _sysctl(n.netns)
            _ip(n.netns, "link", "set", "lo", "up")
            host_end = f"{tag}v{n.index}"
            run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
                 "netns", n.netns])
            run(["ip", "link", "set", host_end, "master", topo.bridge, "up"])
        for n, other in ((nodes[0], nodes[1]), (nodes[1], nodes[0])):
            _ip(n.netns, "addr", "add", f"{n.underlay_ip}/24", "dev", "eth0")
            _ip(n.netns, "link", "set", "eth0", "up")
            _ip(n.netns, "route", "add", str(other.pod_cidr), "via", str(other.underlay_ip))
            _ip(n.netns, "route", "add", "10.96.0.0/16", "via", str(other.underlay_ip))
        _pod(names[0], names[2], "10.244.0.3", "10.244.0.1", "vethc0")
        _pod(names[1], names[3], "10.244.1.2", "10.244.1.1", "vethp1")
        yield Lab(topo, client=names[2], server=names[3])
    finally:
        for ns in reversed(names):
            run(["ip", "netns", "del", ns], check=False)
        run(["ip", "link", "del", topo.bridge], check=False)


@pytest.fixture
def server(lab: Lab) -> Iterator[Lab]:
    """A TCP server on p1:8080 that answers "hello" and records who connected."""
    sock = socket_in(lab.server)
    sock.bind(("0.0.0.0", 8080))
    sock.listen(16)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            lab.peers.append(peer[0])
            conn.sendall(b"hello")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield lab
    finally:
        stop.set()
        sock.close()
        thread.join(timeout=2)


def connect(netns: str | None, ip: str, port: int, timeout: float = 1.0) -> str:
    """'hello', 'refused' or 'timeout'."""
    return tcp_answer(netns, ip, port, timeout)


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP",
                               "targetPort": 8080}])
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, **spec}}


def endpoints(name: str, node: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.2"], "nodeName": node,
                           "conditions": {"ready": True}}]}


def save(netns: str, table: str = "nat") -> str:
    return run(["ip", "netns", "exec", netns, "iptables-save", "-t", table]).stdout


def test_services_through_real_rules(server: Lab) -> None:
    lab = server
    n0, n1 = lab.topo.nodes
    services = [
        service("web", "10.96.0.50", type="NodePort",
                ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
        service("empty", "10.96.0.51"),
        service("local", "10.96.0.52", internalTrafficPolicy="Local"),
    ]
    slices = [endpoints("web", n1.name), endpoints("local", n1.name)]
    proxier = Proxier(lab.topo)
    try:
        stats = proxier.sync(services, slices)
        assert stats.full and all(not n.skipped for n in stats.nodes)

        # ClusterIP: DNAT across nodes, client source preserved
        assert connect(lab.client, "10.96.0.50", 80) == "hello"
        assert lab.peers[-1] == "10.244.0.3"
        # hairpin: the server reaches itself through its Service, seen from the gateway
        assert connect(lab.server, "10.96.0.50", 80) == "hello"
        assert lab.peers[-1] == "10.244.1.1"
        # no endpoints: REJECT, the client sees connection refused
        assert connect(lab.client, "10.96.0.51", 80) == "refused"
        # internalTrafficPolicy Local with the only endpoint on the other node: dropped
        assert connect(lab.client, "10.96.0.52", 80, timeout=1.0) == "timeout"
        # NodePort on n0 answers a client in n1, masqueraded to n0's address
        assert connect(n1.netns, str(n0.underlay_ip), 30080) == "hello"
        assert lab.peers[-1] == str(n0.underlay_ip)

        # a partial sync rewrites only what changed; the old endpoint chains go away
        services[1] = service("empty", "10.96.0.51")
        slices.append(endpoints("empty", n1.name))
        stats = proxier.sync(services, slices)
        assert not stats.full
        top = len(TOP_LEVEL["filter"]) + len(TOP_LEVEL["nat"])
        assert all(n.chains == top + 2 for n in stats.nodes), stats  # + empty's SVC and SEP
        assert connect(lab.client, "10.96.0.51", 80) == "hello"
        slices.pop(0)  # web loses its endpoint
        proxier.sync(services, slices)
        assert connect(lab.client, "10.96.0.50", 80) == "refused"
        seps = [line[1:].split()[0] for line in save(n0.netns).splitlines()
                if line.startswith(":KUBE-SEP-")]
        assert seps == [endpoint_chain_name("default/empty:http", "tcp", "10.244.1.2:8080")]
        unchanged = proxier.sync(services, slices)
        assert all(n.skipped for n in unchanged.nodes)

        # a new proxier (a restarted daemon) does a full sync without duplicating jumps
        again = Proxier(lab.topo)
        assert again.sync(services, slices).full
        for table in ("nat", "filter"):
            text = save(n0.netns, table)
            jumps = [line for line in text.splitlines()
                     if line.startswith(("-A PREROUTING", "-A OUTPUT", "-A POSTROUTING",
                                         "-A INPUT", "-A FORWARD"))]
            assert len(jumps) == len(set(jumps)) and jumps
    finally:
        proxier.clear()
    for ns in (n0.netns, n1.netns):
        for table in ("nat", "filter"):
            assert "KUBE-" not in save(ns, table)


def test_rendered_rules_are_valid_iptables_input(lab: Lab) -> None:
    status = {"loadBalancer": {"ingress": [{"ip": "172.31.250.200"}]}}
    services = [
        service("a", "10.96.1.1", type="LoadBalancer", externalTrafficPolicy="Local",
                healthCheckNodePort=32000, sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}},
                loadBalancerSourceRanges=["172.31.0.0/16"],
                ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30001},
                       {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30002}]),
        service("b", "10.96.1.2", internalTrafficPolicy="Local"),
        service("c", "10.96.1.3", externalIPs=["192.0.2.9"]),
    ]
    services[0]["status"] = status
    slices = [endpoints("a", lab.topo.nodes[0].name), endpoints("b", "elsewhere"),
              endpoints("c", "x")]
    text = render(services, slices, node_name=lab.topo.nodes[0].name,
                  node_ip=str(lab.topo.nodes[0].underlay_ip), cluster_cidr="10.244.0.0/16").text()
    res = run(["ip", "netns", "exec", lab.topo.nodes[0].netns, "iptables-restore", "--test",
               "--noflush"], input=text, check=False)
    assert res.ok, res.stderr + "\n" + text


def test_restore_errors_name_the_line(lab: Lab) -> None:
    proxier = Proxier(lab.topo)
    bad = service("bad", "10.96.2.2")
    bad["spec"]["ports"][0]["port"] = 70000  # not a port: iptables refuses the rule
    try:
        with pytest.raises(Exception, match="input line") as err:
            proxier.sync([bad], [endpoints("bad", "n")])
        assert "iptables-restore" in str(err.value) and "70000" in str(err.value)
    finally:
        proxier.clear()


def test_load_balancer_from_the_host(server: Lab) -> None:
    lab = server
    n0, n1 = lab.topo.nodes
    lb_ip = "172.31.250.200"
    lb = service("lb", "10.96.3.3", type="LoadBalancer", externalTrafficPolicy="Cluster",
                 ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30090}])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    slices = [endpoints("lb", n1.name)]
    proxier = Proxier(lab.topo)

    def route() -> str:
        return run(["ip", "-4", "route", "show", f"{lb_ip}/32"]).stdout

    try:
        stats = proxier.sync([lb], slices)
        announcer = lab.topo.node(stats.lb_routes[lb_ip])
        assert f"via {announcer.underlay_ip} dev {lab.topo.bridge}" in route()
        assert connect(None, lb_ip, 80) == "hello"
        # Cluster policy: masqueraded by the announcing node (or the pod's own node)
        assert lab.peers[-1] in (str(n0.underlay_ip), str(n1.underlay_ip), "10.244.1.1")

        # Local policy: announced by the node with the endpoint, client address preserved
        lb["spec"]["externalTrafficPolicy"] = "Local"
        stats = proxier.sync([lb], slices)
        assert stats.lb_routes == {lb_ip: n1.name}
        assert f"via {n1.underlay_ip} dev" in route()
        assert connect(None, lb_ip, 80) == "hello"
        assert lab.peers[-1] == str(lab.topo.host_ip)

        proxier.sync([], [])
        assert route() == ""
    finally:
        proxier.clear()
    assert route() == ""
