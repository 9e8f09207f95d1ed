"""The datapath: turns a :class:`~clusters.local.topology.Topology` into real namespaces,
links and routes, with the cluster's CNI plugin deciding how pods are wired.

Layout (one cluster)::

    host ns:  knlbr-XXXXXX (bridge, host_ip/24) ── knl<12hex> ──┐   one veth per node
    node ns:  eth0 (underlay_ip/24)  <────────────────────────────┘
              <CNI's veth> ── pod ns: eth0 (pod_ip, the CNI's routes)

What is common to every mode lives here: the underlay (kind's Docker network), the node
namespaces and their sysctls, the pod namespaces with their hostname and /etc files, the
host's routes. What differs (veth names, addresses, bridges, overlays, BGP) is the plugin's
(:mod:`clusters.local.cni`): kindnet's routed veths, Flannel's cni0 bridge and VXLAN,
Calico's cali* veths and BIRD.

Speed: a 3-node cluster with a dozen pods must come up in about a second on 2 cores, so
commands go through ``ip -batch -`` (one process per namespace, not per command), per-node
sysctls are written from this process after ``setns`` (no ``ip netns exec sysctl``), and a
pod's network and UTS namespaces are both created by a single ``unshare``.

Everything made here is marked for :mod:`clusters.local.cleanup`: links carry
``alias kube-netlab:<cluster>``, namespaces are named ``knl-<cluster>-...``, files live
under ``/run/kube-netlab/<cluster>/`` and ``/etc/netns/knl-<cluster>-*``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from clusters.errors import ClusterError
from clusters.local import cleanup, hostfirewall
from clusters.local.cni import CniPlugin, PodWiring, plugin_for
from clusters.local.netns import entered, netns_path
from clusters.local.topology import (
    ETC_NETNS,
    NodePlan,
    Topology,
    host_veth_name,
    pod_netns_name,
    run_dir,
)
from clusters.proc import run

#: Sysctls of every node namespace. Forwarding makes the node a router for its pods;
#: rp_filter off because kube-proxy DNAT and asymmetric paths (NodePort, hostNetwork
#: clients) would otherwise be dropped by the reverse-path check.
NODE_SYSCTLS: Mapping[str, str] = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",
}


@dataclass(frozen=True)
class PodNet:
    """A pod's network as wired: its namespace, address, node and the node-side veth."""

    key: str
    netns: str
    ip: IPv4Address
    node: str
    host_veth: str


def _write_sysctls(netns: str, values: Mapping[str, str]) -> None:
    # /proc/sys/net shows the namespace of the *thread* that opens the file.
    with entered(netns):
        for key, value in values.items():
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)


def _ensure_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o644)


