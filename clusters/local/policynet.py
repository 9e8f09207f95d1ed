"""NetworkPolicy for one local cluster: what a policy-enforcing CNI agent does on each node.

The daemon calls :meth:`PolicyNetworking.sync_dataplane` at the end of every reconcile,
together with the Service rules, while it holds its lock: a policy, a pod label or a
namespace label that changed is in the nodes' nftables before the daemon answers any read,
so whoever sees the object stored also meets it in the data plane. Nothing is restarted;
a node whose rules did not change is not written at all.

Whether the cluster enforces policy at all is a property of its CNI
(:data:`ENFORCING_CNIS`): a CNI that does not enforce (Flannel) leaves policies stored and
inert, as on a real cluster, and the engine reports ``network_policy: False``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from clusters.errors import ClusterError
from clusters.local.netpol.enforcer import PolicyEnforcer, PolicySyncStats
from clusters.local.store import Store
from clusters.local.topology import Topology

log = logging.getLogger("kube-netlab.netpol")

#: The CNI modes of the local engine whose agents enforce NetworkPolicy.
ENFORCING_CNIS = frozenset({"kindnet", "calico"})


def enforces_policy(cni: str) -> bool:
    return cni in ENFORCING_CNIS


def _frozen(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def fingerprint(policies: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                namespaces: Iterable[Mapping[str, Any]]) -> Hashable:
    """Only what policy rules depend on: a pod turning Ready, an EndpointSlice or a Service
    changing moves the store's revision but not this, and then nothing is rendered."""
    pod_part = []
    for pod in pods:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        ports = [(c.get("ports") or []) for c in spec.get("containers") or []]
        pod_part.append((meta.get("namespace"), meta["name"], status.get("podIP"),
                         spec.get("nodeName"), bool(spec.get("hostNetwork")),
                         bool(meta.get("deletionTimestamp")), _frozen(meta.get("labels") or {}),
                         _frozen(ports)))
    return (
        tuple(sorted((p["metadata"].get("namespace", ""), p["metadata"]["name"],
                      _frozen(p.get("spec") or {})) for p in policies)),
        tuple(sorted(pod_part, key=lambda t: (str(t[0]), str(t[1])))),
        tuple(sorted((n["metadata"]["name"], _frozen(n["metadata"].get("labels") or {}))
                     for n in namespaces)),
    )


class PolicyNetworking:
    """Keeps every node's policy rules in line with the stored policies, pods and namespaces."""

    def __init__(self, store: Store, topo: Topology, cni: str) -> None:
        self.store = store
        self.enforcer = PolicyEnforcer(topo)
        self.enabled = enforces_policy(cni)
        self._synced_revision = -1
        self._synced_inputs: Hashable = None
        self.last_sync: PolicySyncStats | None = None
        #: The last data-plane failure (an engine bug, never a learner's): shown by ``ping``.
        self.last_error = ""

    async def sync_dataplane(self) -> None:
        """Rewrite the nodes' policy tables when the store changed since the last sync."""
        if not self.enabled:
            return
        revision = self.store.revision
        if revision == self._synced_revision:
            return
        policies = self.store.list("NetworkPolicy", readonly=True)
        pods = self.store.list("Pod", readonly=True)
        namespaces = self.store.list("Namespace", readonly=True)
        inputs = fingerprint(policies, pods, namespaces)
        if inputs == self._synced_inputs:
            self._synced_revision = revision
            return
        try:
            self.last_sync = await asyncio.to_thread(self.enforcer.sync, policies, pods,
                                                     namespaces)
        except (ClusterError, ValueError) as err:
            # Retried at the next reconcile (the revision stays unsynced), and reported.
            self.last_error = str(err)
            log.error("programming NetworkPolicy rules failed: %s", err)
            return
        self.last_error = ""
        self._synced_revision = revision
        self._synced_inputs = inputs

    def status(self) -> dict[str, Any]:
        """What ``ping`` reports: whether policy is enforced, the last sync, any error."""
        last = self.last_sync
        return {
            "enforced": self.enabled,
            "synced_revision": self._synced_revision,
            "last_sync_seconds": round(last.seconds, 4) if last else None,
            "nodes_written": last.nodes_written if last else 0,
            "rules": last.rules if last else 0,
            "error": self.last_error,
        }
