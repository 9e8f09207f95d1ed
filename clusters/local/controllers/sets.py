"""The DaemonSet and StatefulSet controllers: one pod per eligible node, ordered pods.

A DaemonSet places one pod on every node its template may run on (with the tolerations
the upstream controller adds); a StatefulSet keeps ``<sts>-<ordinal>`` pods with stable
hostnames, created and replaced in order unless its policy is Parallel.
"""

from __future__ import annotations

from collections.abc import Mapping

from clusters.local.controllers.base import (
    ControllerBase,
    Obj,
    deletion_order,
    is_active,
    is_ready,
    is_terminating,
    template_hash,
)
from clusters.local.nodefit import node_filter_reason

REVISION_LABEL = "controller-revision-hash"

#: Tolerations the DaemonSet controller adds to its pods, so node conditions don't evict them.
DAEMONSET_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


class DaemonSetsAndStatefulSets(ControllerBase):
    """DaemonSet placement and rollout; StatefulSet ordered start, scale-down and update."""

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
