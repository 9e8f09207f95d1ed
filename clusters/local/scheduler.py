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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusters.errors import ClusterError
from clusters.local.store import matches_selector

Obj = dict[str, Any]

HOSTNAME = "kubernetes.io/hostname"
NS_NAME_LABEL = "kubernetes.io/metadata.name"


class Unschedulable(ClusterError):
    """No node fits the pod; the message reads like the scheduler's FailedScheduling event."""

    def __init__(self, message: str, reasons: Mapping[str, int] | None = None) -> None:
        self.reasons = dict(reasons or {})
        super().__init__(message)


# ---- small accessors --------------------------------------------------------------------
def _name(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _ns(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("spec") or {})


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A null selector selects nothing; an empty one selects everything (API semantics)."""
    return selector is not None and matches_selector(labels, dict(selector))


# ---- taints and tolerations -------------------------------------------------------------
def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """True when one toleration matches the taint (key, operator Equal/Exists, effect)."""
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        operator = tol.get("operator") or "Equal"
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod: Mapping[str, Any], node: Mapping[str, Any],
                      effects: Sequence[str] = ("NoSchedule", "NoExecute")) -> Obj | None:
    """The first taint of ``node`` with one of ``effects`` that the pod does not tolerate."""
    tolerations = _spec(pod).get("tolerations") or []
    for taint in _spec(node).get("taints") or []:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return dict(taint)
    return None


# ---- node affinity ----------------------------------------------------------------------
def _expression_holds(expr: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    wanted = [str(v) for v in expr.get("values") or []]
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def _term_holds(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: all expressions and fields must hold; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = _labels(node)
    node_fields = {"metadata.name": _name(node)}
    return all(_expression_holds(e, labels) for e in exprs) and all(
        _expression_holds(f, node_fields) for f in fields)


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """spec.nodeSelector and required node affinity (terms ORed) both hold for the node."""
    spec = _spec(pod)
    labels = _labels(node)
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(_term_holds(t, node) for t in required.get("nodeSelectorTerms") or [])


def node_filter_reason(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why the node is unfit for the pod by node-level rules alone (None: it fits).

    These are the checks a DaemonSet controller also uses to pick its nodes.
    """
    if _spec(node).get("unschedulable") and not tolerates(
            _spec(pod).get("tolerations") or [],
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not matches_node_affinity(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


# ---- the cluster as the scheduler sees it -----------------------------------------------
@dataclass
class _View:
    nodes: dict[str, Obj]
    pods: list[Obj]                     # bound, not terminating, not the pod itself
    ns_labels: dict[str, dict[str, str]]

    def node_of(self, pod: Mapping[str, Any]) -> Obj | None:
        return self.nodes.get(str(_spec(pod).get("nodeName")))

    def domain(self, node: Mapping[str, Any] | None, key: str) -> str | None:
        return None if node is None else _labels(node).get(key)

    def term_namespaces(self, term: Mapping[str, Any], owner_ns: str) -> set[str] | None:
        """Namespaces an affinity term covers (None: all of them)."""
        names = set(term.get("namespaces") or [])
        selector = term.get("namespaceSelector")
        if selector is None:
            return names or {owner_ns}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            return None
        names.update(ns for ns, labels in self.ns_labels.items() if _selects(selector, labels))
        return names

    def term_matches(self, term: Mapping[str, Any], owner_ns: str, pod: Mapping[str, Any]) -> bool:
        namespaces = self.term_namespaces(term, owner_ns)
        if namespaces is not None and _ns(pod) not in namespaces:
            return False
        return _selects(term.get("labelSelector"), _labels(pod))


def _affinity_terms(pod: Mapping[str, Any], kind: str, mode: str) -> list[Obj]:
    """kind: podAffinity/podAntiAffinity; mode: required/preferred (weight kept)."""
    section = (_spec(pod).get("affinity") or {}).get(kind) or {}
    if mode == "required":
        required = section.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        return [dict(t) for t in required]
    return [{"weight": int(w.get("weight", 1)), **(w.get("podAffinityTerm") or {})}
            for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]


def _ports(pod: Mapping[str, Any]) -> set[tuple[int, str]]:
    return {(int(p["hostPort"]), str(p.get("protocol") or "TCP"))
            for c in _spec(pod).get("containers") or [] for p in c.get("ports") or []
            if p.get("hostPort")}


# ---- topology spread --------------------------------------------------------------------
@dataclass
class _Spread:
    constraint: Obj
    selector: Obj | None
    counts: Counter[str]
    domains: set[str]
    self_match: int

    @property
    def key(self) -> str:
        return str(self.constraint.get("topologyKey", ""))

    def global_min(self) -> int:
        if not self.domains:
            return 0
        min_domains = int(self.constraint.get("minDomains") or 1)
        if len(self.domains) < min_domains:
            return 0
        return min(self.counts.get(d, 0) for d in self.domains)


def _spreads(pod: Obj, view: _View, hard: bool) -> list[_Spread]:
    out = []
    labels = _labels(pod)
    for c in _spec(pod).get("topologySpreadConstraints") or []:
        if (c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule") != hard:
            continue
        selector = c.get("labelSelector")
        keys = [k for k in c.get("matchLabelKeys") or [] if k in labels]
        if selector is not None and keys:
            exprs = [*(selector.get("matchExpressions") or []),
                     *({"key": k, "operator": "In", "values": [labels[k]]} for k in keys)]
            selector = {**selector, "matchExpressions": exprs}
        key = str(c.get("topologyKey", ""))
        eligible = {n for n, node in view.nodes.items() if key in _labels(node)
                    and (c.get("nodeAffinityPolicy", "Honor") != "Honor"
                         or matches_node_affinity(pod, node))
                    and (c.get("nodeTaintsPolicy", "Ignore") != "Honor"
                         or untolerated_taint(pod, node) is None)}
        counts: Counter[str] = Counter()
        for other in view.pods:
            node_name = str(_spec(other).get("nodeName"))
            if (node_name in eligible and _ns(other) == _ns(pod)
                    and _selects(selector, _labels(other))):
                counts[_labels(view.nodes[node_name])[key]] += 1
        domains = {_labels(view.nodes[n])[key] for n in eligible}
        out.append(_Spread(dict(c), selector, counts, domains,
                           int(_selects(selector, labels))))
    return out


def _spread_reason(spreads: list[_Spread], node: Obj) -> str | None:
    for s in spreads:
        value = _labels(node).get(s.key)
        if value is None:
            return "node(s) didn't match pod topology spread constraints (missing required label)"
        skew = s.counts.get(value, 0) + s.self_match - s.global_min()
        if skew > int(s.constraint.get("maxSkew", 1)):
            return "node(s) didn't match pod topology spread constraints"
    return None


# ---- inter-pod affinity -----------------------------------------------------------------
def _inter_pod_reason(pod: Obj, node: Obj, view: _View) -> str | None:
    """Upstream's order: the pod's affinity, its anti-affinity, then existing pods' anti."""
    pod_ns = _ns(pod)
    affinity = _affinity_terms(pod, "podAffinity", "required")
    if affinity:
        def satisfied(term: Obj) -> bool:
            key = str(term.get("topologyKey", ""))
            here = _labels(node).get(key)
            return here is not None and any(
                view.domain(view.node_of(o), key) == here and view.term_matches(term, pod_ns, o)
                for o in view.pods)
        if not all(satisfied(t) for t in affinity):
            # The first pod of a group that selects itself may go anywhere, as upstream.
            nobody = not any(view.term_matches(t, pod_ns, o) for t in affinity for o in view.pods)
            self_match = all(view.term_matches(t, pod_ns, pod) for t in affinity)
            if not (nobody and self_match):
                return "node(s) didn't match pod affinity rules"
    for term in _affinity_terms(pod, "podAntiAffinity", "required"):
        key = str(term.get("topologyKey", ""))
        here = _labels(node).get(key)
        if here is not None and any(
                view.domain(view.node_of(o), key) == here and view.term_matches(term, pod_ns, o)
                for o in view.pods):
            return "node(s) didn't match pod anti-affinity rules"
    # Existing pods' required anti-affinity keeps the incoming pod out of their domains.
    for other in view.pods:
        for term in _affinity_terms(other, "podAntiAffinity", "required"):
            key = str(term.get("topologyKey", ""))
            there = view.domain(view.node_of(other), key)
            if (there is not None and _labels(node).get(key) == there
                    and view.term_matches(term, _ns(other), pod)):
                return "node(s) didn't satisfy existing pods anti-affinity rules"
    return None


def _affinity_score(pod: Obj, node: Obj, view: _View) -> int:
    """Preferred (anti-)affinity weight of the node, both directions, like InterPodAffinity."""
    score = 0
    labels = _labels(node)
    for sign, kind in ((1, "podAffinity"), (-1, "podAntiAffinity")):
        for term in _affinity_terms(pod, kind, "preferred"):
            key = str(term.get("topologyKey", ""))
            if key not in labels:
                continue
            for other in view.pods:
                if (view.domain(view.node_of(other), key) == labels[key]
                        and view.term_matches(term, _ns(pod), other)):
                    score += sign * term["weight"]
        for other in view.pods:
            for term in _affinity_terms(other, kind, "preferred"):
                key = str(term.get("topologyKey", ""))
                there = view.domain(view.node_of(other), key)
                if (there is not None and labels.get(key) == there
                        and view.term_matches(term, _ns(other), pod)):
                    score += sign * term["weight"]
    return score


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
    return _ns(pod) == _ns(other) and bool(_labels(pod)) and _labels(pod) == _labels(other)


def _normalise(raw: dict[str, int], higher_is_better: bool) -> dict[str, int]:
    lo, hi = min(raw.values()), max(raw.values())
    if hi == lo:
        return dict.fromkeys(raw, 0)
    span = hi - lo
    return {n: 100 * (v - lo if higher_is_better else hi - v) // span for n, v in raw.items()}


def _rank(pod: Obj, feasible: list[Obj], view: _View) -> list[Obj]:
    soft = _spreads(pod, view, hard=False)
    spread_raw: dict[str, int] = {}
    for node in feasible:
        total = 0
        for s in soft:
            value = _labels(node).get(s.key)
            total += s.counts.get(value, 0) if value is not None else len(view.pods) + 1
        spread_raw[_name(node)] = total
    spread = _normalise(spread_raw, higher_is_better=False)
    affinity = _normalise({_name(n): _affinity_score(pod, n, view) for n in feasible},
                          higher_is_better=True)
    on_node: Counter[str] = Counter(str(_spec(p).get("nodeName")) for p in view.pods)
    siblings: Counter[str] = Counter(
        str(_spec(p).get("nodeName")) for p in view.pods if _siblings(pod, p))

    def key(node: Obj) -> tuple[int, int, int, int, str]:
        name = _name(node)
        prefer_no = sum(1 for t in _spec(node).get("taints") or []
                        if t.get("effect") == "PreferNoSchedule"
                        and not tolerates(_spec(pod).get("tolerations") or [], t))
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
    given = _spec(pod).get("nodeName")
    if given:
        return str(given)
    ns_labels = {_name(n): {**_labels(n), NS_NAME_LABEL: _name(n)} for n in namespaces}
    me = (_ns(pod), _name(pod))
    bound = [p for p in pods if _spec(p).get("nodeName")
             and not p.get("metadata", {}).get("deletionTimestamp")
             and (_ns(p), _name(p)) != me]
    view = _View({_name(n): n for n in nodes}, bound, ns_labels)
    hard = _spreads(pod, view, hard=True)
    wanted_ports = _ports(pod)
    reasons: Counter[str] = Counter()
    feasible: list[Obj] = []
    for node in sorted(nodes, key=_name):
        reason = node_filter_reason(pod, node)
        if reason is None and wanted_ports and any(
                wanted_ports & _ports(p) for p in bound
                if _spec(p).get("nodeName") == _name(node)):
            reason = "node(s) didn't have free ports for the requested pod ports"
        reason = reason or _spread_reason(hard, node) or _inter_pod_reason(pod, node, view)
        if reason is None:
            feasible.append(node)
        else:
            reasons[reason] += 1
    if not feasible:
        raise Unschedulable(_failure_message(len(nodes), reasons), reasons)
    return _name(_rank(pod, feasible, view)[0])
