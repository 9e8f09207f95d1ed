"""What lab 04's checks share: the matrix every check judges, the cells each task names,
and reading the learner's NetworkPolicies as the cluster stored them.

The matrix covers every pod of ``lab04`` and ``monitoring`` on the four ports the lab's
pods serve, by pod IP: the ports are the pods' own, the ones policies judge (through a
Service, the api's port 80 would stand for its pods' 8080). The DNS checks go through a
Service, the kube-dns ClusterIP. The matrix is probed once per run (the ``netpol``
fixture caches it per argument set, so every check must ask with the same arguments:
:func:`lab_matrix`) and each check then judges the cells of its own requirement. A check
therefore fails only for the cells of its task, and each wrong cell comes with the rule
that lets it through or the policies that stop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.policy import CellSpec, cells

NS = "lab04"
MONITORING = "monitoring"
NAMESPACES = (NS, MONITORING)
#: frontend 80, api 8080, db 5432, everybody's metrics 9090 (the scraper's web page too).
PORTS = (80, 8080, 5432, 9090)
VIA = ("pod-ip",)

FRONTEND = f"{NS}/app=frontend"
API = f"{NS}/app=api"
DB = f"{NS}/app=db"
EVERY_LAB04_POD = f"{NS}/*"
SCRAPER = f"{MONITORING}/app=scraper"

FRONTEND_TO_API = cells(FRONTEND, API, 8080)
API_TO_DB = cells(API, DB, 5432)
SCRAPING = cells(SCRAPER, EVERY_LAB04_POD, 9090)
#: Every path a task opens; whatever else touches lab04 must be blocked.
ALLOWED: tuple[CellSpec, ...] = (FRONTEND_TO_API, API_TO_DB, SCRAPING)

EXPECT_COMMAND = ("lab probe matrix --namespaces lab04,monitoring --ports 80,8080,5432,9090 "
                  "--expect")


def lab_matrix(netpol: Any) -> Any:
    """The lab's matrix (a ``PolicyMatrix``): probed by the first check that asks, then
    reused by the others."""
    return netpol.matrix(NAMESPACES, PORTS, via=VIA)


# --------------------------------------------------------------------------- the policies


def policies(cluster: Any) -> list[dict[str, Any]]:
    """The NetworkPolicies of lab04, as the cluster stored them (policyTypes defaulted)."""
    found = [dict(p) for p in cluster.get("NetworkPolicy", NS)]
    return sorted(found, key=lambda p: str(p["metadata"]["name"]))


def selects_every_pod(policy: Mapping[str, Any]) -> bool:
    """``podSelector: {}``: no label and no expression, so every pod of the namespace,
    including pods created later."""
    selector = (policy.get("spec") or {}).get("podSelector") or {}
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    """The directions a stored policy counts for (the API server fills policyTypes in)."""
    spec = policy.get("spec") or {}
    given = spec.get("policyTypes")
    if given:
        return [str(t) for t in given]
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def describe_selector(selector: Mapping[str, Any] | None) -> str:
    """``{}`` (every pod), ``app=api``, ``app=api, tier In (a,b)``."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        values = ",".join(str(v) for v in expr.get("values") or ())
        parts.append(f"{expr.get('key')} {expr.get('operator')}"
                     + (f" ({values})" if values else ""))
    return ", ".join(parts) if parts else "{} (every pod)"


def describe_policy(policy: Mapping[str, Any]) -> str:
    """``default-deny: podSelector {} (every pod), policyTypes [Ingress]``."""
    spec = policy.get("spec") or {}
    return (f"{policy['metadata']['name']}: podSelector "
            f"{describe_selector(spec.get('podSelector'))}, policyTypes "
            f"[{', '.join(policy_types(policy))}]")
