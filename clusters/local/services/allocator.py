"""Service address and port allocation, as the API server's registry does it.

A Service gets its ClusterIP from the Service range (10.96.0.0/16), its nodePorts from
30000-32767 and, for LoadBalancer Services, an address from a pool on the underlay (the way
MetalLB in L2 mode hands out addresses of the node network). Like the API server, the
allocator refuses an address or port another Service holds and refuses to change a
ClusterIP, so the errors a learner sees here are the ones ``kubectl apply`` would print.

Automatic choices look random, like a real cluster's, but are derived from the Service's
name: re-creating a Service tends to give it the same ClusterIP and nodePorts, which keeps
lab notes and screenshots valid. Dynamic choices avoid the low "static" band of each range
(the first 256 ClusterIPs, the first 86 nodePorts), as the API server does, so addresses a
learner picks by hand rarely collide with allocated ones.

Pure: no system access. Errors are :class:`~clusters.errors.ManifestError` with the field
path; the caller adds the manifest's source and document index.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Any

from clusters.errors import ManifestError
from clusters.local.topology import Topology

__all__ = [
    "KUBERNETES_IP",
    "KUBE_DNS_IP",
    "LB_POOL_FIRST",
    "LB_POOL_LAST",
    "NODE_PORT_RANGE",
    "ServiceAllocator",
]

Obj = dict[str, Any]

NODE_PORT_RANGE = (30000, 32767)
_NODE_PORT_STATIC = 86  # min(max(16, size/32), 128) ports at the bottom, for hand-picked ones
_IP_STATIC = 256  # min(max(16, size/16), 256) addresses at the bottom of the Service range
KUBERNETES_IP = 1  # offsets in the Service range
KUBE_DNS_IP = 10
LB_POOL_FIRST, LB_POOL_LAST = 200, 250  # host parts on the underlay /24

#: Addresses that belong to one Service only: offset -> "namespace/name".
_RESERVED = {KUBERNETES_IP: "default/kubernetes", KUBE_DNS_IP: "kube-system/kube-dns"}


def _key(svc: Mapping[str, Any]) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _needs_node_ports(spec: Mapping[str, Any]) -> bool:
    kind = spec.get("type", "ClusterIP")
    if kind == "NodePort":
        return True
    return kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def _port_label(port: Mapping[str, Any]) -> str:
    name = port.get("name")
    return f"port {name!r}" if name else f"port {port.get('port')}/{port.get('protocol', 'TCP')}"


class ServiceAllocator:
    """Which ClusterIPs, nodePorts and LoadBalancer addresses are taken, and by whom.

    Feed it every stored Service; each :meth:`allocate` records what it handed out, so a
    manifest with several Services can be allocated one after the other.
    """

    def __init__(self, services: Iterable[Mapping[str, Any]], topo: Topology) -> None:
        self.service_cidr: IPv4Network = topo.service_cidr
        base = topo.underlay.network_address
        self.lb_pool = [base + i for i in range(LB_POOL_FIRST, LB_POOL_LAST + 1)]
        self._ips: dict[IPv4Address, str] = {}
        self._ports: dict[tuple[int, str], tuple[str, str]] = {}  # (port, proto) -> (svc, what)
        self._lb: dict[IPv4Address, str] = {}
        #: Why a LoadBalancer Service got no address ("namespace/name" -> reason).
        self.pending: dict[str, str] = {}
        for svc in services:
            self._record(svc)
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                ip = self._parse(ing.get("ip"))
                if ip is not None and ip in self.lb_pool:
                    self._lb[ip] = _key(svc)

    # ---- bookkeeping ------------------------------------------------------------------------
    @staticmethod
    def _parse(value: Any) -> IPv4Address | None:
        try:
            ip = ip_address(str(value))
        except ValueError:
            return None
        return ip if isinstance(ip, IPv4Address) else None

    def _record(self, svc: Mapping[str, Any]) -> None:
        key, spec = _key(svc), svc.get("spec") or {}
        ip = self._parse(spec.get("clusterIP"))
        if ip is not None:
            self._ips[ip] = key
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self._ports[(int(port["nodePort"]), port.get("protocol", "TCP"))] = (
                    key, _port_label(port))
        if spec.get("healthCheckNodePort"):
            self._ports[(int(spec["healthCheckNodePort"]), "TCP")] = (key, "healthCheckNodePort")

    def release(self, namespace: str, name: str) -> None:
        """Forget everything Service ``namespace/name`` holds (it was deleted)."""
        key = f"{namespace}/{name}"
        self._ips = {ip: k for ip, k in self._ips.items() if k != key}
        self._ports = {p: v for p, v in self._ports.items() if v[0] != key}
        self._lb = {ip: k for ip, k in self._lb.items() if k != key}
        self.pending.pop(key, None)

    # ---- ClusterIP ---------------------------------------------------------------------------
    def _check_requested_ip(self, key: str, value: Any, path: str) -> IPv4Address:
        ip = self._parse(value)
        net = self.service_cidr
        if ip is None:
            raise ManifestError(f"{value!r} must be a valid IPv4 address or \"None\" (this "
                                f"cluster is IPv4 only)", path=path)
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise ManifestError(f"failed to allocate IP {ip}: the provided IP ({ip}) is not in "
                                f"the valid range. The range of valid IPs is {net}", path=path)
        owner = self._ips.get(ip)
        if owner is not None and owner != key:
            raise ManifestError(f"failed to allocate IP {ip}: provided IP is already allocated "
                                f"(to Service {owner})", path=path)
        reserved = _RESERVED.get(int(ip) - int(net.network_address))
        if reserved is not None and reserved != key:
            raise ManifestError(f"failed to allocate IP {ip}: it is reserved for Service "
                                f"{reserved}", path=path)
        return ip

    def _next_ip(self, key: str) -> IPv4Address:
        net = self.service_cidr
        first, size = int(net.network_address), net.num_addresses
        reserved = {first, first + size - 1} | {first + off for off in _RESERVED}
        start = _hash(key)
        for low in (_IP_STATIC, 1):  # dynamic band first, then everything
            span = size - 1 - low
            for i in range(span):
                ip = IPv4Address(first + low + (start + i) % span)
                if int(ip) not in reserved and ip not in self._ips:
                    return ip
        raise ManifestError(f"failed to allocate a ClusterIP: the range {net} is full",
                            path="spec.clusterIP")

    def _cluster_ip(self, key: str, spec: Obj, old_spec: Mapping[str, Any]) -> None:
        kind = spec.get("type", "ClusterIP")
        asked = spec.get("clusterIP")
        ips = spec.get("clusterIPs")
        if ips:
            if len(ips) > 1:
                raise ManifestError("at most one address: this cluster is IPv4 single-stack",
                                    path="spec.clusterIPs")
            if asked not in (None, "") and asked != ips[0]:
                raise ManifestError(f"must equal spec.clusterIP ({asked})",
                                    path="spec.clusterIPs[0]")
            asked = ips[0]
        if kind == "ExternalName":
            if asked not in (None, "", "None"):
                raise ManifestError("may not be set when type is 'ExternalName'",
                                    path="spec.clusterIP")
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(field, None)
            return
        families = spec.get("ipFamilies") or ["IPv4"]
        if families != ["IPv4"]:
            raise ManifestError(f"unsupported value {families!r}: this cluster is IPv4 "
                                f"single-stack", path="spec.ipFamilies")
        policy = spec.get("ipFamilyPolicy") or "SingleStack"
        if policy == "RequireDualStack":
            raise ManifestError("RequireDualStack is not possible: this cluster is IPv4 "
                                "single-stack", path="spec.ipFamilyPolicy")
        had = old_spec.get("clusterIP") if old_spec.get("type") != "ExternalName" else None
        if asked in (None, ""):
            asked = had
        if had not in (None, "") and asked != had:
            raise ManifestError(f"Invalid value: {asked!r}: field is immutable (the Service "
                                f"has {had}; delete and re-create it to change its ClusterIP)",
                                path="spec.clusterIP")
        if asked == "None":
            value = "None"
        elif asked in (None, ""):
            value = str(self._next_ip(key))
        else:
            value = str(self._check_requested_ip(key, asked, "spec.clusterIP"))
        spec.update(clusterIP=value, clusterIPs=[value], ipFamilies=["IPv4"],
                    ipFamilyPolicy=policy)

    # ---- node ports --------------------------------------------------------------------------
    def _check_port(self, key: str, port: int, proto: str, path: str,
                    mine: Mapping[tuple[int, str], str]) -> None:
        low, high = NODE_PORT_RANGE
        if not low <= port <= high:
            raise ManifestError(f"provided port {port} is not in the valid range. The range of "
                                f"valid ports is {low}-{high}", path=path)
        owner = self._ports.get((port, proto))
        if owner is not None and owner[0] != key:
            raise ManifestError(f"provided port {port}/{proto} is already allocated (to "
                                f"Service {owner[0]}, {owner[1]})", path=path)
        if (port, proto) in mine:
            raise ManifestError(f"duplicate nodePort {port}/{proto}: already used by "
                                f"{mine[(port, proto)]} of this Service", path=path)

    def _next_port(self, key: str, salt: str, proto: str,
                   mine: Mapping[tuple[int, str], str]) -> int:
        low, high = NODE_PORT_RANGE
        start = _hash(f"{key}/{salt}")
        for first in (low + _NODE_PORT_STATIC, low):
            span = high - first + 1
            for i in range(span):
                port = first + (start + i) % span
                owner = self._ports.get((port, proto))
                if (owner is None or owner[0] == key) and (port, proto) not in mine:
                    return port
        raise ManifestError(f"no free node port left in {low}-{high} for {proto}",
                            path="spec.ports")

    def _node_ports(self, key: str, spec: Obj, old_spec: Mapping[str, Any]) -> None:
        ports = spec.get("ports") or []
        if not _needs_node_ports(spec):
            return
        old = {}
        if _needs_node_ports(old_spec):
            old = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                   for p in old_spec.get("ports") or [] if p.get("nodePort")}
        mine: dict[tuple[int, str], str] = {}
        for i, port in enumerate(ports):  # requested ones first: they win over allocated ones
            if port.get("nodePort"):
                proto = port.get("protocol", "TCP")
                self._check_port(key, int(port["nodePort"]), proto,
                                 f"spec.ports[{i}].nodePort", mine)
                mine[(int(port["nodePort"]), proto)] = _port_label(port)
        by_number: dict[int, int] = {}
        for port in ports:
            proto = port.get("protocol", "TCP")
            if not port.get("nodePort"):
                kept = old.get((port.get("port"), proto))
                twin = by_number.get(port.get("port"))  # 53/TCP and 53/UDP share a nodePort
                if kept and (kept, proto) not in mine and self._free(key, kept, proto):
                    port["nodePort"] = kept
                elif twin and (twin, proto) not in mine and self._free(key, twin, proto):
                    port["nodePort"] = twin
                else:
                    port["nodePort"] = self._next_port(key, f"{port.get('port')}/{proto}",
                                                       proto, mine)
                mine[(port["nodePort"], proto)] = _port_label(port)
            by_number.setdefault(port.get("port"), port["nodePort"])

    def _free(self, key: str, port: int, proto: str) -> bool:
        owner = self._ports.get((port, proto))
        return owner is None or owner[0] == key

    def _health_check_port(self, key: str, spec: Obj, old_spec: Mapping[str, Any]) -> None:
        wanted = spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
        asked = spec.get("healthCheckNodePort")
        if not wanted:
            if asked:
                raise ManifestError("may only be set when type is 'LoadBalancer' and "
                                    "externalTrafficPolicy is 'Local'",
                                    path="spec.healthCheckNodePort")
            spec.pop("healthCheckNodePort", None)
            return
        mine = {(p["nodePort"], p.get("protocol", "TCP")): _port_label(p)
                for p in spec.get("ports") or [] if p.get("nodePort")}
        if asked:
            self._check_port(key, int(asked), "TCP", "spec.healthCheckNodePort", mine)
            return
        kept = old_spec.get("healthCheckNodePort")
        if kept and (kept, "TCP") not in mine and self._free(key, kept, "TCP"):
            spec["healthCheckNodePort"] = kept
        else:
            spec["healthCheckNodePort"] = self._next_port(key, "healthCheck", "TCP", mine)

    # ---- public ------------------------------------------------------------------------------
    def allocate(self, svc: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> Obj:
        """A copy of ``svc`` with its ClusterIP, nodePorts and healthCheckNodePort filled in.

        ``old`` is the stored version when this is a re-apply: what it had is kept. Raises
        :class:`ManifestError` (with the field path) when an asked-for value is taken, out
        of range, or would change an immutable field.
        """
        out = copy.deepcopy(dict(svc))
        key = _key(out)
        spec = out.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        self._cluster_ip(key, spec, old_spec)
        self._node_ports(key, spec, old_spec)
        self._health_check_port(key, spec, old_spec)
        namespace, _, name = key.partition("/")
        held_lb = {ip: k for ip, k in self._lb.items() if k == key}
        self.release(namespace, name)
        self._lb.update(held_lb)
        self._record(out)
        return out

    def allocate_lb(self, svc: Mapping[str, Any]) -> str | None:
        """The LoadBalancer address of ``svc`` (kept, asked for, or the next free one).

        None when ``svc`` is not a LoadBalancer or no address can be given; then
        ``pending[ns/name]`` says why (the Service stays ``<pending>``, as with MetalLB).
        """
        key, spec = _key(svc), svc.get("spec") or {}
        self.pending.pop(key, None)
        held = [ip for ip, k in self._lb.items() if k == key]
        if spec.get("type") != "LoadBalancer":
            for ip in held:
                del self._lb[ip]
            return None
        pool = f"{self.lb_pool[0]}-{self.lb_pool[-1]}"
        asked = spec.get("loadBalancerIP")
        choice: IPv4Address | None
        if asked:
            choice = self._parse(asked)
            if choice is None or choice not in self.lb_pool:
                self.pending[key] = f"spec.loadBalancerIP {asked} is not in the pool {pool}"
                return None
            owner = self._lb.get(choice)
            if owner is not None and owner != key:
                self.pending[key] = f"spec.loadBalancerIP {asked} is already used by {owner}"
                return None
        elif held:
            choice = min(held)
        else:
            choice = next((a for a in self.lb_pool if a not in self._lb), None)
            if choice is None:
                self.pending[key] = f"no free address left in the pool {pool}"
                return None
        for old in held:
            del self._lb[old]
        self._lb[choice] = key
        return str(choice)
