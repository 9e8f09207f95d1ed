"""The NetworkPolicy enforcer on real namespaces: real TCP and UDP sockets, allowed and denied.

A ``knlt``-prefixed two-worker cluster is wired by :class:`clusters.local.datapath.Datapath`
(kindnet ptp, so even same-node traffic crosses the node's forward hook)::

    worker   lab/client (app=client)   lab/same (app=server)
    worker2  lab/far (app=server, port "http" = 8080)   other/stranger (app=client)

Every pod serves TCP 8080 and 9090 (answering its name) and UDP 5353 (echoing its name).
Policies, pods and namespaces are handed to :meth:`PolicyEnforcer.sync` as API objects,
the way the daemon does. Everything is removed afterwards by the cluster's tag.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from sockets import tcp_answer

from clusters.errors import CommandError
from clusters.local import cleanup
from clusters.local.datapath import IPAM, Datapath
from clusters.local.netns import socket_in
from clusters.local.netpol import TABLE, PolicyEnforcer
from clusters.local.netpol import enforcer as enforcer_module
from clusters.local.netpol.nftables import NodeScript
from clusters.local.topology import host_routes, plan
from clusters.proc import run

pytestmark = pytest.mark.root

TCP_PORTS = (8080, 9090)
UDP_PORT = 5353
DENIED = 0.5  # seconds a denied probe waits; allowed ones answer at once
RESOLV = "nameserver 10.96.0.10\n"
HOSTS = "127.0.0.1\tlocalhost\n"


@dataclass
class Pod:
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    ip: str = ""
    netns: str = ""
    named: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def obj(self) -> dict[str, Any]:
        ports = [{"name": name, "containerPort": port, "protocol": "TCP"}
                 for name, port in self.named.items()]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": self.namespace, "name": self.name,
                             "labels": dict(self.labels)},
                "spec": {"nodeName": self.node, "containers": [{"name": "c", "ports": ports}]},
                "status": {"podIP": self.ip}}


class Servers:
    """TCP 8080/9090 and UDP 5353 in each pod, served by one selector thread."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def add(self, pod: Pod) -> None:
        for port in TCP_PORTS:
            s = socket_in(pod.netns)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(64)
            s.setblocking(False)
            self.socks.append(s)
            self.sel.register(s, selectors.EVENT_READ, ("tcp", pod.name))
        u = socket_in(pod.netns, socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", UDP_PORT))
        u.setblocking(False)
        self.socks.append(u)
        self.sel.register(u, selectors.EVENT_READ, ("udp", pod.name))

    def _serve(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                kind, name = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if kind == "tcp":
                        conn, _peer = sock.accept()
                        with conn:
                            conn.setblocking(True)
                            conn.sendall(name.encode())
                    else:
                        data, peer = sock.recvfrom(512)
                        sock.sendto(name.encode() + b":" + data, peer)
                except OSError:
                    continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        for s in self.socks:
            s.close()
        self.sel.close()


def tcp(src: str | None, dst: Pod, port: int) -> str:
    """The server's answer (its pod name), 'refused' or 'timeout'."""
    return tcp_answer(src, dst.ip, port, DENIED, read_timeout=5)


def udp(src: str | None, dst: Pod) -> str:
    """'<server>:ping' when the datagram went there and the reply came back, else 'timeout'."""
    s = socket_in(src, socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(DENIED)
    try:
        s.sendto(b"ping", (dst.ip, UDP_PORT))
        return s.recv(64).decode()
    except TimeoutError:
        return "timeout"
    finally:
        s.close()


@dataclass
class Lab:
    dp: Datapath
    enforcer: PolicyEnforcer
    pods: dict[str, Pod]
    namespaces: dict[str, dict[str, str]]

    def __getitem__(self, name: str) -> Pod:
        return self.pods[name]

    def sync(self, *policies: dict[str, Any]) -> enforcer_module.PolicySyncStats:
        ns_objs = [{"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": n, "labels": {**labels,
                                                       "kubernetes.io/metadata.name": n}}}
                   for n, labels in self.namespaces.items()]
        return self.enforcer.sync(list(policies), [p.obj() for p in self.pods.values()], ns_objs)

    def tables(self, node: str) -> str:
        netns = self.dp.topo.node(node).netns
        return run(["ip", "netns", "exec", netns, "nft", "list", "tables"]).stdout


def netpol(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": namespace, "name": name}, "spec": spec}


@pytest.fixture
def lab(cluster_name: str) -> Iterator[Lab]:
    topo = plan(cluster_name, 2, host_routes())
    servers = Servers()
    enforcer = PolicyEnforcer(topo)
    try:
        dp = Datapath(topo)
        dp.create()
        ipam = IPAM(topo)
        w1, w2 = (n.name for n in topo.workers)
        pods = [Pod("lab", "client", w1, {"app": "client"}),
                Pod("lab", "same", w1, {"app": "server"}),
                Pod("lab", "far", w2, {"app": "server"}, named={"http": 8080}),
                Pod("other", "stranger", w2, {"app": "client"})]
        for p in pods:
            ip = ipam.allocate(p.node, p.key)
            p.ip, p.netns = str(ip), dp.add_pod(p.node, p.key, ip, p.name, RESOLV, HOSTS).netns
            servers.add(p)
        servers.thread.start()
        yield Lab(dp, enforcer, {p.name: p for p in pods}, {"lab": {}, "other": {}})
    finally:
        servers.close()
        enforcer.clear()
        cleanup.remove_leftovers(topo.cluster)
        assert cleanup.find_leftovers(topo.cluster).empty


def test_ingress_is_enforced_at_the_destination_same_node_and_cross_node(lab: Lab) -> None:
    client, same, far, stranger = lab["client"], lab["same"], lab["far"], lab["stranger"]
    lab.sync()
    assert tcp(stranger.netns, same, 8080) == "same"  # open before any policy

    lab.sync(netpol("lab", "servers-from-clients", {
        "podSelector": {"matchLabels": {"app": "server"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": 8080}, {"port": UDP_PORT, "protocol": "UDP"}]}]}))
    # allowed: same node and cross node, TCP and UDP (the UDP reply comes back)
    assert tcp(client.netns, same, 8080) == "same"
    assert tcp(client.netns, far, 8080) == "far"
    assert udp(client.netns, far) == "far:ping"
    assert udp(client.netns, same) == "same:ping"
    # denied: a port no rule opens, and a peer in another namespace (same node and cross)
    assert tcp(client.netns, same, 9090) == "timeout"
    assert tcp(stranger.netns, far, 8080) == "timeout"
    assert tcp(stranger.netns, same, 8080) == "timeout"
    assert udp(stranger.netns, far) == "timeout"
    # the host is not a pod: no podSelector admits it
    assert tcp(None, far, 8080) == "timeout"
    # pods that are not selected stay open
    assert tcp(stranger.netns, client, 9090) == "client"


def test_egress_is_enforced_at_the_source_and_replies_pass(lab: Lab) -> None:
    client, same, far, stranger = lab["client"], lab["same"], lab["far"], lab["stranger"]
    stats = lab.sync(netpol("lab", "client-out", {
        "podSelector": {"matchLabels": {"app": "client"}},
        "policyTypes": ["Ingress", "Egress"],  # ingress: none allowed
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "server"}}}],
                    "ports": [{"port": "http"}, {"port": UDP_PORT, "protocol": "UDP"}]}]}))
    assert stats.nodes_written == 3 and stats.rules > 0
    # the named port: only "far" declares http (8080), "same" does not
    assert tcp(client.netns, far, 8080) == "far"
    assert tcp(client.netns, same, 8080) == "timeout"
    assert tcp(client.netns, far, 9090) == "timeout"
    assert udp(client.netns, same) == "same:ping"
    assert udp(client.netns, far) == "far:ping"
    # client is isolated for ingress with no rule: the replies above still came back
    # (established), but nobody may open a connection to it
    assert tcp(stranger.netns, client, 8080) == "timeout"
    assert tcp(same.netns, client, 8080) == "timeout"
    # the stranger (another namespace) is not selected
    assert tcp(stranger.netns, far, 9090) == "far"

    listing = run(["ip", "netns", "exec", lab.dp.topo.node(client.node).netns,
                   "nft", "list", "table", "inet", TABLE]).stdout
    assert "chain egress-lab/client" in listing and 'comment "lab/client-out egress[0]"' in listing
    assert "10.244." in listing and "tcp . 8080" in listing
    assert lab.enforcer.applied(client.node) is not None


def test_label_changes_take_effect_on_the_next_sync_and_unchanged_nodes_are_skipped(
        lab: Lab) -> None:
    client, far, stranger = lab["client"], lab["far"], lab["stranger"]
    policy = netpol("lab", "far-from-blue-clients", {
        "podSelector": {"matchLabels": {"app": "server"}},
        "ingress": [{"from": [
            {"podSelector": {"matchLabels": {"app": "client"}}},
            {"namespaceSelector": {"matchLabels": {"team": "blue"}},
             "podSelector": {"matchLabels": {"app": "client"}}}]}]})
    lab.sync(policy)
    assert tcp(stranger.netns, far, 8080) == "timeout"
    assert tcp(client.netns, far, 9090) == "far"

    again = lab.sync(policy)
    assert (again.nodes_written, again.nodes_skipped) == (0, 3)

    lab.namespaces["other"]["team"] = "blue"  # namespace label
    lab.sync(policy)
    assert tcp(stranger.netns, far, 8080) == "far"

    client.labels["app"] = "retired"  # pod label
    stats = lab.sync(policy)
    assert stats.nodes_written >= 1
    assert tcp(client.netns, far, 9090) == "timeout"
    assert tcp(stranger.netns, far, 8080) == "far"


def test_clear_removes_the_table_from_every_node(lab: Lab) -> None:
    far, stranger = lab["far"], lab["stranger"]
    lab.sync(netpol("lab", "deny", {"podSelector": {}}))
    assert tcp(stranger.netns, far, 8080) == "timeout"
    for node in lab.dp.topo.nodes:
        assert f"table inet {TABLE}" in lab.tables(node.name)

    lab.enforcer.clear()
    for node in lab.dp.topo.nodes:
        assert TABLE not in lab.tables(node.name)
        assert lab.enforcer.applied(node.name) is None
    assert tcp(stranger.netns, far, 8080) == "far"
    lab.enforcer.clear()  # nothing there: still fine


def test_a_refused_script_names_the_node_and_line_and_keeps_the_old_table(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    far, stranger = lab["far"], lab["stranger"]
    deny = netpol("lab", "deny", {"podSelector": {}})
    lab.sync(deny)
    bad_node = far.node
    real = enforcer_module.render_nodes

    def broken(*args: Any, **kwargs: Any) -> dict[str, NodeScript]:
        scripts = real(*args, **kwargs)
        good = scripts[bad_node]
        lines = good.text.splitlines()
        lines.insert(4, "\tset broken { type ipv4_addr; elements = { 10.0.0.0/33 } }")
        scripts[bad_node] = NodeScript(bad_node, "\n".join(lines) + "\n", good.rules)
        return scripts

    monkeypatch.setattr(enforcer_module, "render_nodes", broken)
    with pytest.raises(CommandError) as caught:
        lab.sync()  # no policies: every node changes, one refuses
    err = caught.value
    assert f"node {bad_node}" in err.reason
    assert "nft input line 5: set broken" in err.reason
    assert "nft" in err.command and err.returncode not in (0, None)
    # nft applies a script all or nothing: the failing node keeps its old (deny) table...
    assert tcp(stranger.netns, far, 8080) == "timeout"
    assert lab.enforcer.applied(bad_node) is None
    # ...the other nodes got theirs
    assert tcp(far.netns, lab["same"], 8080) == "same"

    monkeypatch.setattr(enforcer_module, "render_nodes", real)
    stats = lab.sync()  # the failed node is written again, the others are skipped
    assert (stats.nodes_written, stats.nodes_skipped) == (1, 2)
    assert tcp(stranger.netns, far, 8080) == "far"


def test_two_hundred_policies_over_fifty_pods_load_on_one_node(lab: Lab) -> None:
    """Large input loads as one transaction (the time is printed, not asserted)."""
    node = lab["client"].node
    base = lab.dp.topo.node(node).pod_cidr.network_address
    pods = [Pod(f"bulk{i % 5}", f"p{i}", node, {"app": f"a{i % 10}", "tier": f"t{i % 3}"},
                ip=str(base + 100 + i), named={"http": 8000 + i % 7}) for i in range(50)]
    policies = [netpol(f"bulk{i % 5}", f"pol{i}", {
        "podSelector": {"matchLabels": {"app": f"a{i % 10}"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": f"t{i % 3}"}}},
                              {"ipBlock": {"cidr": "172.16.0.0/12",
                                           "except": [f"172.16.{i}.0/24"]}}],
                     "ports": [{"port": 8000 + i, "endPort": 8010 + i}, {"port": "http"}]}],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"n": f"bulk{(i + 1) % 5}"}}}],
                    "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]}]})
        for i in range(200)]
    namespaces = [{"metadata": {"name": f"bulk{i}", "labels": {"n": f"bulk{i}"}}}
                  for i in range(5)]
    one = PolicyEnforcer(replace(lab.dp.topo, nodes=(lab.dp.topo.node(node),)))
    started = time.monotonic()
    stats = one.sync(policies, [p.obj() for p in pods], namespaces)
    seconds = time.monotonic() - started
    print(f"\n200 policies over 50 pods on one node: {stats.rules} rules, {seconds:.3f} s")
    listing = run(["ip", "netns", "exec", lab.dp.topo.node(node).netns,
                   "nft", "list", "table", "inet", TABLE]).stdout
    assert listing.count("chain ingress-bulk") == 50 and listing.count("chain egress-bulk") == 50
    assert stats.nodes_written == 1
