"""The scheduling pass: bind pending pods to nodes, or say why they cannot be placed."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from clusters.local.controllers.base import ControllerBase, Obj, age_key, is_terminating, ref_of
from clusters.local.scheduler import Unschedulable, schedule


class Binding(ControllerBase):
    """Runs the scheduler over unbound pods and records PodScheduled conditions."""

    # ---- scheduling -----------------------------------------------------------------------
    def _schedule(self) -> list[str]:
        """Bind every pending pod the scheduler can place; explain the ones it cannot."""
        nodes = self.store.list("Node")
        pods = [p for p in self.store.list("Pod") if not is_terminating(p)]
        bound = [p for p in pods if p["spec"].get("nodeName")]
        namespaces = self.store.list("Namespace")
        events: list[str] = []
        for pod in sorted((p for p in pods if not p["spec"].get("nodeName")), key=age_key):
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
            events.append(f"scheduled pod {ref_of(pod)} to {node}")
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
        return [f"pod {ref_of(pod)} is unschedulable: {message}"]


def _with_condition(status: Mapping[str, Any], condition: Obj) -> Obj:
    """``status`` with the condition of the same type replaced (or added)."""
    rest: Iterable[Obj] = (c for c in status.get("conditions") or []
                           if c.get("type") != condition["type"])
    return {**status, "conditions": [condition, *rest]}
