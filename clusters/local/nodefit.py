"""Node-level fit: whether a node may take a pod at all, judged by the node alone.

These are kube-scheduler's NodeUnschedulable, TaintToleration and NodeAffinity filters
(spec.nodeSelector and required node affinity). The DaemonSet controller uses the same
checks to pick its nodes, and topology spread uses them to decide which nodes count, so
they live apart from the pod-to-pod rules in :mod:`clusters.local.affinity`. The small
accessors at the top read API objects the way every scheduling module needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clusters.local.selectors import matches_selector

Obj = dict[str, Any]


# ---- small accessors --------------------------------------------------------------------
def name_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("spec") or {})


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
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
    tolerations = spec_of(pod).get("tolerations") or []
    for taint in spec_of(node).get("taints") or []:
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
    labels = labels_of(node)
    node_fields = {"metadata.name": name_of(node)}
    return all(_expression_holds(e, labels) for e in exprs) and all(
        _expression_holds(f, node_fields) for f in fields)


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """spec.nodeSelector and required node affinity (terms ORed) both hold for the node."""
    spec = spec_of(pod)
    labels = labels_of(node)
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
    if spec_of(node).get("unschedulable") and not tolerates(
            spec_of(pod).get("tolerations") or [],
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not matches_node_affinity(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None
