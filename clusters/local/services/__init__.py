"""Services on the local engine, the way kube-proxy (iptables mode) and the API server do them.

::

    allocator       ClusterIP / nodePort / LoadBalancer address allocation and conflicts
    endpointslices  the EndpointSlice controller (pure computation + a store reconcile pass)
    serviceports    what kube-proxy sees: Service ports with their endpoints (pure)
    iptables        kube-proxy's rules for one node as iptables-restore input (pure)
    proxier         programs the node namespaces, host LB routes and conntrack
"""

from __future__ import annotations

from clusters.local.services.allocator import ServiceAllocator
from clusters.local.services.endpointslices import desired_slices, reconcile_slices
from clusters.local.services.iptables import RuleSet, render, restore_input
from clusters.local.services.proxier import NodeSync, Proxier, SyncStats
from clusters.local.services.serviceports import Endpoint, ServicePort, service_ports

__all__ = [
    "Endpoint",
    "NodeSync",
    "Proxier",
    "RuleSet",
    "ServiceAllocator",
    "ServicePort",
    "SyncStats",
    "desired_slices",
    "reconcile_slices",
    "render",
    "restore_input",
    "service_ports",
]
