"""The local engine's controllers: workloads into pods, pods onto nodes, orphans away.

Why a level-triggered pass instead of watches: the store is small and in one process, so
:meth:`Controllers.reconcile` simply looks at everything, makes one round of changes, and
says what it did. Callers repeat it until it returns no events (converged); readiness
written later by the runtime makes the next pass continue a rollout or an ordered start.

The behaviour follows the upstream controllers closely enough that ``get -o yaml`` looks
familiar: ``<deployment>-<pod-template-hash>`` ReplicaSets, ``<rs>-<5 chars>`` pods,
``<sts>-<ordinal>`` pods with a stable hostname, one DaemonSet pod per eligible node,
background garbage collection by ownerReferences, namespaces that empty before they go.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from clusters.local.kinds import find_kind
from clusters.local.scheduler import Unschedulable, node_filter_reason, schedule
from clusters.local.store import Store

Obj = dict[str, Any]

#: Kubernetes' SafeEncodeString alphabet: no vowels, no look-alike digits, no bad words.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
MAX_GENERATED_BASE = 58  # 63 minus the 5-character random suffix, as the API server does

#: Tolerations the DaemonSet controller adds to its pods, so node conditions don't evict them.
DAEMONSET_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


# ---- pure helpers -----------------------------------------------------------------------
def template_hash(template: Mapping[str, Any]) -> str:
    """A stable 10-character hash of a pod template, in the vowel-free alphabet."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Ready as the kubelet reports it: a Ready condition with status "True"."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts as a replica: not being deleted and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not is_terminating(pod) and phase not in ("Succeeded", "Failed")


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def _meta(obj: Mapping[str, Any]) -> Obj:
    return dict(obj.get("metadata") or {})


