"""The kindnet-style datapath on real namespaces: wiring, reachability, exec, cleanup.

Every test uses its own ``knlt``-prefixed cluster and removes it by tag afterwards, also
when it fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from clusters.local import cleanup
from clusters.local.datapath import IPAM, Datapath
from clusters.local.netns import socket_in
from clusters.local.topology import ETC_NETNS, Topology, host_routes, plan, run_dir

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds network namespaces: needs root"),
]

RESOLV = "search default.svc.cluster.local svc.cluster.local cluster.local\n" \
         "nameserver 10.96.0.10\noptions ndots:5\n"
HOSTS = "127.0.0.1\tlocalhost\n"


def _name() -> str:
    return f"knlt{secrets.token_hex(4)}"


def _plan(name: str, workers: int = 2) -> Topology:
    # The host's routes include the underlays of clusters that exist right now.
    return plan(name, workers, host_routes())


@pytest.fixture
def topo() -> Iterator[Topology]:
    t = _plan(_name())
    yield t
    cleanup.remove_leftovers(t.cluster)


@pytest.fixture
def datapath(topo: Topology) -> Datapath:
    dp = Datapath(topo)
    dp.create()
    return dp


def _add(dp: Datapath, ipam: IPAM, node: str, key: str) -> IPv4Address:
    ip = ipam.allocate(node, key)
    dp.add_pod(node, key, ip, key.split("/")[1], RESOLV, HOSTS)
    return ip


def _tcp(server_ns: str, server_ip: IPv4Address, client_ns: str | None) -> str:
    """Connect client_ns -> server_ip:port in server_ns; return the address the server saw."""
    srv = socket_in(server_ns)
    cli = socket_in(client_ns)
    try:
        srv.bind((str(server_ip), 0))
        srv.listen(1)
        srv.settimeout(5)
        cli.settimeout(5)
        cli.connect((str(server_ip), srv.getsockname()[1]))
        conn, peer = srv.accept()
        with conn:
            cli.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
            assert cli.recv(4) == b"pong"
        return str(peer[0])
    finally:
        srv.close()
        cli.close()


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10).stdout


def _assert_gone(dp: Datapath) -> None:
    left = cleanup.find_leftovers(dp.topo.cluster)
    assert left.netns == () and left.links == () and left.mounts == ()
    assert [f for f in left.files if f != str(run_dir(dp.topo.cluster))] == []


def test_pods_on_two_workers_talk_by_pod_ip_without_nat(datapath: Datapath) -> None:
    topo = datapath.topo
    ipam = IPAM(topo)
    w1, w2 = (n.name for n in topo.workers)
    ip_a = _add(datapath, ipam, w1, "default/alpha")
    ip_b = _add(datapath, ipam, w2, "default/bravo")
    ip_c = _add(datapath, ipam, w1, "other/charlie")
    ns_a, ns_b, ns_c = (datapath.pod_netns(k)
                        for k in ("default/alpha", "default/bravo", "other/charlie"))

    # Cross-node, both directions, and the server sees the client's own pod IP.
    assert _tcp(ns_a, ip_a, ns_b) == str(ip_b)
    assert _tcp(ns_b, ip_b, ns_a) == str(ip_a)
    # Same node goes through the node's gateway and still keeps the source.
    assert _tcp(ns_a, ip_a, ns_c) == str(ip_c)
    # The node itself reaches its pods (kubelet probes), and the host reaches node IPs.
    node_w2 = topo.node(w2)
    assert _tcp(ns_b, ip_b, node_w2.netns) in (str(node_w2.gateway), str(node_w2.underlay_ip))
    for n in topo.nodes:
        assert _tcp(n.netns, n.underlay_ip, None) == str(topo.host_ip)

    routes = _run(datapath.node_exec_argv(w1, ["ip", "route"]))
    veth = datapath.pods()["default/alpha"].host_veth
    assert f"{ip_a} dev {veth} scope host" in routes
    for other in topo.nodes:
        if other.name != w1:
            assert f"{other.pod_cidr} via {other.underlay_ip} dev eth0" in routes

    pod_routes = _run(datapath.exec_argv("default/alpha", ["ip", "route"]))
    gw = topo.node(w1).gateway
    assert f"default via {gw} dev eth0" in pod_routes
    assert f"{gw} dev eth0 scope link" in pod_routes

    assert _run(datapath.exec_argv("default/alpha", ["hostname"])).strip() == "alpha"
    assert _run(datapath.node_exec_argv(w2, ["hostname"])).strip() == w2
    assert _run(datapath.exec_argv("other/charlie", ["cat", "/etc/resolv.conf"])) == RESOLV
    assert _run(datapath.exec_argv("other/charlie", ["cat", "/etc/hosts"])) == HOSTS

    # Every host link of the cluster carries its tag; the pod's eth0 too.
    links = cleanup.host_links()
    assert links[topo.bridge] == topo.tag
    assert _run(["ip", "-n", ns_a, "-o", "link", "show", "eth0"]).find(f"alias {topo.tag}") > 0

    datapath.destroy()
    _assert_gone(datapath)
    assert not any(p.name.startswith(f"knl-{topo.cluster}-") for p in ETC_NETNS.glob("*"))
    assert cleanup.remove_leftovers(topo.cluster) == [f"file {run_dir(topo.cluster)}"]
    assert topo.cluster not in cleanup.all_local_clusters()


def test_remove_pod_unwires_it_and_is_idempotent(datapath: Datapath) -> None:
    topo = datapath.topo
    ipam = IPAM(topo)
    w1 = topo.workers[0]
    ip = _add(datapath, ipam, w1.name, "default/gone")
    ns, uts = datapath.pod_netns("default/gone"), datapath.uts_path("default/gone")
    assert datapath.pod_exists("default/gone") and os.path.ismount(uts)

    datapath.remove_pod("default/gone")
    datapath.remove_pod("default/gone")
    assert not datapath.pod_exists("default/gone")
    assert not uts.exists() and not (ETC_NETNS / ns).exists()
    assert str(ip) not in _run(["ip", "-n", w1.netns, "route"])
    assert "veth" not in _run(["ip", "-n", w1.netns, "-o", "link"])


def test_create_and_add_pod_again_converge(datapath: Datapath) -> None:
    topo = datapath.topo
    ipam = IPAM(topo)
    w1, w2 = topo.workers
    ip_a = _add(datapath, ipam, w1.name, "default/a")
    ip_b = _add(datapath, ipam, w2.name, "default/b")
    # A restarted daemon builds again over what is there and re-wires its pods.
    again = Datapath(topo)
    again.create()
    again.add_pod(w1.name, "default/a", ip_a, "a", RESOLV, HOSTS)
    assert _tcp(again.pod_netns("default/a"), ip_a, again.pod_netns("default/b")) == str(ip_b)
    assert len(cleanup.find_leftovers(topo.cluster).links) == 1 + len(topo.nodes)


def test_remove_leftovers_after_a_crash(topo: Topology) -> None:
    dp = Datapath(topo)
    dp.create()
    ipam = IPAM(topo)
    for i, node in enumerate(topo.nodes[1:]):
        _add(dp, ipam, node.name, f"default/p{i}")
    del dp  # the daemon died: no Python object, no state

    left = cleanup.find_leftovers(topo.cluster)
    assert len(left.netns) == len(topo.nodes) + 2
    assert topo.cluster in cleanup.all_local_clusters()
    removed = cleanup.remove_leftovers(topo.cluster)
    assert f"link {topo.bridge}" in removed and f"netns {topo.nodes[0].netns}" in removed
    assert cleanup.find_leftovers(topo.cluster).empty
    assert topo.cluster not in cleanup.all_local_clusters()
    assert cleanup.remove_leftovers(topo.cluster) == []


def test_cleanup_touches_only_its_own_cluster() -> None:
    base = _name()
    mine, neighbour = _plan(base, workers=0), None
    stranger = f"{base}x"  # an untagged link that merely looks like ours
    try:
        Datapath(mine).create()
        neighbour = _plan(f"{base}-b", workers=0)
        Datapath(neighbour).create()
        subprocess.run(["ip", "link", "add", stranger, "type", "veth", "peer", "name",
                        f"{stranger}p"], check=True)
        cleanup.remove_leftovers(base)
        assert cleanup.find_leftovers(base).empty
        left = cleanup.find_leftovers(neighbour.cluster)
        assert left.netns == (neighbour.nodes[0].netns,)
        assert neighbour.bridge in left.links
        assert stranger in cleanup.host_links()
        # The neighbour still works end to end.
        node = neighbour.nodes[0]
        assert _tcp(node.netns, node.underlay_ip, None) == str(neighbour.host_ip)
    finally:
        subprocess.run(["ip", "link", "del", stranger], check=False)
        cleanup.remove_leftovers(base)
        if neighbour is not None:
            cleanup.remove_leftovers(neighbour.cluster)


def test_uts_file_is_a_real_namespace(datapath: Datapath) -> None:
    ipam = IPAM(datapath.topo)
    _add(datapath, ipam, datapath.topo.workers[0].name, "default/named")
    uts = Path(datapath.uts_path("default/named"))
    assert _run(["nsenter", f"--uts={uts}", "hostname"]).strip() == "named"
    assert _run(["hostname"]).strip() != "named"


def test_long_pod_names_get_a_kubelet_style_hostname(datapath: Datapath) -> None:
    ipam = IPAM(datapath.topo)
    name = "x" * 62 + "-tail-beyond-sixty-three"
    _add(datapath, ipam, datapath.topo.workers[0].name, f"default/{name}")
    assert _run(datapath.exec_argv(f"default/{name}", ["hostname"])).strip() == "x" * 62
