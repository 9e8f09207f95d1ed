"""kube-proxy for the local engine: programs every node's netfilter, the host's LB routes and
stale UDP conntrack entries, from stored Services and EndpointSlices.

Each node is a network namespace; its rules are written with one ``iptables-restore
--noflush`` per node (through ``nsenter --net``), all nodes in parallel. Like kube-proxy,
a sync after the first one is *partial*: only the chains whose rules changed since the last
successful sync are declared (which flushes them) and refilled, plus the top-level chains,
so changing one Service costs a few lines of input, not the whole table. The first sync of a
node, a sync after a failure, and ``sync(full=True)`` read the node's tables first
(``iptables-save``), add the jumps from the built-in chains that are missing and delete
stale ``KUBE-SVC/SVL/EXT/FW/SEP`` chains left by an earlier run.

LoadBalancer addresses are "announced" the way MetalLB's L2 mode would, by a host route
``<lb>/32 via <node>`` on the cluster's bridge: for externalTrafficPolicy Local the first
node (by name) with a ready local endpoint, otherwise a node picked by a hash of the
Service's name among nodes not labelled ``exclude-from-external-load-balancers``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from clusters.errors import CommandError
from clusters.local import cleanup
from clusters.local.netns import entered, netns_path
from clusters.local.services.iptables import (
    BASE_JUMPS,
    SERVICE_CHAIN_PREFIXES,
    TOP_LEVEL,
    FragmentCache,
    RuleSet,
    render_ports,
    restore_input,
)
from clusters.local.services.serviceports import ServicePort, service_ports
from clusters.local.topology import NodePlan, Topology
from clusters.proc import run

__all__ = ["NodeSync", "Proxier", "SyncStats"]

T = TypeVar("T")
EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
_LINE = re.compile(r"line:? (\d+)")


@dataclass(frozen=True)
class NodeSync:
    """What one node's sync did: a full or partial restore (or none, when nothing changed)."""

    node: str
    full: bool
    chains: int  # chains declared (created or flushed) in the restore input
    rules: int  # rules written
    skipped: bool = False


@dataclass(frozen=True)
class SyncStats:
    nodes: tuple[NodeSync, ...]
    service_ports: int
    conntrack_flushes: int
    lb_routes: dict[str, str] = field(default_factory=dict)  # LB address -> announcing node
    seconds: float = 0.0

    @property
    def full(self) -> bool:
        return any(n.full for n in self.nodes)


@dataclass(frozen=True)
class _UdpState:
    vips: tuple[str, ...]
    node_port: int
    endpoints: frozenset[str]


def _chains_in(save: str) -> dict[str, tuple[set[str], set[str]]]:
    """table -> (chain names, rule lines) from ``iptables-save`` output."""
    tables: dict[str, tuple[set[str], set[str]]] = {}
    current: tuple[set[str], set[str]] | None = None
    for line in save.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), (set(), set()))
        elif current is not None and line.startswith(":"):
            current[0].add(line[1:].split(" ", 1)[0])
        elif current is not None and line.startswith("-A "):
            current[1].add(line.strip())
    return tables


