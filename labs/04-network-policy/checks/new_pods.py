"""What lab 04's hidden checks share: pods added after the learner's policies.

A task names pods by their role, a label: frontend pods are the pods labelled
``app=frontend``, today's and tomorrow's. Policies fitted to the pods of the moment (a
selector on ``pod-template-hash``, on a label only today's pods carry, a ``NotIn`` list of
today's other pods) pass every visible check and still break on the next rollout. So when
grading, the hidden checks add pods of their own, after the policies are in place:

===================  ============  =====================================================
pod                  labels        serves
===================  ============  =====================================================
lab04/frontend-new   app=frontend  nginx on 80, metrics on 9090
lab04/api-new        app=api       HTTP on 8080, metrics on 9090
lab04/db-new         app=db        TCP on 5432, metrics on 9090
lab04/cache-new      app=cache     HTTP on 8080, metrics on 9090 (no task names it)
monitoring/          app=scraper   its web page on 9090
scraper-new
monitoring/          app=dashboard its web page on 9090 (not the scraper)
dashboard-new
===================  ============  =====================================================

Each also carries ``netlab.dev/grader=new-pod`` (so the checks can tell them apart) and no
other label. They are made bare, not by a Deployment, like a pod someone starts by hand or
another controller makes. The matrix of the lab (plus the new pods) is then probed afresh
and each hidden check judges the cells of its task that involve a new pod, with the rule
behind each wrong cell. The pods are deleted afterwards on every path (the next ``lab
check`` resets the namespaces anyway).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from policy_support import MONITORING, NAMESPACES, NS, PORTS, VIA

from clusters.errors import ClusterError, WaitTimeout
from grader.expectations import CheckFailed, Finding
from grader.matrix import MAX_WORKERS
from grader.policy import CellSpec, cells

MARK_KEY = "netlab.dev/grader"
MARK_VALUE = "new-pod"
MARK = f"{MARK_KEY}={MARK_VALUE}"
READY_TIMEOUT = 60.0
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def new(namespace: str, app: str | None = None) -> str:
    """The cell pattern of the new pods of ``namespace`` (with role ``app``, if given)."""
    return f"{namespace}/app={app},{MARK}" if app else f"{namespace}/{MARK}"


NEW_FRONTEND = new(NS, "frontend")
NEW_API = new(NS, "api")
NEW_DB = new(NS, "db")
NEW_SCRAPER = new(MONITORING, "scraper")
NEW_LAB04 = new(NS)
NEW_MONITORING = new(MONITORING)

#: The task's intent, for every hidden check's hint.
ROLES = ("A task names pods by their role label, app=frontend, app=api, app=db, app=scraper: "
         "every pod carrying it, now or after the next rollout, is one of them. Select pods "
         "and peers by that label alone, never by a label only today's pods carry "
         "(pod-template-hash, a version, a pod's name), and let the default deny, with "
         "podSelector: {}, cover every pod, present and future.")


def _http(name: str, port: int, port_name: str = "http") -> dict[str, Any]:
    return {"name": name, "image": AGNHOST,
            "args": ["netexec", f"--http-port={port}", "--udp-port=-1"],
            "ports": [{"name": port_name, "containerPort": port}]}


METRICS = _http("metrics", 9090, "metrics")
CONTAINERS: dict[str, list[dict[str, Any]]] = {
    "frontend": [{"name": "nginx", "image": "nginx:1.27",
                  "ports": [{"name": "http", "containerPort": 80}]}, METRICS],
    "api": [_http("api", 8080), METRICS],
    "db": [{"name": "db", "image": AGNHOST,
            "args": ["serve-hostname", "--tcp", "--http=false", "--port=5432"],
            "ports": [{"name": "postgres", "containerPort": 5432}]}, METRICS],
    "cache": [_http("cache", 8080), METRICS],
    "scraper": [_http("scraper", 9090, "web")],
    "dashboard": [_http("dashboard", 9090, "web")],
}
#: (namespace, role) of each new pod; its name is ``<role>-new``.
ROLES_ADDED = ((NS, "frontend"), (NS, "api"), (NS, "db"), (NS, "cache"),
               (MONITORING, "scraper"), (MONITORING, "dashboard"))


def new_pods() -> list[dict[str, Any]]:
    """The pods the hidden checks add (see the module docstring)."""
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"{role}-new", "namespace": ns,
                          "labels": {"app": role, MARK_KEY: MARK_VALUE}},
             "spec": {"terminationGracePeriodSeconds": 0, "containers": CONTAINERS[role]}}
            for ns, role in ROLES_ADDED]


@contextmanager
def pods_added(cluster: Any, timeout: float = READY_TIMEOUT) -> Iterator[list[str]]:
    """Add the new pods, wait until every pod of the lab is ready, yield their ``ns/name``,
    and delete them on the way out, whatever happened. A pod that does not become ready
    is the grader's problem, not the learner's: the checks error (pytest.fail)."""
    added: list[tuple[str, str]] = []
    try:
        try:
            for doc in new_pods():
                cluster.apply([doc], source="hidden check: new pods")
                added.append((doc["metadata"]["namespace"], doc["metadata"]["name"]))
            cluster.wait_converged(list(NAMESPACES), timeout=timeout)
        except (WaitTimeout, ClusterError) as err:
            pytest.fail(f"the grader's new pods could not be started: {err}", pytrace=False)
        yield [f"{ns}/{name}" for ns, name in added]
    finally:
        for ns, name in reversed(added):
            with suppress(ClusterError):  # the next `lab check` resets the namespaces anyway
                cluster.delete("Pod", ns, name)


def matrix_with_new_pods(netpol: Any) -> Any:
    """The lab's matrix probed again now that the new pods are there (a ``PolicyMatrix``;
    never the cached one of the visible checks, and not cached for them)."""
    return netpol.matrix(NAMESPACES, PORTS, via=VIA, fresh=True, workers=MAX_WORKERS)


def only_within(matrix: Any, requirement: str, *, allowed: Sequence[CellSpec],
                within: Sequence[CellSpec], hint: str) -> None:
    """``matrix.only`` for several scopes, failing once with every wrong cell of all of
    them (unstable only when each part was)."""
    failures: list[Finding] = []
    for scope in within:
        try:
            matrix.only(f"{requirement} ({scope})", allowed=allowed, within=scope, hint=hint)
        except CheckFailed as err:
            failures.append(err.finding)
    if not failures:
        return
    if len(failures) == 1:
        raise CheckFailed(failures[0])
    indent = "\n" + " " * 12
    raise CheckFailed(Finding(
        expected=f"{requirement}: " + "; ".join(str(s) for s in within)
                 + ": only the tasks' paths",
        observed=indent.join(f"{f.expected}:{indent}{f.observed}" for f in failures),
        hint=next((f.hint for f in failures if not f.unstable), failures[0].hint),
        probe="matrix", hint_key=next((f.hint_key for f in failures if not f.unstable),
                                      failures[0].hint_key),
        unstable=all(f.unstable for f in failures),
        observations=tuple(o for f in failures for o in f.observations)))


def role_cells(src_role: str, new_src: str, dst_role: str, new_dst: str,
               port: int) -> list[CellSpec]:
    """A task's path where a new pod is at either end: new source to every destination,
    every source to the new destination."""
    return [cells(new_src, dst_role, port), cells(src_role, new_dst, port)]
