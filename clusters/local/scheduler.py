"""Choose a node for a pod the way kube-scheduler's default plugins would.

Why not "round robin": the acceptance fixtures place pods with ``topologySpreadConstraints``
and required pod (anti-)affinity, and learners read ``Pending`` messages, so the local
engine must honour the same rules and explain a failure in the scheduler's own words::

    0/3 nodes are available: 1 node(s) had untolerated taint
    {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector.

Filtering runs the upstream plugins' checks in their order (unschedulable, taints, node
affinity, host ports, topology spread, inter-pod affinity); each rejected node counts once,
under the first check it failed. Scoring is deterministic: soft spread constraints and
preferred (anti-)affinity, then spreading pods of one owner, then avoiding
PreferNoSchedule taints, then the node with fewest pods, then the node name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from clusters.errors import ClusterError
from clusters.local.affinity import View, affinity_score, inter_pod_reason, spread_reason, spreads
from clusters.local.nodefit import (
    Obj,
    labels_of,
    name_of,
    namespace_of,
    node_filter_reason,
    spec_of,
    tolerates,
)

__all__ = ["HOSTNAME", "NS_NAME_LABEL", "Unschedulable", "node_filter_reason", "schedule",
           "tolerates"]

HOSTNAME = "kubernetes.io/hostname"
NS_NAME_LABEL = "kubernetes.io/metadata.name"


class Unschedulable(ClusterError):
    """No node fits the pod; the message reads like the scheduler's FailedScheduling event."""

    def __init__(self, message: str, reasons: Mapping[str, int] | None = None) -> None:
        self.reasons = dict(reasons or {})
        super().__init__(message)


# ---- host ports -------------------------------------------------------------------------
def _ports(pod: Mapping[str, Any]) -> set[tuple[int, str]]:
    """The host ports the pod asks for, as (port, protocol); a node cannot give one twice."""
    return {(int(p["hostPort"]), str(p.get("protocol") or "TCP"))
            for c in spec_of(pod).get("containers") or [] for p in c.get("ports") or []
            if p.get("hostPort")}


# ---- scoring ------------------------------------------------------------------------------
def _controller_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _siblings(pod: Obj, other: Obj) -> bool:
    """Pods of one owner, or (bare pods) of one namespace with the same non-empty labels."""
    uid = _controller_uid(pod)
    if uid is not None:
        return _controller_uid(other) == uid
    return (namespace_of(pod) == namespace_of(other) and bool(labels_of(pod))
            and labels_of(pod) == labels_of(other))


def _normalise(raw: dict[str, int], higher_is_better: bool) -> dict[str, int]:
    lo, hi = min(raw.values()), max(raw.values())
    if hi == lo:
        return dict.fromkeys(raw, 0)
    span = hi - lo
    return {n: 100 * (v - lo if higher_is_better else hi - v) // span for n, v in raw.items()}


def _rank(pod: Obj, feasible: list[Obj], view: View) -> list[Obj]:
    soft = spreads(pod, view, hard=False)
    spread_raw: dict[str, int] = {}
    for node in feasible:
        total = 0
        for s in soft:
            value = labels_of(node).get(s.key)
            total += s.counts.get(value, 0) if value is not None else len(view.pods) + 1
        spread_raw[name_of(node)] = total
    spread = _normalise(spread_raw, higher_is_better=False)
    affinity = _normalise({name_of(n): affinity_score(pod, n, view) for n in feasible},
                          higher_is_better=True)
    on_node: Counter[str] = Counter(str(spec_of(p).get("nodeName")) for p in view.pods)
    siblings: Counter[str] = Counter(
        str(spec_of(p).get("nodeName")) for p in view.pods if _siblings(pod, p))

    def key(node: Obj) -> tuple[int, int, int, int, str]:
        name = name_of(node)
        prefer_no = sum(1 for t in spec_of(node).get("taints") or []
                        if t.get("effect") == "PreferNoSchedule"
                        and not tolerates(spec_of(pod).get("tolerations") or [], t))
        return (-(spread[name] + affinity[name]), siblings[name], prefer_no, on_node[name], name)

    return sorted(feasible, key=key)


# ---- the entry point ----------------------------------------------------------------------
def _failure_message(total: int, reasons: Counter[str]) -> str:
    if total == 0:
        return "0/0 nodes are available: no nodes available to schedule pods."
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


def schedule(pod: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]],
             *, namespaces: Sequence[Mapping[str, Any]] = ()) -> str:
    """The name of the node the pod should run on; raises :class:`Unschedulable`.

    ``pods`` are the pods already bound to nodes (others are ignored). ``namespaces`` are the
    Namespace objects, needed only for affinity terms with a ``namespaceSelector``.
    """
    given = spec_of(pod).get("nodeName")
    if given:
        return str(given)
    ns_labels = {name_of(n): {**labels_of(n), NS_NAME_LABEL: name_of(n)} for n in namespaces}
    me = (namespace_of(pod), name_of(pod))
    bound = [p for p in pods if spec_of(p).get("nodeName")
             and not p.get("metadata", {}).get("deletionTimestamp")
             and (namespace_of(p), name_of(p)) != me]
    view = View({name_of(n): n for n in nodes}, bound, ns_labels)
    hard = spreads(pod, view, hard=True)
    wanted_ports = _ports(pod)
    reasons: Counter[str] = Counter()
    feasible: list[Obj] = []
    for node in sorted(nodes, key=name_of):
        reason = node_filter_reason(pod, node)
        if reason is None and wanted_ports and any(
                wanted_ports & _ports(p) for p in bound
                if spec_of(p).get("nodeName") == name_of(node)):
            reason = "node(s) didn't have free ports for the requested pod ports"
        reason = reason or spread_reason(hard, node) or inter_pod_reason(pod, node, view)
        if reason is None:
            feasible.append(node)
        else:
            reasons[reason] += 1
    if not feasible:
        raise Unschedulable(_failure_message(len(nodes), reasons), reasons)
    return name_of(_rank(pod, feasible, view)[0])
