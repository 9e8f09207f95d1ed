"""The local engine's topology: a plain value you can print, store and test without root.

A topology says which "nodes" a cluster has (each one a network namespace), which addresses
they get and how the names of everything the datapath creates are derived. It mirrors what a
kind cluster looks like from the inside: nodes named ``<cluster>-control-plane``,
``<cluster>-worker``, ``<cluster>-worker2``..., pod CIDR 10.244.0.0/16 cut into one /24 per
node, Service CIDR 10.96.0.0/16, and an "underlay" /24 that plays the role of kind's Docker
network (a Linux bridge in the host, the host at ``.1``, nodes from ``.2``).

Building it is :mod:`clusters.local.datapath`'s job; this module never touches the system
except in :func:`host_routes`, which only reads the host's routing table.

Every name is derived from the cluster name so that cleanup can find what belongs to one
cluster even when no state is left: network namespaces ``knl-<cluster>-<suffix>``, links with
``alias kube-netlab:<cluster>``, files under ``/run/kube-netlab/<cluster>/`` and
``/etc/netns/knl-<cluster>-*``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_network
from pathlib import Path
from typing import Any

from clusters.errors import AddressConflict
from clusters.proc import run

POD_CIDR = IPv4Network("10.244.0.0/16")
#: Calico's default IP pool, cut into /26 IPAM blocks (one per node here). When the host
#: already routes part of it (a 192.168 home network), the pool moves to POD_CIDR, as people
#: do on kind with CALICO_IPV4POOL_CIDR.
CALICO_POOL = IPv4Network("192.168.0.0/16")
CALICO_BLOCK_PREFIX = 26
#: The gateway every Calico pod routes through: a link-local address no interface has;
#: the node answers ARP for it by proxy on each ``cali*`` veth.
CALICO_GATEWAY = IPv4Address("169.254.1.1")
SERVICE_CIDR = IPv4Network("10.96.0.0/16")
UNDERLAY_POOL = IPv4Network("172.30.0.0/16")
DEFAULT_MTU = 1500
MAX_CLUSTER_NAME = 20
MAX_WORKERS = 252  # control plane + workers must fit .2-.254 of the underlay /24
TAG_PREFIX = "kube-netlab:"
NETNS_PREFIX = "knl-"
RUN_ROOT = Path("/run/kube-netlab")
ETC_NETNS = Path("/etc/netns")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# What follows ``knl-<cluster>-`` in a namespace name. None of these can end another one, so
# ``knl-a-b-worker`` belongs to cluster ``a-b`` and never to cluster ``a``.
_SUFFIX = r"(?:control-plane|worker\d*|pod-[0-9a-f]{12})"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def validate_cluster_name(name: str) -> None:
    """Refuse names that cannot become namespace, link and file names (ValueError says why)."""
    if not name:
        raise ValueError("cluster name is empty")
    if len(name) > MAX_CLUSTER_NAME:
        raise ValueError(
            f"cluster name {name!r} is {len(name)} characters; at most {MAX_CLUSTER_NAME} fit "
            "into the names of its network namespaces")
    if not _DNS_LABEL.match(name):
        raise ValueError(
            f"cluster name {name!r} is not a DNS label: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit")


def _hex(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def tag_for(cluster: str) -> str:
    """The alias every link of ``cluster`` carries."""
    return TAG_PREFIX + cluster


BRIDGE_PREFIX = "knlbr-"


def bridge_name(cluster: str) -> str:
    return f"{BRIDGE_PREFIX}{_hex(cluster, 6)}"


def host_veth_name(cluster: str, node: str) -> str:
    """Host end of a node's eth0 (``knl`` + 12 hex = 15 characters, the ifname limit)."""
    return f"knl{_hex(f'{cluster}/{node}', 12)}"


def pod_netns_name(cluster: str, key: str) -> str:
    """Network namespace of pod ``key`` (``<namespace>/<name>``)."""
    return f"{NETNS_PREFIX}{cluster}-pod-{_hex(key, 12)}"


