"""When a case is not applicable: the cluster lacks what the case is about.

A case that needs a feature the engine says it does not provide (``Capabilities``) is
reported *not applicable*, with the reason, instead of failing for a reason the case does
not test. What a case needs is read from the case itself:

============================== ==================================================
NetworkPolicy in an ``apply``   ``network_policy`` (the cluster enforces policies)
Service in an ``apply``,        ``services`` (kube-proxy semantics)
clusterIP/nodePort placeholders,
matrix via a Service
``dns`` probe, ``requests`` to  ``dns`` (cluster DNS)
``svc.ns``, matrix via a name
Ingress/IngressClass, an        ``ingress`` (a controller serving class nginx)
``ingress_status`` probe, the
ingressAddress placeholder
a LoadBalancer Service          ``load_balancer``
============================== ==================================================

A cluster that claims a feature and gets it wrong fails the case: that is the point.
Every file also needs two schedulable, Ready nodes (the fixtures spread pods over nodes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import yaml

from clusters.engine import Capabilities, Cluster
from grader.conformance import readers
from grader.conformance.model import Case

REASONS = {
    "network_policy": "the cluster does not enforce NetworkPolicy",
    "services": "the cluster does not implement Services (kube-proxy)",
    "dns": "the cluster has no cluster DNS",
    "ingress": "the cluster has no ingress controller serving IngressClass nginx",
    "load_balancer": "the cluster cannot give LoadBalancer Services an address",
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def needs(case: Case) -> list[str]:
    """The capabilities ``case`` depends on, in a stable order."""
    wanted: set[str] = set()
    for step in case.steps:
        for doc in yaml.safe_load_all(step.apply or ""):
            kind = (doc or {}).get("kind")
            if kind == "NetworkPolicy":
                wanted.add("network_policy")
            elif kind == "Service":
                wanted.add("services")
                if (doc.get("spec") or {}).get("type") == "LoadBalancer":
                    wanted.add("load_balancer")
            elif kind in ("Ingress", "IngressClass"):
                wanted.add("ingress")
        probe = step.probe
        if step.probe_kind == "dns":
            wanted.add("dns")
        elif step.probe_kind == "ingress_status":
            wanted.add("ingress")
        elif step.probe_kind == "matrix":
            via = set(probe.get("via", ["pod-ip"]))
            if via & {"service-ip", "service-name"}:
                wanted.add("services")
            if "service-name" in via:
                wanted.add("dns")
        elif step.probe_kind == "requests" and _is_service_name(str(probe.get("to", ""))):
            wanted |= {"dns", "services"}
        for text in _strings([dict(step.probe), dict(step.expect), step.apply or ""]):
            if any(p in text for p in ("{{clusterIP", "{{nodePort")):
                wanted.add("services")
            if "{{ingressAddress" in text:
                wanted.add("ingress")
    return [k for k in REASONS if k in wanted]


def _is_service_name(to: str) -> bool:
    if to.startswith(("http://", "https://")) or "{{" in to:
        return False
    host = to.rpartition(":")[0] if ":" in to else to
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


def unmet(case: Case, caps: Capabilities) -> str:
    """Why ``case`` is not applicable on a cluster with ``caps`` ("" when it is)."""
    missing = [k for k in needs(case) if not getattr(caps, k)]
    return "; ".join(f"{REASONS[k]} (Capabilities.{k} is false)" for k in missing)


def file_reason(cluster: Cluster) -> str:
    """Why no case can run on this cluster at all ("" when cases can run)."""
    usable = [n for n in readers.ready_nodes(cluster)
              if readers.schedulable(n) and readers.internal_ip(n)]
    if len(usable) < 2:
        return (f"the fixtures need two schedulable, Ready nodes with an InternalIP; the cluster "
                f"has {len(usable)}")
    return ""