class Datapath:
    """Builds and removes one cluster's nodes and pods. Methods are idempotent."""

    #: How long a CNI's agents may take to connect the nodes (BGP sessions and routes).
    READY_TIMEOUT = 20.0

    def __init__(self, topo: Topology, cni: CniPlugin | None = None) -> None:
        self.topo = topo
        self.cni = cni or plugin_for(topo)
        self._lock = threading.Lock()
        self._pods: dict[str, PodNet] = {}

    # ---- names --------------------------------------------------------------------------------
    def pod_netns(self, key: str) -> str:
        return pod_netns_name(self.topo.cluster, key)

    def uts_path(self, key: str) -> Path:
        """Persistent UTS namespace of the pod (its hostname is the pod's)."""
        return run_dir(self.topo.cluster) / cleanup.UTS_SUBDIR / self.pod_netns(key)

    def node_uts_path(self, node: str) -> Path:
        return run_dir(self.topo.cluster) / cleanup.UTS_SUBDIR / self.topo.node(node).netns

    def exec_argv(self, key: str, argv: Sequence[str]) -> list[str]:
        """Run a host tool as if in the pod: its network and UTS namespaces, and its
        resolv.conf and hosts (``ip netns exec`` bind-mounts /etc/netns/<ns>/* over /etc)."""
        return ["ip", "netns", "exec", self.pod_netns(key),
                "nsenter", f"--uts={self.uts_path(key)}", "--", *argv]

    def node_exec_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """Run a host tool in a node's network namespace, with the node's hostname.

        The CNI's folders (``/run/bird``...) are bind-mounted where the tools look for them;
        ``ip netns exec`` runs the command in a mount namespace of its own (with slave
        propagation), so those mounts are private to this one command.
        """
        plan = self.topo.node(node)
        prefix = ["ip", "netns", "exec", plan.netns,
                  "nsenter", f"--uts={self.node_uts_path(node)}", "--"]
        binds = self.cni.node_binds(plan)
        if not binds:
            return [*prefix, *argv]
        # The mount point may not exist on the host (/run/flannel): an empty folder is made.
        script = "; ".join(f'mkdir -p "${i * 2 + 2}"; mount --bind "${i * 2 + 1}" "${i * 2 + 2}"'
                           for i in range(len(binds)))
        paths = [str(p) for bind in binds for p in bind]
        return [*prefix, "sh", "-ec", f'{script}; shift {len(paths)}; exec "$@"', "node-shell",
                *paths, *argv]

    def pods(self) -> dict[str, PodNet]:
        with self._lock:
            return dict(self._pods)

    # ---- nodes -----------------------------------------------------------------------------
    def create(self) -> None:
        """Build (or complete) the bridge and every node. Safe to call again."""
        topo = self.topo
        links = cleanup.host_links()
        alias = links.get(topo.bridge)
        if alias is not None and alias != topo.tag:
            raise ClusterError(
                f"a link named {topo.bridge} already exists and is not cluster "
                f"{topo.cluster}'s (alias {alias!r}); remove it or pick another cluster name")
        existing = set(cleanup.list_netns())
        new = [n for n in topo.nodes if n.netns not in existing]
        # A host veth whose node namespace is gone is paired with a dead namespace.
        stale = [host_veth_name(topo.cluster, n.name) for n in new
                 if host_veth_name(topo.cluster, n.name) in links]
        cleanup.ip_batch([f"link del {v}" for v in stale] + [f"netns add {n.netns}" for n in new])
        for v in stale:
            links.pop(v)
        for n in topo.nodes:
            _write_sysctls(n.netns, {**NODE_SYSCTLS, **self.cni.node_sysctls(n)})
        cleanup.ip_batch(self._host_lines(links))
        for n in topo.nodes:
            cleanup.ip_batch(self._node_lines(n), n.netns)
            self.cni.node_finish(n)
        cleanup.ip_batch(self._host_route_lines())
        hostfirewall.allow_bridge(topo.bridge, topo.tag)
        for n in topo.nodes:
            self._ensure_uts(self.node_uts_path(n.name), n.name)
        for n in topo.nodes:
            for host_dir, _ in self.cni.node_binds(n):
                host_dir.mkdir(parents=True, exist_ok=True)
        self.cni.start()
        self.cni.wait_ready(self.READY_TIMEOUT)

    def _host_route_lines(self) -> list[str]:
        """Routes in the host for the cluster's ranges, all through the cluster's bridge.

        Each node's pod /24 goes via that node (the host reaches pods like a router on the
        underlay would). The whole pod range and the Service range are pinned to the bridge
        too, so traffic from the host, or forwarded by it, to a cluster address never follows
        the host's default route off this machine. The routes hang off the bridge and vanish
        with it; a per-cluster metric lets two clusters' routes coexist.
        """
        topo = self.topo
        metric = 4000 + int(topo.underlay.network_address.packed[2])
        dev = f"dev {topo.bridge} metric {metric}"
        lines = [f"route replace {n.pod_cidr} via {n.underlay_ip} {dev}" for n in topo.nodes]
        lines += [f"route replace {topo.pod_cidr} {dev}", f"route replace {topo.service_cidr} {dev}"]
        return lines

    def _host_lines(self, links: Mapping[str, str]) -> list[str]:
        topo, mtu = self.topo, self.topo.mtu
        lines = []
        if topo.bridge not in links:
            lines.append(f"link add {topo.bridge} mtu {mtu} type bridge")
        lines += [f"link set {topo.bridge} alias {topo.tag} up",
                  f"addr replace {topo.host_ip}/{topo.underlay.prefixlen} dev {topo.bridge}"]
        for n in topo.nodes:
            veth = host_veth_name(topo.cluster, n.name)
            if veth not in links:
                lines.append(f"link add {veth} mtu {mtu} type veth "
                             f"peer name eth0 netns {n.netns} mtu {mtu}")
            lines.append(f"link set {veth} master {topo.bridge} alias {topo.tag} up")
        return lines

    def _node_lines(self, node: NodePlan) -> list[str]:
        topo = self.topo
        lines = ["link set lo up",
                 f"link set eth0 alias {topo.tag} up",
                 f"addr replace {node.underlay_ip}/{topo.underlay.prefixlen} dev eth0",
                 # No default route: nothing a pod sends may leave this machine (there is no
                 # internet here, and a forwarding host must not carry pod traffic out). The
                 # Service range routes to the host so kube-proxy-style DNAT can apply later.
                 f"route replace {topo.service_cidr} via {topo.host_ip} dev eth0"]
        return lines + self.cni.node_lines(node)

    def _ensure_uts(self, path: Path, hostname: str) -> None:
        if path.exists() and os.path.ismount(path):
            return
        _ensure_file(path)
        run(["unshare", f"--uts={path}", "hostname", hostname])

    # ---- pods --------------------------------------------------------------------------------
    def add_pod(
        self, node: str, key: str, ip: IPv4Address | str, hostname: str,
        resolv_conf: str, hosts: str,
    ) -> PodNet:
        """Wire pod ``key`` (``namespace/name``) on ``node`` with address ``ip``.

        A pod that is already wired (a restarted daemon) is removed and wired afresh, so
        the result never depends on what an earlier run left behind. Like the kubelet, a
        hostname longer than 63 characters is cut to 63 (without a trailing '-' or '.').
        """
        plan = self.topo.node(node)
        addr = IPv4Address(str(ip))
        if addr not in pod_addresses(plan):
            raise ValueError(f"{addr} is not a pod address of node {node} ({plan.pod_cidr}, "
                             f"gateway {plan.gateway})")
        ns, uts, veth = self.pod_netns(key), self.uts_path(key), self.cni.pod_veth(key)
        if netns_path(ns).exists() or uts.exists():
            self.remove_pod(key)
        etc = ETC_NETNS / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(resolv_conf)
        (etc / "hosts").write_text(hosts)
        try:
            _ensure_file(netns_path(ns))
            _ensure_file(uts)
            run(["unshare", f"--net={netns_path(ns)}", f"--uts={uts}",
                 "hostname", hostname[:63].rstrip("-.")])
            wiring = PodWiring(key=key, netns=ns, veth=veth, ip=addr, node=plan)
            cleanup.ip_batch(self.cni.pod_node_lines(wiring), plan.netns)
            sysctls = self.cni.pod_node_sysctls(wiring)
            if sysctls:
                _write_sysctls(plan.netns, sysctls)
            cleanup.ip_batch(["link set lo up", f"link set eth0 alias {self.topo.tag} up",
                              *self.cni.pod_lines(wiring)], ns)
        except BaseException:
            self.remove_pod(key)
            raise
        pod = PodNet(key=key, netns=ns, ip=addr, node=node, host_veth=veth)
        with self._lock:
            self._pods[key] = pod
        return pod

    def remove_pod(self, key: str) -> None:
        """Unwire pod ``key``; nothing happens when it is not wired."""
        ns, uts = self.pod_netns(key), self.uts_path(key)
        if netns_path(ns).exists():
            # Deleting eth0 removes the node side at once, even when an open socket keeps
            # the namespace itself alive after ``netns del``.
            run(["ip", "-n", ns, "link", "del", "eth0"], check=False)
            run(["ip", "netns", "del", ns], check=False)
        cleanup.unmount(uts)
        uts.unlink(missing_ok=True)
        shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        with self._lock:
            self._pods.pop(key, None)
        if netns_path(ns).exists():
            raise ClusterError(f"could not remove network namespace {ns} of pod {key}")

    def pod_exists(self, key: str) -> bool:
        return netns_path(self.pod_netns(key)).exists()

    # ---- teardown ----------------------------------------------------------------------------
    def stop_agents(self) -> None:
        """Stop the CNI's agents (a daemon shutting down); the datapath itself stays."""
        self.cni.stop()

    def destroy(self) -> list[str]:
        """Remove every agent, namespace, link, mount and file of this cluster (agents, pods,
        node links, nodes, bridge: creation in reverse). Keeps the daemon's socket folder."""
        self.cni.stop()
        removed = cleanup.remove_datapath(self.topo.cluster)
        with self._lock:
            self._pods.clear()
        return removed


