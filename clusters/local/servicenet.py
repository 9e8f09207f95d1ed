"""Service networking for one local cluster: what the API server, the EndpointSlice
controller, kube-proxy, a MetalLB-like load balancer and CoreDNS do on a real one.

The daemon drives it in three places:

- :meth:`ServiceNetworking.admit` on ``apply``: allocates ClusterIPs and nodePorts and
  refuses conflicts before anything is stored (the API server's job);
- :meth:`ServiceNetworking.reconcile_objects` in every controller pass: EndpointSlices
  follow pods and readiness, LoadBalancer Services get their address in ``status``;
- :meth:`ServiceNetworking.sync_dataplane` at the end of each reconcile: the nodes'
  iptables rules and the DNS zone catch up with the store, before the daemon answers any
  read again, so a client that sees an object converged also finds it in the data plane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from clusters.errors import ClusterError
from clusters.local.dns.zone import Zone
from clusters.local.services.allocator import ServiceAllocator
from clusters.local.services.endpointslices import reconcile_slices
from clusters.local.services.proxier import Proxier, SyncStats
from clusters.local.store import Store
from clusters.local.topology import Topology

log = logging.getLogger("kube-netlab.services")

Obj = dict[str, Any]


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", "default"), meta["name"]


class ServiceNetworking:
    """Allocation, EndpointSlices, LoadBalancer status, node rules and DNS for one cluster."""

    def __init__(self, store: Store, topo: Topology) -> None:
        self.store = store
        self.topo = topo
        self.proxier = Proxier(topo)
        self._zone = Zone.build([], [], [])
        self._synced_revision = -1
        self.last_sync: SyncStats | None = None
        #: The last data-plane failure (an engine bug, never a learner's): shown by ``ping``.
        self.last_error = ""

    # ---- API server: allocation --------------------------------------------------------
    def allocator(self) -> ServiceAllocator:
        """What the stored Services hold; admit a batch's Services through one allocator,
        so two new Services in one file never get the same address or port."""
        return ServiceAllocator(self.store.list("Service", readonly=True), self.topo)

    def admit(self, obj: Obj, allocator: ServiceAllocator) -> Obj:
        """``obj`` with its allocated fields filled in (only Services change); a re-apply
        keeps what the stored version had. Raises ManifestError."""
        if obj.get("kind") != "Service":
            return obj
        ns, name = _key(obj)
        return allocator.allocate(obj, self.store.get("Service", ns, name))

    # ---- controllers -------------------------------------------------------------------
    def reconcile_objects(self) -> list[str]:
        """One pass of the EndpointSlice controller and the load-balancer allocator."""
        events = reconcile_slices(self.store)
        services = self.store.list("Service", readonly=True)
        allocator = ServiceAllocator(services, self.topo)
        for svc in services:
            if svc["metadata"].get("deletionTimestamp"):
                continue
            status = dict(svc.get("status") or {})
            current = (status.get("loadBalancer") or {}).get("ingress") or []
            ip = allocator.allocate_lb(svc)
            wanted = [{"ip": ip, "ipMode": "VIP"}] if ip else []
            if current == wanted:
                continue
            status["loadBalancer"] = {"ingress": wanted} if wanted else {}
            ns, name = _key(svc)
            self.store.set_status("Service", ns, name, status)
            pending = allocator.pending.get(f"{ns}/{name}")
            what = ip or (f"pending ({pending})" if pending else "released")
            events.append(f"service {ns}/{name}: load balancer address {what}")
        return events

    # ---- kube-proxy and DNS ------------------------------------------------------------
    async def sync_dataplane(self) -> None:
        """Program the nodes and rebuild the DNS zone when the store changed since last time."""
        revision = self.store.revision
        if revision == self._synced_revision:
            return
        # Snapshots without copies: the zone and the rules only read them, and the store
        # replaces objects instead of changing them.
        services = self.store.list("Service", readonly=True)
        slices = self.store.list("EndpointSlice", readonly=True)
        self._zone = Zone.build(
            services, slices, self.store.list("Pod", readonly=True),
            namespaces=[n["metadata"]["name"] for n in self.store.list("Namespace", readonly=True)])
        try:
            self.last_sync = await asyncio.to_thread(self.proxier.sync, services, slices)
        except ClusterError as err:
            # Retried at the next reconcile (the revision stays unsynced), and reported.
            self.last_error = str(err)
            log.error("programming Service rules failed: %s", err)
            return
        self.last_error = ""
        self._synced_revision = revision

    def status(self) -> dict[str, Any]:
        """What ``ping`` reports: the last rules sync and any data-plane error."""
        last = self.last_sync
        return {
            "synced_revision": self._synced_revision,
            "last_sync_seconds": round(last.seconds, 4) if last else None,
            "last_sync_full": last.full if last else None,
            "service_ports": last.service_ports if last else 0,
            "error": self.last_error,
        }

    def zone(self) -> Zone:
        """The DNS data as of the last sync (what the cluster DNS pods answer from)."""
        return self._zone