def pod_veth_name(key: str) -> str:
    """Node end of a pod's veth pair, like kindnet's ``veth`` + 8 hex."""
    return f"veth{_hex(key, 8)}"


def run_dir(cluster: str) -> Path:
    return RUN_ROOT / cluster


def owned_netns(cluster: str) -> re.Pattern[str]:
    """Matches exactly the namespace names of ``cluster`` (nodes and pods)."""
    return re.compile(rf"^{NETNS_PREFIX}{re.escape(cluster)}-{_SUFFIX}$")


def cluster_of_netns(name: str) -> str | None:
    """The cluster a ``knl-`` namespace name belongs to, or None if it is not one of ours."""
    m = re.match(rf"^{NETNS_PREFIX}(?P<cluster>.+)-{_SUFFIX}$", name)
    if m is None:
        return None
    try:
        validate_cluster_name(m["cluster"])
    except ValueError:
        return None
    return m["cluster"]


@dataclass(frozen=True)
class NodePlan:
    """One node: a network namespace with an address on the underlay and a pod /24."""

    name: str
    role: str  # "control-plane" | "worker"
    index: int
    netns: str
    underlay_ip: IPv4Address
    pod_cidr: IPv4Network
    #: The pods' default gateway: the first host of pod_cidr (kindnet, flannel's cni0) or
    #: Calico's 169.254.1.1.
    gateway: IPv4Address
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    #: The node's address on a VXLAN overlay device (flannel.1: the /24's network address;
    #: vxlan.calico: the first address of the block), None without an overlay. Never a pod's.
    tunnel_ip: IPv4Address | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "index": self.index, "netns": self.netns,
            "underlay_ip": str(self.underlay_ip), "pod_cidr": str(self.pod_cidr),
            "gateway": str(self.gateway), "labels": dict(self.labels),
            "taints": [dict(t) for t in self.taints],
            "tunnel_ip": str(self.tunnel_ip) if self.tunnel_ip else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodePlan:
        return cls(
            name=str(d["name"]), role=str(d["role"]), index=int(d["index"]),
            netns=str(d["netns"]), underlay_ip=IPv4Address(d["underlay_ip"]),
            pod_cidr=IPv4Network(d["pod_cidr"]), gateway=IPv4Address(d["gateway"]),
            labels={str(k): str(v) for k, v in d.get("labels", {}).items()},
            taints=[{str(k): str(v) for k, v in t.items()} for t in d.get("taints", [])],
            tunnel_ip=IPv4Address(d["tunnel_ip"]) if d.get("tunnel_ip") else None,
        )


