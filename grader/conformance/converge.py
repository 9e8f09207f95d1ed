"""The convergence rule: what must hold in the API before a probe may run.

From the README: every pod of the fixture's namespaces is Running with all containers
started and Ready (unless annotated ``acceptance/never-ready: "true"``); every Deployment
has ``readyReplicas == replicas`` and no pod a scale-down or a ``delete`` removed still
exists; every Ingress of class ``nginx`` has an address. The wait has a deadline (120 s)
and, when it is reached, says what was still pending.

Convergence is about API objects only; it never looks at the data plane.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clusters.engine import Cluster
from clusters.errors import ClusterError
from clusters.proc import wait_until
from grader.conformance import readers
from grader.conformance.model import ObjectRef

DEADLINE = 120.0


def pending(cluster: Cluster, namespaces: Sequence[str],
            gone: Sequence[ObjectRef] = ()) -> list[str]:
    """What still keeps the cluster from having converged (empty when it has)."""
    waiting: list[str] = []
    for ns in namespaces:
        pods = cluster.get("Pod", ns)
        for pod in pods:
            name = f"pod {ns}/{readers.meta(pod).get('name')}"
            if readers.terminating(pod):
                waiting.append(f"{name} is still terminating")
            elif not readers.pod_started(pod):
                phase = (pod.get("status") or {}).get("phase") or "Pending"
                waiting.append(f"{name} is not running yet ({phase})")
            elif not readers.pod_ready(pod) and not readers.never_ready(pod):
                waiting.append(f"{name} is not Ready")
        waiting += _deployments(cluster, ns, pods)
        waiting += _ingresses(cluster, ns)
    for ref in gone:
        if _exists(cluster, ref):
            waiting.append(f"{ref} still exists")
    return waiting


def _deployments(cluster: Cluster, ns: str, pods: list[dict[str, Any]]) -> list[str]:
    waiting = []
    for dep in cluster.get("Deployment", ns):
        name = readers.meta(dep).get("name")
        want = int((dep.get("spec") or {}).get("replicas", 1))
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        if ready != want:
            waiting.append(f"deployment {ns}/{name}: {ready}/{want} replicas ready")
            continue
        labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if labels:
            mine = [p for p in pods if all((readers.meta(p).get("labels") or {}).get(k) == v
                                           for k, v in labels.items())]
            if len(mine) > want:
                waiting.append(f"deployment {ns}/{name}: {len(mine)} pods exist, "
                               f"{want} wanted (old pods not gone yet)")
    return waiting


def _ingresses(cluster: Cluster, ns: str) -> list[str]:
    try:
        ingresses = cluster.get("Ingress", ns)
    except (ClusterError, ValueError):  # the engine does not know Ingresses at all
        return []
    return [f"ingress {ns}/{readers.meta(i).get('name')} has no address yet"
            for i in ingresses
            if (i.get("spec") or {}).get("ingressClassName") == "nginx"
            and not readers.ingress_addresses(i)]


def _exists(cluster: Cluster, ref: ObjectRef) -> bool:
    try:
        return bool(cluster.get(ref.kind, ref.namespace, ref.name))
    except ClusterError:
        return False


def converge(cluster: Cluster, namespaces: Sequence[str], *, gone: Sequence[ObjectRef] = (),
             timeout: float = DEADLINE) -> None:
    """Wait until :func:`pending` is empty; WaitTimeout (with what was pending) otherwise."""
    wait_until(
        "the fixture to converge", lambda: pending(cluster, namespaces, gone),
        lambda left: not left, timeout=timeout,
        describe=lambda left: "; ".join(left[:8]) + (f" (+{len(left) - 8} more)"
                                                     if len(left) > 8 else ""),
    )