class Proxier:
    """Keeps every node of ``topo`` programmed like kube-proxy would. Thread-safe."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self._lock = threading.Lock()
        self._applied: dict[str, RuleSet] = {}
        self._fragments = FragmentCache()
        self._udp: dict[tuple[str, str], _UdpState] | None = None
        self._routes: dict[str, str] | None = None  # LB address -> via (node underlay IP)
        self._metric = 4000 + int(topo.underlay.network_address.packed[2])
        base = topo.underlay.network_address
        self._lb_range = (base + 200, base + 250)

    # ---- helpers -----------------------------------------------------------------------------
    def _in(self, node: NodePlan, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={netns_path(node.netns)}", "--", *argv]

    def _parallel(self, fn: Callable[[NodePlan], T]) -> list[T]:
        nodes = list(self.topo.nodes)
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            return list(pool.map(fn, nodes))

    # ---- rules ---------------------------------------------------------------------------------
    def _prepare(self, node: NodePlan) -> tuple[set[str], list[tuple[str, str]]]:
        """Stale service chains and missing base jumps in ``node`` (and route_localnet on)."""
        with entered(node.netns), open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
            f.write("1")  # NodePorts on 127.0.0.1, as kube-proxy allows by default
        tables = _chains_in(run(self._in(node, ["iptables-save"])).stdout)
        stale = {c for c in tables.get("nat", (set(), set()))[0]
                 if c.startswith(SERVICE_CHAIN_PREFIXES)}
        missing = [(t, rule) for t, rule in BASE_JUMPS
                   if rule not in tables.get(t, (set(), set()))[1]]
        return stale, missing

    def _restore(self, node: NodePlan, text: str) -> None:
        argv = self._in(node, ["iptables-restore", "-w", "5", "--noflush"])
        res = run(argv, input=text, check=False)
        if res.ok:
            return
        message = (res.stderr or res.stdout).strip()
        m = _LINE.search(message)
        lines = text.splitlines()
        reason = f"node {node.name}"
        if m and 0 < int(m.group(1)) <= len(lines):
            reason += f"; input line {m.group(1)}: {lines[int(m.group(1)) - 1]}"
        raise CommandError(argv, res.returncode, res.stdout, res.stderr, reason=reason)

    def _sync_node(self, node: NodePlan, rs: RuleSet, full: bool) -> NodeSync:
        old = None if full else self._applied.get(node.name)
        if old is not None and old.tables == rs.tables:
            return NodeSync(node.name, False, 0, 0, skipped=True)
        stale: Iterable[str] = ()
        jumps: list[tuple[str, str]] = []
        if old is None:
            stale, jumps = self._prepare(node)
        text = restore_input(rs, old, stale, jumps)
        self._applied.pop(node.name, None)  # a failed restore leaves the node unknown
        self._restore(node, text)
        self._applied[node.name] = rs
        lines = text.splitlines()
        return NodeSync(node.name, old is None, sum(1 for x in lines if x.startswith(":")),
                        sum(1 for x in lines if x.startswith(("-A ", "-I "))))

    # ---- conntrack -----------------------------------------------------------------------------
    @staticmethod
    def _udp_state(ports: Iterable[ServicePort]) -> dict[tuple[str, str], _UdpState]:
        return {(sp.port_key, sp.protocol): _UdpState(
                    (sp.cluster_ip, *sp.lb_ips, *sp.external_ips), sp.node_port,
                    frozenset(e.ip for e in sp.endpoints
                              if e.ready or (e.serving and e.terminating)))
                for sp in ports if sp.protocol == "UDP"}

    @staticmethod
    def _conntrack_flushes(old: Mapping[tuple[str, str], _UdpState],
                           new: Mapping[tuple[str, str], _UdpState]) -> list[list[str]]:
        """conntrack -D argument lists for UDP flows that would go to a stale place."""
        out: list[list[str]] = []
        udp = ["conntrack", "-D", "-p", "udp"]
        for key, before in old.items():
            after = new.get(key)
            if after is None:  # the Service port is gone: forget every flow to its addresses
                out += [[*udp, "--orig-dst", vip] for vip in before.vips]
                continue
            for ep in sorted(before.endpoints - after.endpoints):
                out += [[*udp, "--orig-dst", vip, "--dst-nat", ep] for vip in before.vips]
                if before.node_port:
                    out.append([*udp, "--dport", str(before.node_port), "--dst-nat", ep])
            if not before.endpoints and after.endpoints:  # flows pinned while it had none
                out += [[*udp, "--orig-dst", vip] for vip in after.vips]
                if after.node_port:
                    out.append([*udp, "--dport", str(after.node_port)])
        return out

    def _flush_conntrack(self, commands: list[list[str]]) -> None:
        def flush(node: NodePlan) -> None:
            for argv in commands:
                res = run(self._in(node, argv), check=False)
                if res.returncode not in (0, 1):  # 1: "0 flow entries have been deleted"
                    raise CommandError(res.argv, res.returncode, res.stdout, res.stderr,
                                       reason=f"node {node.name}")
        if commands:
            self._parallel(flush)

    # ---- LoadBalancer routes -------------------------------------------------------------------
    def announcers(self, services: Iterable[Mapping[str, Any]],
                   ports: Iterable[ServicePort]) -> dict[str, NodePlan]:
        """LB address -> the node that answers for it (see the module docstring)."""
        ready_nodes: dict[tuple[str, str], set[str]] = {}
        for sp in ports:
            ready_nodes.setdefault((sp.namespace, sp.name), set()).update(
                e.node for e in sp.endpoints if e.ready and e.node)
        nodes = sorted(self.topo.nodes, key=lambda n: n.name)
        eligible = [n for n in nodes if EXCLUDE_LB not in n.labels] or nodes
        low, high = self._lb_range
        out: dict[str, NodePlan] = {}
        for svc in services:
            meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
            if spec.get("type") != "LoadBalancer":
                continue
            key = (meta.get("namespace", "default"), meta.get("name", ""))
            choice: NodePlan | None = None
            if spec.get("externalTrafficPolicy") == "Local":
                local = ready_nodes.get(key, set())
                choice = next((n for n in eligible if n.name in local), None) or next(
                    (n for n in nodes if n.name in local), None)
            if choice is None:
                digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
                choice = eligible[int.from_bytes(digest[:8], "big") % len(eligible)]
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                try:
                    ip = IPv4Address(str(ing.get("ip")))
                except ValueError:
                    continue
                if low <= ip <= high:
                    out[str(ip)] = choice
        return out

    def _existing_routes(self) -> dict[str, str]:
        res = run(["ip", "-j", "-4", "route", "show", "dev", self.topo.bridge], check=False)
        low, high = self._lb_range
        found: dict[str, str] = {}
        for r in json.loads(res.stdout or "[]") if res.ok else []:
            try:
                net = IPv4Network(str(r.get("dst")))
            except ValueError:
                continue
            if net.prefixlen == 32 and low <= net.network_address <= high:
                found[str(net.network_address)] = str(r.get("gateway", ""))
        return found

    def _sync_routes(self, wanted: Mapping[str, str]) -> None:
        if self._routes is None:
            self._routes = self._existing_routes()
        dev = f"dev {self.topo.bridge} metric {self._metric}"
        gone = [ip for ip in self._routes if ip not in wanted]
        if gone:
            cleanup.ip_batch([f"route del {ip}/32 {dev}" for ip in gone], force=True)
        self._routes = {ip: v for ip, v in self._routes.items() if ip in wanted}
        cleanup.ip_batch([f"route replace {ip}/32 via {via} {dev}"
                          for ip, via in sorted(wanted.items()) if self._routes.get(ip) != via])
        self._routes = dict(wanted)

    # ---- public ----------------------------------------------------------------------------------
    def sync(self, services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
             *, full: bool = False) -> SyncStats:
        """Program every node for ``services`` and ``slices`` (all of them, every time).

        Raises :class:`CommandError` (a ClusterError) naming the node, the command, its exit
        code and the offending input line when ``iptables-restore`` refuses the rules; that
        node gets a full sync next time.
        """
        started = time.monotonic()
        services = list(services)
        with self._lock:
            ports = service_ports(services, slices)
            cidr = str(self.topo.pod_cidr)
            rulesets = {n.name: render_ports(ports, node_name=n.name, node_ip=str(n.underlay_ip),
                                             cluster_cidr=cidr, cache=self._fragments)
                        for n in self.topo.nodes}
            self._fragments.rotate()
            results = self._parallel(lambda n: self._sync_node(n, rulesets[n.name], full))
            udp = self._udp_state(ports)
            flushes = self._conntrack_flushes(self._udp or {}, udp)
            self._flush_conntrack(flushes)
            self._udp = udp
            announce = self.announcers(services, ports)
            self._sync_routes({ip: str(n.underlay_ip) for ip, n in announce.items()})
        return SyncStats(tuple(results), len(ports), len(flushes),
                         {ip: n.name for ip, n in announce.items()},
                         time.monotonic() - started)

    def applied(self, node: str) -> RuleSet | None:
        """The rules last written to ``node`` (None before its first successful sync)."""
        with self._lock:
            return self._applied.get(node)

    def clear(self) -> None:
        """Remove every rule, chain, base jump and LB route this proxier makes."""
        with self._lock:
            def wipe(node: NodePlan) -> None:
                if not netns_path(node.netns).exists():
                    return
                tables = _chains_in(run(self._in(node, ["iptables-save"])).stdout)
                out: list[str] = []
                for table in ("filter", "nat"):
                    chains, rules = tables.get(table, (set(), set()))
                    ours = sorted(c for c in chains if c in TOP_LEVEL[table]
                                  or c.startswith(SERVICE_CHAIN_PREFIXES))
                    out.append(f"*{table}")
                    out.extend(f":{c} - [0:0]" for c in ours)
                    out.extend("-D" + rule[2:] for t, rule in BASE_JUMPS
                               if t == table and rule in rules)
                    out.extend(f"-X {c}" for c in ours)
                    out.append("COMMIT")
                self._restore(node, "\n".join(out) + "\n")
            self._parallel(wipe)
            self._applied.clear()
            self._udp = None
            if self._routes is None:
                self._routes = self._existing_routes()
            self._sync_routes({})