@dataclass(frozen=True)
class Topology:
    """A whole cluster's plan. ``to_dict``/``from_dict`` round-trip through JSON."""

    cluster: str
    tag: str
    nodes: tuple[NodePlan, ...]
    underlay: IPv4Network
    host_ip: IPv4Address
    bridge: str
    pod_cidr: IPv4Network = POD_CIDR
    service_cidr: IPv4Network = SERVICE_CIDR
    mtu: int = DEFAULT_MTU  # of the underlay; a CNI with an overlay gives pods less
    cni: str = "kindnet"
    backend: str = ""

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"cluster {self.cluster} has no node {name!r} (nodes: {known})")

    @property
    def control_plane(self) -> NodePlan:
        return self.nodes[0]

    @property
    def workers(self) -> tuple[NodePlan, ...]:
        return tuple(n for n in self.nodes if n.role == "worker")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster, "tag": self.tag,
            "nodes": [n.to_dict() for n in self.nodes],
            "underlay": str(self.underlay), "host_ip": str(self.host_ip),
            "bridge": self.bridge, "pod_cidr": str(self.pod_cidr),
            "service_cidr": str(self.service_cidr), "mtu": self.mtu,
            "cni": self.cni, "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Topology:
        return cls(
            cluster=str(d["cluster"]), tag=str(d["tag"]),
            nodes=tuple(NodePlan.from_dict(n) for n in d["nodes"]),
            underlay=IPv4Network(d["underlay"]), host_ip=IPv4Address(d["host_ip"]),
            bridge=str(d["bridge"]), pod_cidr=IPv4Network(d["pod_cidr"]),
            service_cidr=IPv4Network(d["service_cidr"]), mtu=int(d["mtu"]),
            cni=str(d.get("cni", "kindnet")), backend=str(d.get("backend", "")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def describe(self) -> str:
        """A table for people: what exists where, and on which addresses."""
        cni = f"{self.cni} ({self.backend})" if self.backend else self.cni
        head = [
            f"cluster {self.cluster}  (links tagged {self.tag!r}), CNI {cni}",
            f"underlay {self.underlay} on bridge {self.bridge}, host {self.host_ip}, "
            f"MTU {self.mtu}",
            f"pods {self.pod_cidr}, services {self.service_cidr}",
            "",
        ]
        cols = ("NODE", "ROLE", "NETNS", "NODE IP", "POD CIDR", "GATEWAY")
        rows = [cols] + [
            (n.name, n.role, n.netns, str(n.underlay_ip), str(n.pod_cidr), str(n.gateway))
            for n in self.nodes
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        return "\n".join(head + lines)


def _node_names(cluster: str, workers: int) -> list[tuple[str, str, str]]:
    """(node name, role, suffix) like kind: control-plane, worker, worker2, worker3..."""
    out = [(f"{cluster}-control-plane", "control-plane", "control-plane")]
    for i in range(1, workers + 1):
        suffix = "worker" if i == 1 else f"worker{i}"
        out.append((f"{cluster}-{suffix}", "worker", suffix))
    return out


def _first_conflict(net: IPv4Network, routes: Iterable[IPv4Network]) -> IPv4Network | None:
    for r in routes:
        if r.prefixlen > 0 and net.overlaps(r):
            return r
    return None


def _arch() -> str:
    return _ARCH.get(platform.machine().lower(), "amd64")


def calico_blocks(cluster: str, pool: IPv4Network, count: int) -> list[IPv4Network]:
    """``count`` distinct /26 blocks of ``pool`` for the nodes of ``cluster``.

    Calico's IPAM hands a node whichever free block it finds, so real clusters show blocks
    like 192.168.171.64/26 rather than the pool's first ones. This picks them the same way
    but reproducibly: a start derived from the cluster name, then a stride coprime to the
    number of blocks, so no two nodes ever share a block.
    """
    blocks = list(pool.subnets(new_prefix=CALICO_BLOCK_PREFIX))
    if count > len(blocks):
        raise ValueError(f"{count} nodes do not fit into the {len(blocks)} blocks of {pool}")
    start = int(_hex(f"calico/{cluster}", 6), 16) % len(blocks)
    return [blocks[(start + 37 * i) % len(blocks)] for i in range(count)]


def _pod_ranges(cluster: str, cni: str, backend: str, routes: Sequence[IPv4Network],
                count: int) -> tuple[IPv4Network, list[tuple[IPv4Network, IPv4Address,
                                                                IPv4Address | None]]]:
    """The cluster's pod range and, per node, (its range, the pods' gateway, its tunnel IP)."""
    if cni == "calico":
        pool = CALICO_POOL if _first_conflict(CALICO_POOL, routes) is None else POD_CIDR
        out = []
        for block in calico_blocks(cluster, pool, count):
            first = next(block.hosts())
            out.append((block, CALICO_GATEWAY, first if backend == "vxlan" else None))
        return pool, out
    per_node = list(POD_CIDR.subnets(new_prefix=24))[:count]
    vxlan = cni == "flannel" and backend == "vxlan"
    return POD_CIDR, [(net, next(net.hosts()), net.network_address if vxlan else None)
                      for net in per_node]


def plan(
    cluster: str,
    workers: int = 2,
    host_routes: Sequence[IPv4Network] = (),
    taken_underlays: Sequence[IPv4Network] = (),
    *,
    mtu: int = DEFAULT_MTU,
    arch: str | None = None,
    cni: str = "kindnet",
    backend: str = "",
) -> Topology:
    """Plan a cluster. Pure: the host's routes and other clusters' underlays are passed in.

    The pod addresses follow the CNI: kindnet and Flannel give each node a /24 of
    10.244.0.0/16; Calico gives each node a /26 block of its pool (192.168.0.0/16, or
    10.244.0.0/16 when the host already routes part of 192.168.0.0/16).

    Raises ``ValueError`` for a bad name or worker count and :class:`AddressConflict` when
    the pod or Service range collides with a host route or no underlay /24 is free. Default
    routes (``/0``) never count as a collision.
    """
    validate_cluster_name(cluster)
    if not 0 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be between 0 and {MAX_WORKERS}, not {workers}")
    routes = list(host_routes)
    names = _node_names(cluster, workers)
    pod_range, per_node = _pod_ranges(cluster, cni, backend, routes, len(names))
    for what, net in (("pod", pod_range), ("Service", SERVICE_CIDR)):
        hit = _first_conflict(net, routes)
        if hit is not None:
            raise AddressConflict(
                f"the host has a route to {hit}, which overlaps the local engine's {what} "
                f"range {net}; pods and Services of cluster {cluster} would be unreachable. "
                f"Remove or narrow that route (often a VPN or a container network), or use "
                f"the kind engine (--engine kind).")
    underlay = next(
        (c for c in UNDERLAY_POOL.subnets(new_prefix=24)
         if _first_conflict(c, routes) is None and _first_conflict(c, taken_underlays) is None),
        None,
    )
    if underlay is None:
        raise AddressConflict(
            f"no free /24 for the node network in {UNDERLAY_POOL}: every one overlaps a host "
            f"route or another local cluster. Delete unused local clusters (lab cluster "
            f"delete) or free part of {UNDERLAY_POOL}.")
    hosts = list(underlay.hosts())
    arch = arch or _arch()
    nodes = []
    for index, (name, role, suffix) in enumerate(names):
        pod_cidr, gateway, tunnel_ip = per_node[index]
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
        }
        taints: list[dict[str, str]] = []
        if role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
            taints.append({"key": "node-role.kubernetes.io/control-plane",
                           "effect": "NoSchedule"})
        nodes.append(NodePlan(
            name=name, role=role, index=index, netns=f"{NETNS_PREFIX}{cluster}-{suffix}",
            underlay_ip=hosts[index + 1], pod_cidr=pod_cidr, gateway=gateway,
            labels=labels, taints=taints, tunnel_ip=tunnel_ip,
        ))
    return Topology(
        cluster=cluster, tag=tag_for(cluster), nodes=tuple(nodes), underlay=underlay,
        host_ip=hosts[0], bridge=bridge_name(cluster), mtu=mtu, pod_cidr=pod_range,
        cni=cni, backend=backend,
    )


def parse_routes(route_json: str, addr_json: str = "[]") -> list[IPv4Network]:
    """IPv4 destinations from ``ip -j route show table all`` and prefixes from ``ip -j addr``.

    The pod and Service routes another local cluster pins to its bridge are not conflicts
    (each cluster has its own namespaces); its underlay (the bridge's connected route and
    address) still is, so two clusters never share an underlay.
    """
    nets: set[IPv4Network] = set()
    for r in json.loads(route_json or "[]"):
        if str(r.get("dev", "")).startswith(BRIDGE_PREFIX) and r.get("protocol") != "kernel":
            continue
        dst = str(r.get("dst", ""))
        if not dst or dst == "default" or ":" in dst:
            continue
        try:
            net = ip_network(dst, strict=False)
        except ValueError:
            continue
        if isinstance(net, IPv4Network) and net.prefixlen > 0:
            nets.add(net)
    for link in json.loads(addr_json or "[]"):
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and "local" in a:
                nets.add(IPv4Network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
    return sorted(nets)


def host_routes() -> list[IPv4Network]:
    """The IPv4 networks the host already routes to or has addresses in (all tables)."""
    routes = run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout
    addrs = run(["ip", "-j", "-4", "addr", "show"]).stdout
    return parse_routes(routes, addrs)
