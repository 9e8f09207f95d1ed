"""What kube-proxy sees: one entry per Service port, with the endpoints behind it.

kube-proxy does not program Services, it programs *Service ports*: ``ns/name:port-name``
plus a protocol, each with its ClusterIP, nodePort, LoadBalancer addresses, traffic
policies and the endpoints gathered from every EndpointSlice labelled
``kubernetes.io/service-name`` (the controller's and any a user wrote by hand). This module
turns stored objects into that flat view, and decides which endpoints a node uses for
"Cluster" and "Local" traffic policy, following kube-proxy's rules: ready endpoints first,
serving-but-terminating ones only when nothing is ready. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clusters.local.services.endpointslices import SERVICE_NAME_LABEL

__all__ = ["Endpoint", "ServicePort", "categorize", "service_ports"]

_PROXIED = ("TCP", "UDP")  # no SCTP in this kernel


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One proxied port of one Service and its endpoints (sorted by ``ip:port`` text)."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" | "UDP"
    cluster_ip: str
    port: int
    node_port: int = 0
    lb_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    affinity_seconds: int = 0  # 0: no ClientIP affinity
    etp_local: bool = False
    itp_local: bool = False
    health_check_node_port: int = 0
    endpoints: tuple[Endpoint, ...] = field(default=())

    @property
    def port_key(self) -> str:
        """kube-proxy's ServicePortName string: ``ns/name:port`` (``ns/name`` if unnamed)."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.lb_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with externalTrafficPolicy Local, pods reaching an external address are
        # sent to all endpoints (the "short circuit"), so the Cluster set is still needed.
        return not self.itp_local or self.externally_accessible

    @property
    def external_policy_local(self) -> bool:
        return self.externally_accessible and self.etp_local

    @property
    def uses_local_endpoints(self) -> bool:
        return self.itp_local or self.external_policy_local


@dataclass(frozen=True)
class Categorized:
    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]  # SEP chains this node needs
    has_endpoints: bool  # usable endpoints anywhere in the cluster


def categorize(sp: ServicePort, node: str) -> Categorized:
    """Split ``sp``'s endpoints for ``node`` the way kube-proxy's CategorizeEndpoints does."""
    eps = sp.endpoints
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    has = False
    if sp.uses_cluster_endpoints:
        cluster = tuple(e for e in eps if e.ready)
        if not cluster:
            cluster = tuple(e for e in eps if e.serving and e.terminating)
        has = bool(cluster)
    if not sp.uses_local_endpoints:
        return Categorized(cluster, (), cluster, has)
    has = has or any(e.ready or (e.serving and e.terminating) for e in eps)
    local = tuple(e for e in eps if e.node == node and e.ready)
    if not local:
        local = tuple(e for e in eps if e.node == node and e.serving and e.terminating)
    if not sp.uses_cluster_endpoints:
        return Categorized((), local, local, has)
    reachable = cluster + tuple(e for e in local if e not in cluster)
    return Categorized(cluster, local, reachable, has)


def _ips(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(v).strip() for v in values if v and ":" not in str(v))


def _endpoint_index(slices: Iterable[Mapping[str, Any]]
                    ) -> dict[tuple[str, str, str, str], dict[str, Endpoint]]:
    """(namespace, service, port name, protocol) -> {"ip:port": Endpoint}."""
    index: dict[tuple[str, str, str, str], dict[str, Endpoint]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service or sl.get("addressType", "IPv4") != "IPv4":
            continue
        for port in sl.get("ports") or []:
            number = port.get("port")
            if not isinstance(number, int):
                continue
            key = (meta.get("namespace", "default"), service, port.get("name") or "",
                   port.get("protocol") or "TCP")
            bucket = index.setdefault(key, {})
            for ep in sl.get("endpoints") or []:
                addresses = ep.get("addresses") or []
                if not addresses:
                    continue
                cond = ep.get("conditions") or {}
                ready = cond.get("ready") is not False  # unset means ready
                item = Endpoint(ip=str(addresses[0]), port=number, node=ep.get("nodeName") or "",
                                ready=ready, serving=cond.get("serving", ready) is not False,
                                terminating=bool(cond.get("terminating")))
                bucket.setdefault(str(item), item)
    return index


def service_ports(services: Iterable[Mapping[str, Any]],
                  slices: Iterable[Mapping[str, Any]]) -> list[ServicePort]:
    """Every proxied Service port, sorted by port key; headless/ExternalName give none."""
    index = _endpoint_index(slices)
    out: list[ServicePort] = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not cluster_ip or cluster_ip == "None":
            continue
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            affinity = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                           .get("timeoutSeconds", 10800))
        external = spec.get("type") in ("NodePort", "LoadBalancer")
        for port in spec.get("ports") or []:
            proto = port.get("protocol", "TCP")
            if proto not in _PROXIED:
                continue
            eps = index.get((ns, name, port.get("name") or "", proto), {})
            out.append(ServicePort(
                namespace=ns, name=name, port_name=port.get("name") or "", protocol=proto,
                cluster_ip=str(cluster_ip), port=int(port["port"]),
                node_port=int(port.get("nodePort") or 0) if external else 0,
                lb_ips=_ips(i.get("ip") for i in lb) if spec.get("type") == "LoadBalancer"
                else (),
                external_ips=_ips(spec.get("externalIPs") or []),
                source_ranges=_ips(spec.get("loadBalancerSourceRanges") or []),
                affinity_seconds=affinity,
                etp_local=spec.get("externalTrafficPolicy") == "Local",
                itp_local=spec.get("internalTrafficPolicy") == "Local",
                health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
                endpoints=tuple(eps[k] for k in sorted(eps)),
            ))
    out.sort(key=lambda sp: (sp.port_key, sp.protocol))
    return out
