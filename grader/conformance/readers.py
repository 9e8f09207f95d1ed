"""Reading cluster state the way the acceptance format defines its words.

"Ready", "terminating", "matches the selector", "the node's InternalIP": each is used by
placeholders, convergence and expectations alike, so each is defined once, here, on plain
API objects (any engine's ``Cluster.get`` returns them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusters.engine import Cluster, find

NEVER_READY = "acceptance/never-ready"


class Missing(Exception):
    """A run-time value the case needs does not exist (no such pod, Service, port)."""


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def condition(obj: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or ())


def terminating(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return condition(pod, "Ready") and not terminating(pod)


def never_ready(pod: Mapping[str, Any]) -> bool:
    return str((meta(pod).get("annotations") or {}).get(NEVER_READY, "")).lower() == "true"


def pod_started(pod: Mapping[str, Any]) -> bool:
    """Running, with every container started (kubelet's ``started``, else a running state)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    statuses = status.get("containerStatuses") or []
    wanted = len((pod.get("spec") or {}).get("containers") or ())
    if len(statuses) < wanted:
        return False
    return all(s.get("started", "running" in (s.get("state") or {})) for s in statuses)


def match_selector(labels: Mapping[str, str], selector: str) -> bool:
    """kubectl's label selector syntax: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``; comma = AND.

    Set-based terms (``in``, ``notin``) are accepted too: ``env in (a,b)``.
    """
    return all(_holds(labels, term) for term in _terms(selector))


def _terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    terms.append(current.strip())
    return [t for t in terms if t]


def _holds(labels: Mapping[str, str], term: str) -> bool:
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            present = labels.get(key.strip()) == value.strip()
            return not present if op == "!=" else present
    words = term.split(None, 1)
    if len(words) == 2 and words[1].lower().startswith(("in", "notin")):
        op, _, rest = words[1].partition("(")
        values = {v.strip() for v in rest.rstrip(")").split(",")}
        inside = labels.get(words[0]) in values
        return not inside if op.strip().lower() == "notin" else inside
    if term.startswith("!"):
        return term[1:].strip() not in labels
    return term in labels


def split_ref(ref: str, what: str) -> tuple[str, str]:
    ns, sep, name = str(ref).partition("/")
    if not sep or not ns or not name:
        raise Missing(f"{what} {ref!r}: expected NAMESPACE/NAME")
    return ns, name


def one(cluster: Cluster, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    found = find(cluster, kind, namespace, name)
    if not found:
        where = f"{namespace}/{name}" if namespace else name
        raise Missing(f"{kind} {where} does not exist")
    return found[0]


def pod(cluster: Cluster, ref: str) -> dict[str, Any]:
    return one(cluster, "Pod", *split_ref(ref, "pod"))


def pod_ip(cluster: Cluster, ref: str) -> str:
    ip = str((pod(cluster, ref).get("status") or {}).get("podIP") or "")
    if not ip:
        raise Missing(f"pod {ref} has no IP yet")
    return ip


def ready_pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Pods of ``namespace`` matching ``selector`` that are Ready and not terminating."""
    return [p for p in cluster.get("Pod", namespace)
            if pod_ready(p) and match_selector(meta(p).get("labels") or {}, selector)]


def internal_ip(node: Mapping[str, Any]) -> str:
    for address in (node.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return ""


def ready_nodes(cluster: Cluster) -> list[dict[str, Any]]:
    return [n for n in cluster.get("Node") if condition(n, "Ready")]


def schedulable(node: Mapping[str, Any]) -> bool:
    spec = node.get("spec") or {}
    return not spec.get("unschedulable") and not any(
        t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or ())


def node_ip_of_pod(cluster: Cluster, ref: str) -> str:
    node_name = (pod(cluster, ref).get("spec") or {}).get("nodeName")
    if not node_name:
        raise Missing(f"pod {ref} is not scheduled to a node yet")
    ip = internal_ip(one(cluster, "Node", None, str(node_name)))
    if not ip:
        raise Missing(f"node {node_name} has no InternalIP")
    return ip


def service(cluster: Cluster, ref: str) -> dict[str, Any]:
    return one(cluster, "Service", *split_ref(ref, "service"))


def cluster_ip(cluster: Cluster, ref: str) -> str:
    ip = str((service(cluster, ref).get("spec") or {}).get("clusterIP") or "")
    if not ip or ip == "None":
        raise Missing(f"Service {ref} has no ClusterIP ({ip or 'none allocated'})")
    return ip


def node_port(cluster: Cluster, ref: str, port_name: str) -> int:
    ports = (service(cluster, ref).get("spec") or {}).get("ports") or []
    for port in ports:
        if port.get("name", "") == port_name:
            if not port.get("nodePort"):
                raise Missing(f"port {port_name!r} of Service {ref} has no nodePort")
            return int(port["nodePort"])
    names = ", ".join(repr(p.get("name", "")) for p in ports) or "none"
    raise Missing(f"Service {ref} has no port named {port_name!r} (ports: {names})")


def ingress_addresses(obj: Mapping[str, Any]) -> list[str]:
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(e.get("ip") or e.get("hostname")) for e in entries
            if e.get("ip") or e.get("hostname")]
