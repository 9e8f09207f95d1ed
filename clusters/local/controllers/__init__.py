"""The local engine's controllers: workloads into pods, pods onto nodes, orphans away.

Why a level-triggered pass instead of watches: the store is small and in one process, so
:meth:`Controllers.reconcile` simply looks at everything, makes one round of changes, and
says what it did. Callers repeat it until it returns no events (converged); readiness
written later by the runtime makes the next pass continue a rollout or an ordered start.

The behaviour follows the upstream controllers closely enough that ``get -o yaml`` looks
familiar: ``<deployment>-<pod-template-hash>`` ReplicaSets, ``<rs>-<5 chars>`` pods,
``<sts>-<ordinal>`` pods with a stable hostname, one DaemonSet pod per eligible node,
background garbage collection by ownerReferences, namespaces that empty before they go.

One module per job: :mod:`.base` (shared helpers and plumbing), :mod:`.workloads`
(Deployment, ReplicaSet), :mod:`.sets` (DaemonSet, StatefulSet), :mod:`.gc` (garbage
collection, namespaces) and :mod:`.binding` (the scheduling pass); :class:`Controllers`
combines them and runs one pass in a fixed order.
"""

from __future__ import annotations

from clusters.local.controllers.base import (
    ALPHABET,
    deletion_order,
    is_active,
    is_ready,
    template_hash,
)
from clusters.local.controllers.binding import Binding
from clusters.local.controllers.gc import GarbageCollection
from clusters.local.controllers.sets import DaemonSetsAndStatefulSets
from clusters.local.controllers.workloads import DeploymentsAndReplicaSets

__all__ = ["ALPHABET", "Controllers", "deletion_order", "is_active", "is_ready", "template_hash"]


class Controllers(GarbageCollection, DeploymentsAndReplicaSets, DaemonSetsAndStatefulSets,
                  Binding):
    """Deployment, ReplicaSet, DaemonSet, StatefulSet, garbage collector, namespace, scheduler."""

    def reconcile(self) -> list[str]:
        """One full pass; returns what it did. Repeat until it returns [] (converged)."""
        events: list[str] = []
        for step in (self._namespaces, self._collect_garbage, self._deployments,
                     self._replicasets, self._daemonsets, self._statefulsets, self._schedule):
            events.extend(step())
        return events
