"""Pod-to-pod placement rules: inter-pod (anti-)affinity and topology spread constraints.

Unlike the node-level checks in :mod:`clusters.local.nodefit`, these depend on where other
pods already run, so they read a :class:`View` of the cluster: nodes by name, the bound
pods, and namespace labels for affinity terms with a ``namespaceSelector``. The
scheduler uses the ``*_reason`` functions as filters and :func:`affinity_score` and the
soft :func:`spreads` when it ranks the nodes that passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clusters.local.nodefit import (
    Obj,
    labels_of,
    matches_node_affinity,
    namespace_of,
    selects,
    spec_of,
    untolerated_taint,
)


# ---- the cluster as the scheduler sees it -----------------------------------------------
@dataclass
class View:
    """The cluster as one scheduling decision sees it: nodes, bound pods, namespace labels."""

    nodes: dict[str, Obj]
    pods: list[Obj]                     # bound, not terminating, not the pod itself
    ns_labels: dict[str, dict[str, str]]

    def node_of(self, pod: Mapping[str, Any]) -> Obj | None:
        return self.nodes.get(str(spec_of(pod).get("nodeName")))

    def domain(self, node: Mapping[str, Any] | None, key: str) -> str | None:
        return None if node is None else labels_of(node).get(key)

    def term_namespaces(self, term: Mapping[str, Any], owner_ns: str) -> set[str] | None:
        """Namespaces an affinity term covers (None: all of them)."""
        names = set(term.get("namespaces") or [])
        selector = term.get("namespaceSelector")
        if selector is None:
            return names or {owner_ns}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            return None
        names.update(ns for ns, labels in self.ns_labels.items() if selects(selector, labels))
        return names

    def term_matches(self, term: Mapping[str, Any], owner_ns: str, pod: Mapping[str, Any]) -> bool:
        namespaces = self.term_namespaces(term, owner_ns)
        if namespaces is not None and namespace_of(pod) not in namespaces:
            return False
        return selects(term.get("labelSelector"), labels_of(pod))


def _affinity_terms(pod: Mapping[str, Any], kind: str, mode: str) -> list[Obj]:
    """kind: podAffinity/podAntiAffinity; mode: required/preferred (weight kept)."""
    section = (spec_of(pod).get("affinity") or {}).get(kind) or {}
    if mode == "required":
        required = section.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        return [dict(t) for t in required]
    return [{"weight": int(w.get("weight", 1)), **(w.get("podAffinityTerm") or {})}
            for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]


# ---- topology spread --------------------------------------------------------------------
@dataclass
class Spread:
    """One topology spread constraint, with its matching pods counted per domain."""

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


def spreads(pod: Obj, view: View, hard: bool) -> list[Spread]:
    out = []
    labels = labels_of(pod)
    for c in spec_of(pod).get("topologySpreadConstraints") or []:
        if (c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule") != hard:
            continue
        selector = c.get("labelSelector")
        keys = [k for k in c.get("matchLabelKeys") or [] if k in labels]
        if selector is not None and keys:
            exprs = [*(selector.get("matchExpressions") or []),
                     *({"key": k, "operator": "In", "values": [labels[k]]} for k in keys)]
            selector = {**selector, "matchExpressions": exprs}
        key = str(c.get("topologyKey", ""))
        eligible = {n for n, node in view.nodes.items() if key in labels_of(node)
                    and (c.get("nodeAffinityPolicy", "Honor") != "Honor"
                         or matches_node_affinity(pod, node))
                    and (c.get("nodeTaintsPolicy", "Ignore") != "Honor"
                         or untolerated_taint(pod, node) is None)}
        counts: Counter[str] = Counter()
        for other in view.pods:
            node_name = str(spec_of(other).get("nodeName"))
            if (node_name in eligible and namespace_of(other) == namespace_of(pod)
                    and selects(selector, labels_of(other))):
                counts[labels_of(view.nodes[node_name])[key]] += 1
        domains = {labels_of(view.nodes[n])[key] for n in eligible}
        out.append(Spread(dict(c), selector, counts, domains,
                           int(selects(selector, labels))))
    return out


def spread_reason(spreads: list[Spread], node: Obj) -> str | None:
    for s in spreads:
        value = labels_of(node).get(s.key)
        if value is None:
            return "node(s) didn't match pod topology spread constraints (missing required label)"
        skew = s.counts.get(value, 0) + s.self_match - s.global_min()
        if skew > int(s.constraint.get("maxSkew", 1)):
            return "node(s) didn't match pod topology spread constraints"
    return None


# ---- inter-pod affinity -----------------------------------------------------------------
def inter_pod_reason(pod: Obj, node: Obj, view: View) -> str | None:
    """Upstream's order: the pod's affinity, its anti-affinity, then existing pods' anti."""
    pod_ns = namespace_of(pod)
    affinity = _affinity_terms(pod, "podAffinity", "required")
    if affinity:
        def satisfied(term: Obj) -> bool:
            key = str(term.get("topologyKey", ""))
            here = labels_of(node).get(key)
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
        here = labels_of(node).get(key)
        if here is not None and any(
                view.domain(view.node_of(o), key) == here and view.term_matches(term, pod_ns, o)
                for o in view.pods):
            return "node(s) didn't match pod anti-affinity rules"
    # Existing pods' required anti-affinity keeps the incoming pod out of their domains.
    for other in view.pods:
        for term in _affinity_terms(other, "podAntiAffinity", "required"):
            key = str(term.get("topologyKey", ""))
            there = view.domain(view.node_of(other), key)
            if (there is not None and labels_of(node).get(key) == there
                    and view.term_matches(term, namespace_of(other), pod)):
                return "node(s) didn't satisfy existing pods anti-affinity rules"
    return None


def affinity_score(pod: Obj, node: Obj, view: View) -> int:
    """Preferred (anti-)affinity weight of the node, both directions, like InterPodAffinity."""
    score = 0
    labels = labels_of(node)
    for sign, kind in ((1, "podAffinity"), (-1, "podAntiAffinity")):
        for term in _affinity_terms(pod, kind, "preferred"):
            key = str(term.get("topologyKey", ""))
            if key not in labels:
                continue
            for other in view.pods:
                if (view.domain(view.node_of(other), key) == labels[key]
                        and view.term_matches(term, namespace_of(pod), other)):
                    score += sign * term["weight"]
        for other in view.pods:
            for term in _affinity_terms(other, kind, "preferred"):
                key = str(term.get("topologyKey", ""))
                there = view.domain(view.node_of(other), key)
                if (there is not None and labels.get(key) == there
                        and view.term_matches(term, namespace_of(other), pod)):
                    score += sign * term["weight"]
    return score
