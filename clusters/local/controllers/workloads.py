"""The Deployment and ReplicaSet controllers: rolling updates, history, replica counts.

A Deployment owns one ReplicaSet per pod template (``<deployment>-<pod-template-hash>``)
and moves replicas from the old ones to the new one within maxSurge/maxUnavailable; a
ReplicaSet keeps its count of ``<rs>-<5 chars>`` pods.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from clusters.local.controllers.base import (
    ControllerBase,
    Obj,
    deletion_order,
    is_active,
    is_ready,
    owner_reference,
    ref_of,
    template_hash,
)

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def _resolve(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString like maxSurge: 2 or "25%" of ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def _revision(rs: Mapping[str, Any]) -> int:
    value = (rs.get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


class DeploymentsAndReplicaSets(ControllerBase):
    """Deployment rollouts (RollingUpdate, Recreate, rollback, history) and ReplicaSet scaling."""

    def _set_replicas(self, rs: Mapping[str, Any], replicas: int) -> str:
        updated = copy.deepcopy(dict(rs))
        before = int(updated["spec"].get("replicas", 1))
        updated["spec"]["replicas"] = replicas
        self.store.apply(updated)
        return f"scaled replicaset {ref_of(rs)} from {before} to {replicas}"
    # ---- Deployment -----------------------------------------------------------------------
    def _deployments(self) -> list[str]:
        events: list[str] = []
        for deploy in self._workloads("Deployment"):
            events += self._deployment(deploy)
        return events

    def _new_replicaset(self, deploy: Obj, pod_hash: str, revision: int) -> Obj:
        meta, spec = deploy["metadata"], deploy["spec"]
        template = copy.deepcopy(spec["template"])
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        rs_spec: Obj = {"replicas": 0, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        return self.store.create_owned({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                         "labels": dict(tmeta["labels"]),
                         "annotations": {REVISION_ANNOTATION: str(revision)},
                         "ownerReferences": [owner_reference(deploy)]},
            "spec": rs_spec, "status": {"replicas": 0}})

    def _deployment(self, deploy: Obj) -> list[str]:
        spec = deploy["spec"]
        desired = int(spec.get("replicas", 1))
        pod_hash = template_hash(spec["template"])
        owned = sorted(self._owned("ReplicaSet", deploy), key=_revision)
        new = next((rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH_LABEL)
                    == pod_hash), None)
        olds = [rs for rs in owned if rs is not new]
        events: list[str] = []
        top = max((_revision(rs) for rs in olds), default=0)
        if new is None and not spec.get("paused"):
            new = self._new_replicaset(deploy, pod_hash, top + 1)
            events.append(f"created replicaset {ref_of(new)}")
        elif new is not None and _revision(new) <= top:
            new = copy.deepcopy(new)  # a rollback: the reused ReplicaSet is the newest revision
            new["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = str(top + 1)
            new = self.store.apply(new)[0]
        pods = {rs["metadata"]["uid"]: [p for p in self._owned("Pod", rs) if is_active(p)]
                for rs in owned + ([new] if new is not None and new not in owned else [])}
        if new is not None and not spec.get("paused"):
            events += self._roll(deploy, desired, new, olds, pods)
            events += self._prune_history(deploy, olds, pods)
        return events + self._deployment_status(deploy, desired, new, owned, pods)

    def _roll(self, deploy: Obj, desired: int, new: Obj, olds: list[Obj],
              pods: Mapping[str, list[Obj]]) -> list[str]:
        def replicas(rs: Obj) -> int:
            return int(rs["spec"].get("replicas", 1))

        def ready(rs: Obj) -> int:
            return sum(1 for p in pods.get(rs["metadata"]["uid"], []) if is_ready(p))

        events: list[str] = []
        live_olds = [rs for rs in olds if replicas(rs) > 0]
        strategy = deploy["spec"].get("strategy") or {}
        recreating = strategy.get("type") == "Recreate" and any(
            pods.get(rs["metadata"]["uid"]) for rs in olds)
        if not live_olds:
            if replicas(new) != desired and not recreating:
                events.append(self._set_replicas(new, desired))
            return events
        if strategy.get("type") == "Recreate":
            return [self._set_replicas(rs, 0) for rs in live_olds]
        rolling = strategy.get("rollingUpdate") or {}
        surge = _resolve(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        total = sum(replicas(rs) for rs in [new, *live_olds])
        target = min(desired, max(replicas(new), replicas(new) + desired + surge - total))
        if target != replicas(new):
            events.append(self._set_replicas(new, target))
            total += target - replicas(new)
        min_available = desired - unavailable
        budget = total - min_available - (target - ready(new))
        scaled: dict[str, int] = {rs["metadata"]["uid"]: replicas(rs) for rs in live_olds}
        for rs in live_olds:  # oldest first: drop replicas that are not ready anyway
            uid = rs["metadata"]["uid"]
            cut = max(0, min(scaled[uid] - ready(rs), budget))
            scaled[uid] -= cut
            budget -= cut
        available = ready(new) + sum(min(ready(rs), scaled[rs["metadata"]["uid"]])
                                     for rs in live_olds)
        spare = available - min_available
        for rs in live_olds:
            uid = rs["metadata"]["uid"]
            cut = max(0, min(scaled[uid], spare))
            scaled[uid] -= cut
            spare -= cut
            if scaled[uid] != replicas(rs):
                events.append(self._set_replicas(rs, scaled[uid]))
        return events

    def _prune_history(self, deploy: Obj, olds: list[Obj],
                       pods: Mapping[str, list[Obj]]) -> list[str]:
        limit = int(deploy["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if int(rs["spec"].get("replicas", 1)) == 0
                and not pods.get(rs["metadata"]["uid"])]
        return [self._delete(rs, "revision history limit")
                for rs in idle[:max(0, len(idle) - limit)]]

    def _deployment_status(self, deploy: Obj, desired: int, new: Obj | None, owned: list[Obj],
                           pods: Mapping[str, list[Obj]]) -> list[str]:
        every = [p for plist in pods.values() for p in plist]
        updated = len(pods.get(new["metadata"]["uid"], [])) if new is not None else 0
        ready = sum(1 for p in every if is_ready(p))
        strategy = deploy["spec"].get("strategy") or {}
        max_unavailable = 0 if strategy.get("type") == "Recreate" else _resolve(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%"), desired, False)
        complete = updated == desired and ready >= desired and len(every) == updated
        old_status = deploy.get("status") or {}
        rs_name = new["metadata"]["name"] if new is not None else ""
        available = ready >= desired - max_unavailable
        conditions = [
            self._condition(old_status, "Available", available, "MinimumReplicasAvailable"
                            if available else "MinimumReplicasUnavailable",
                            "Deployment has minimum availability." if available
                            else "Deployment does not have minimum availability."),
            self._condition(old_status, "Progressing", True,
                            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                            f'ReplicaSet "{rs_name}" has successfully progressed.' if complete
                            else f'ReplicaSet "{rs_name}" is progressing.'),
        ]
        status = {"observedGeneration": deploy["metadata"].get("generation", 1),
                  "replicas": len(every), "updatedReplicas": updated, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": max(0, desired - ready),
                  "conditions": conditions}
        return self._set_status(deploy, status, f"{ready}/{desired} ready, {updated} updated")

    def _condition(self, old_status: Mapping[str, Any], kind: str, ok: bool, reason: str,
                   message: str) -> Obj:
        """A status condition that keeps its timestamps while nothing about it changes."""
        now = self._now()
        value = "True" if ok else "False"
        old: Obj = next(
            (c for c in old_status.get("conditions") or [] if c.get("type") == kind), {})
        same = old.get("status") == value
        unchanged = same and old.get("reason") == reason and old.get("message") == message
        return {"type": kind, "status": value,
                "lastUpdateTime": old.get("lastUpdateTime", now) if unchanged else now,
                "lastTransitionTime": old.get("lastTransitionTime", now) if same else now,
                "reason": reason, "message": message}

    # ---- ReplicaSet -----------------------------------------------------------------------
    def _replicasets(self) -> list[str]:
        events: list[str] = []
        for rs in self._workloads("ReplicaSet"):
            desired = int(rs["spec"].get("replicas", 1))
            pods = [p for p in self._owned("Pod", rs) if is_active(p)]
            name, namespace = rs["metadata"]["name"], rs["metadata"]["namespace"]
            for _ in range(desired - len(pods)):
                pod_name = self._unique_name("Pod", namespace, f"{name}-")
                events.append(self._create_pod(rs, rs["spec"]["template"], pod_name))
            if len(pods) > desired:
                doomed = deletion_order(pods)[:len(pods) - desired]
                events += [self._delete(p, "scale down") for p in doomed]
            pods = [p for p in self._owned("Pod", rs) if is_active(p)]
            ready = sum(1 for p in pods if is_ready(p))
            events += self._set_status(rs, {
                "replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation", 1)},
                f"{ready}/{desired} ready")
        return events