def pod_addresses(node: NodePlan) -> list[IPv4Address]:
    """The addresses pods of ``node`` may get: its range's hosts, minus the gateway and the
    overlay device's address."""
    return [a for a in node.pod_cidr.hosts() if a not in (node.gateway, node.tunnel_ip)]


class IPAM:
    """Pod addresses per node, from the node's /24 (never network, gateway or broadcast).

    Addresses are handed out round-robin after the last one given, like CNI host-local, so
    a just-freed IP is not reused at once (stale conntrack entries and caches would send
    the old pod's traffic to the new one). Pure: no system access.
    """

    def __init__(self, topo: Topology) -> None:
        self._nodes = {n.name: n for n in topo.nodes}
        self._by_key: dict[str, tuple[str, IPv4Address]] = {}
        self._used: dict[str, set[IPv4Address]] = {n: set() for n in self._nodes}
        self._last: dict[str, IPv4Address | None] = dict.fromkeys(self._nodes)

    def _pool(self, node: str) -> list[IPv4Address]:
        return pod_addresses(self._nodes[node])

    def allocate(self, node: str, key: str) -> IPv4Address:
        """The address of ``key`` on ``node``: the one it has, else the next free one."""
        if node not in self._nodes:
            raise KeyError(f"no node {node!r}")
        held = self._by_key.get(key)
        if held is not None:
            if held[0] == node:
                return held[1]
            self.release(key)
        pool = self._pool(node)
        last = self._last[node]
        start = pool.index(last) + 1 if last in pool else 0
        for i in range(len(pool)):
            candidate = pool[(start + i) % len(pool)]
            if candidate not in self._used[node]:
                self._take(node, key, candidate)
                return candidate
        raise ClusterError(f"node {node} has no free pod address left in "
                           f"{self._nodes[node].pod_cidr} ({len(pool)} in use)")

    def _take(self, node: str, key: str, ip: IPv4Address) -> None:
        self._by_key[key] = (node, ip)
        self._used[node].add(ip)
        self._last[node] = ip

    def release(self, key: str) -> None:
        held = self._by_key.pop(key, None)
        if held is not None:
            self._used[held[0]].discard(held[1])

    def restore(self, existing: Mapping[str, IPv4Address | str]) -> list[str]:
        """Take back addresses a previous run handed out ({key: ip}); returns the keys
        whose address fits no node's pool or is already taken (they get a new one later)."""
        refused = []
        for key, raw in sorted(existing.items(), key=lambda kv: IPv4Address(str(kv[1]))):
            ip = IPv4Address(str(raw))
            node = next((n for n in self._nodes if ip in self._pool(n)), None)
            held = self._by_key.get(key)
            if node is None or (ip in self._used[node] and held != (node, ip)):
                refused.append(key)
                continue
            self.release(key)
            self._take(node, key, ip)
        return refused

    def lookup(self, key: str) -> IPv4Address | None:
        held = self._by_key.get(key)
        return held[1] if held else None

    def allocations(self) -> dict[str, IPv4Address]:
        return {k: ip for k, (_, ip) in self._by_key.items()}