def _ref(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def _resolve(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString like maxSurge: 2 or "25%" of ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def _age_key(obj: Mapping[str, Any]) -> tuple[str, int]:
    meta = _meta(obj)
    return str(meta.get("creationTimestamp", "")), int(meta.get("resourceVersion") or 0)


def deletion_order(pods: Iterable[Obj]) -> list[Obj]:
    """Which pods a scale-down removes first: unbound, not running, not ready, then newest."""
    newest_first = sorted(pods, key=_age_key, reverse=True)
    return sorted(newest_first, key=lambda p: (
        bool(p.get("spec", {}).get("nodeName")),
        (p.get("status") or {}).get("phase") == "Running", is_ready(p)))


class Controllers:
    """Deployment, ReplicaSet, DaemonSet, StatefulSet, garbage collector, namespace, scheduler."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time,
                 rand: random.Random | None = None) -> None:
        self.store = store
        self.clock = clock
        self.rand = rand or random.Random()

    def reconcile(self) -> list[str]:
        """One full pass; returns what it did. Repeat until it returns [] (converged)."""
        events: list[str] = []
        for step in (self._namespaces, self._collect_garbage, self._deployments,
                     self._replicasets, self._daemonsets, self._statefulsets, self._schedule):
            events.extend(step())
        return events

    # ---- shared plumbing ------------------------------------------------------------------
    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _owned(self, kind: str, owner: Mapping[str, Any]) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.store.list(kind, owner["metadata"].get("namespace"))
                if controller_uid(o) == uid]

    def _workloads(self, kind: str) -> list[Obj]:
        return [o for o in self.store.list(kind) if not is_terminating(o)]

    def _set_status(self, obj: Mapping[str, Any], status: Obj, summary: str) -> list[str]:
        if (obj.get("status") or {}) == status:
            return []
        self.store.set_status(obj["kind"], obj["metadata"].get("namespace"),
                              obj["metadata"]["name"], status)
        return [f"updated status of {obj['kind'].lower()} {_ref(obj)}: {summary}"]

    def _unique_name(self, kind: str, namespace: str, base: str) -> str:
        base = base[:MAX_GENERATED_BASE]
        while True:
            name = base + "".join(self.rand.choice(ALPHABET) for _ in range(5))
            if self.store.get(kind, namespace, name) is None:
                return name

    def _create_pod(self, owner: Mapping[str, Any], template: Mapping[str, Any], name: str,
                    labels: Mapping[str, str] | None = None, **spec: Any) -> str:
        tmeta = _meta(template)
        namespace = owner["metadata"]["namespace"]
        meta: Obj = {"name": name, "namespace": namespace,
                     "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
                     "ownerReferences": [owner_reference(owner)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        pod_spec = {**copy.deepcopy(template.get("spec") or {}), **spec}
        self.store.create_owned({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                 "spec": pod_spec, "status": {"phase": "Pending"}})
        return f"created pod {namespace}/{name}"

    def _delete(self, obj: Mapping[str, Any], why: str) -> str:
        self.store.delete(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        return f"deleted {obj['kind'].lower()} {_ref(obj)} ({why})"

    def _set_replicas(self, rs: Mapping[str, Any], replicas: int) -> str:
        updated = copy.deepcopy(dict(rs))
        before = int(updated["spec"].get("replicas", 1))
        updated["spec"]["replicas"] = replicas
        self.store.apply(updated)
        return f"scaled replicaset {_ref(rs)} from {before} to {replicas}"

    # ---- namespaces and garbage -----------------------------------------------------------
    def _namespaces(self) -> list[str]:
        """Empty a namespace marked for deletion, then remove it."""
        events: list[str] = []
        for ns in self.store.list("Namespace"):
            if not is_terminating(ns):
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for kind in self.store.kinds():
                info = find_kind(kind)
                if info is not None and not info.namespaced:
                    continue
                for obj in self.store.list(kind, name):
                    if kind == "Pod" and is_terminating(obj):
                        remaining += 1  # the runtime is stopping it; wait until it is gone
                    else:
                        events.append(self._delete(obj, f"namespace {name} is being deleted"))
            if remaining:
                events += self._set_status(ns, {**(ns.get("status") or {}),
                                                "phase": "Terminating"}, "Terminating")
            else:
                events.append(self._delete(ns, "emptied"))
        return events

    def _owner_alive(self, ref: Mapping[str, Any], namespace: str | None) -> bool:
        owner = self.store.get(str(ref.get("kind")), namespace, str(ref.get("name")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def _collect_garbage(self) -> list[str]:
        """Background cascade: delete objects all of whose owners are gone (by uid)."""
        events = []
        for kind in self.store.kinds():
            for obj in self.store.list(kind):
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(self._owner_alive(r, obj["metadata"].get("namespace"))
                                    for r in refs):
                    events.append(self._delete(obj, f"owner {refs[0].get('kind')} "
                                                    f"{refs[0].get('name')} is gone"))
        return events

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
            events.append(f"created replicaset {_ref(new)}")
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

    # ---- DaemonSet ------------------------------------------------------------------------
    def _daemonsets(self) -> list[str]:
        events: list[str] = []
        nodes = self.store.list("Node")
        for ds in self._workloads("DaemonSet"):
            events += self._daemonset(ds, nodes)
        return events

    def _daemonset(self, ds: Obj, nodes: list[Obj]) -> list[str]:
        template = ds["spec"]["template"]
        revision = template_hash(template)
        tolerations = list(template.get("spec", {}).get("tolerations") or [])
        for key, effect in DAEMONSET_TOLERATIONS:
            if not any(t.get("key") == key and t.get("effect") in (effect, None, "")
                       for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": effect})
        probe = {"metadata": {"namespace": ds["metadata"]["namespace"]},
                 "spec": {**template.get("spec", {}), "tolerations": tolerations}}
        eligible = {n["metadata"]["name"] for n in nodes if node_filter_reason(probe, n) is None}
        by_node: dict[str, list[Obj]] = {}
        for pod in self._owned("Pod", ds):
            if is_active(pod):
                by_node.setdefault(str(pod["spec"].get("nodeName")), []).append(pod)
        events: list[str] = []
        for node, pods in sorted(by_node.items()):
            if node not in eligible:
                events += [self._delete(p, f"node {node} is not eligible") for p in pods]
            elif len(pods) > 1:
                events += [self._delete(p, "one per node")
                           for p in deletion_order(pods)[:len(pods) - 1]]
        labels = {REVISION_LABEL: revision,
                  "pod-template-generation": str(ds["metadata"].get("generation", 1))}
        name = ds["metadata"]["name"]
        for node in sorted(eligible - set(by_node)):
            pod_name = self._unique_name("Pod", ds["metadata"]["namespace"], f"{name}-")
            events.append(self._create_pod(ds, template, pod_name, labels, nodeName=node,
                                           tolerations=tolerations))
        placed = [ps[0] for n, ps in by_node.items() if n in eligible]
        stale = [p for p in placed if p["metadata"].get("labels", {}).get(REVISION_LABEL)
                 != revision]
        all_ready = len(placed) == len(eligible) and all(is_ready(p) for p in placed)
        doomed = [p for p in stale if not is_ready(p)] or (stale[:1] if all_ready else [])
        events += [self._delete(p, "template changed") for p in doomed]
        ready = sum(1 for p in placed if is_ready(p))
        events += self._set_status(ds, {
            "desiredNumberScheduled": len(eligible), "currentNumberScheduled": len(placed),
            "numberMisscheduled": sum(1 for n in by_node if n not in eligible),
            "numberReady": ready, "numberAvailable": ready,
            "numberUnavailable": len(eligible) - ready,
            "updatedNumberScheduled": len(placed) - len(stale),
            "observedGeneration": ds["metadata"].get("generation", 1)},
            f"{ready}/{len(eligible)} ready")
        return events

    # ---- StatefulSet ----------------------------------------------------------------------
    def _statefulsets(self) -> list[str]:
        events: list[str] = []
        for sts in self._workloads("StatefulSet"):
            events += self._statefulset(sts)
        return events

    def _statefulset(self, sts: Obj) -> list[str]:
        spec, name = sts["spec"], sts["metadata"]["name"]
        desired = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec['template'])}"
        parallel = spec.get("podManagementPolicy") == "Parallel"
        pods: dict[int, Obj] = {}
        for pod in self._owned("Pod", sts):
            prefix, _, ordinal = pod["metadata"]["name"].rpartition("-")
            if prefix == name and ordinal.isdigit():
                pods[int(ordinal)] = pod
        events = [self._delete(pods.pop(i), "pod failed, will be recreated")
                  for i, p in sorted(pods.items()) if not is_terminating(p) and not is_active(p)]
        if any(is_terminating(p) for p in pods.values()) and not parallel:
            return self._statefulset_status(sts, desired, revision, pods)
        for i in range(desired):
            current = pods.get(i)
            if current is None:
                events.append(self._create_pod(
                    sts, spec["template"], f"{name}-{i}",
                    {"statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                     "apps.kubernetes.io/pod-index": str(i), REVISION_LABEL: revision},
                    hostname=f"{name}-{i}",
                    **({"subdomain": spec["serviceName"]} if spec.get("serviceName") else {})))
                if not parallel:
                    return events + self._statefulset_status(sts, desired, revision, pods)
            elif not parallel and not is_ready(current):
                return events + self._statefulset_status(sts, desired, revision, pods)
        condemned = sorted((i for i in pods if i >= desired), reverse=True)
        for i in condemned if parallel else condemned[:1]:
            events.append(self._delete(pods.pop(i), "scale down"))
        if condemned:
            return events + self._statefulset_status(sts, desired, revision, pods)
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                        .get("partition", 0))
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        stale = [i for i, p in pods.items() if i >= partition
                 and p["metadata"].get("labels", {}).get(REVISION_LABEL) != revision]
        if rolling and stale and all(is_ready(p) for p in pods.values()):
            events.append(self._delete(pods.pop(max(stale)), "template changed"))
        return events + self._statefulset_status(sts, desired, revision, pods)

    def _statefulset_status(self, sts: Obj, desired: int, revision: str,
                            pods: Mapping[int, Obj]) -> list[str]:
        active = [p for p in pods.values() if is_active(p)]
        ready = sum(1 for p in active if is_ready(p))
        updated = sum(1 for p in active
                      if p["metadata"].get("labels", {}).get(REVISION_LABEL) == revision)
        old = sts.get("status") or {}
        done = updated == len(active) == desired
        current = revision if done or not old.get("currentRevision") else old["currentRevision"]
        return self._set_status(sts, {
            "observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(active),
            "readyReplicas": ready, "availableReplicas": ready,
            "currentReplicas": updated if current == revision else len(active) - updated,
            "updatedReplicas": updated, "currentRevision": current, "updateRevision": revision,
            "collisionCount": 0}, f"{ready}/{desired} ready")

    # ---- scheduling -----------------------------------------------------------------------
    def _schedule(self) -> list[str]:
        """Bind every pending pod the scheduler can place; explain the ones it cannot."""
        nodes = self.store.list("Node")
        pods = [p for p in self.store.list("Pod") if not is_terminating(p)]
        bound = [p for p in pods if p["spec"].get("nodeName")]
        namespaces = self.store.list("Namespace")
        events: list[str] = []
        for pod in sorted((p for p in pods if not p["spec"].get("nodeName")), key=_age_key):
            try:
                node = schedule(pod, nodes, bound, namespaces=namespaces)
            except Unschedulable as err:
                events += self._mark_unschedulable(pod, str(err))
                continue
            updated = copy.deepcopy(pod)
            updated["spec"]["nodeName"] = node
            stored, _ = self.store.apply(updated)
            status = _with_condition(stored.get("status") or {}, {
                "type": "PodScheduled", "status": "True", "lastProbeTime": None,
                "lastTransitionTime": self._now()})
            bound.append(self.store.set_status("Pod", pod["metadata"]["namespace"],
                                               pod["metadata"]["name"], status))
            events.append(f"scheduled pod {_ref(pod)} to {node}")
        return events

    def _mark_unschedulable(self, pod: Obj, message: str) -> list[str]:
        status = pod.get("status") or {}
        old: Obj = next((c for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled"), {})
        if old.get("status") == "False" and old.get("message") == message:
            return []
        self.store.set_status("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"],
                              _with_condition({**status, "phase": "Pending"}, {
                                  "type": "PodScheduled", "status": "False",
                                  "reason": "Unschedulable", "message": message,
                                  "lastProbeTime": None, "lastTransitionTime": self._now()}))
        return [f"pod {_ref(pod)} is unschedulable: {message}"]


def _revision(rs: Mapping[str, Any]) -> int:
    value = (rs.get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


def _with_condition(status: Mapping[str, Any], condition: Obj) -> Obj:
    """``status`` with the condition of the same type replaced (or added)."""
    rest: Iterable[Obj] = (c for c in status.get("conditions") or []
                           if c.get("type") != condition["type"])
    return {**status, "conditions": [condition, *rest]}
