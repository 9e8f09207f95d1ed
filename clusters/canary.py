"""Proving that a cluster enforces NetworkPolicy, with a canary deny, before grading policies.

The most common reason a NetworkPolicy "does nothing" is a CNI that does not enforce it
(flannel). Grading a policy lab on such a cluster would fail a correct learner, so the
grader first runs a canary in a namespace of its own:

1. a server pod (agnhost ``serve-hostname --tcp`` on 8080) and a client pod (agnhost
   ``pause``) in ``netlab-canary-<random>``, labelled ``netlab.dev/canary=true``;
2. the client must reach the server: if it never does, the canary proves nothing
   (*inconclusive*, ``enforced=None``), because the traffic failed before any policy;
3. a deny-ingress policy selecting only the server is applied; the client must then be
   blocked (three times in a row, so one lost packet proves nothing) within the cluster's
   propagation bound: blocked means *enforced*; still connecting means *not enforced*;
   sometimes one, sometimes the other means *inconclusive*.

The namespace is deleted afterwards on every path: success, error, or Ctrl-C.

The context engine runs the same canary when it attaches to a shared cluster, to detect
(not assume) whether that cluster enforces NetworkPolicy.

The images are the upstream e2e test images, so the canary runs the same on kind and on
the local engine (which reproduces agnhost's behaviour without running it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusters.engine import Cluster
from clusters.errors import ClusterError, WaitTimeout
from clusters.probing import Observation, Outcome, ProbeSpec, Source

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
PORT = 8080
LABEL = "netlab.dev/canary"
ROLE = "netlab.dev/canary-role"
PREFIX = "netlab-canary-"
POLICY = "canary-deny-ingress"
#: Blocked probes in a row that prove the deny took effect.
CONFIRMATIONS = 3
BLOCKING = frozenset({Outcome.TIMEOUT, Outcome.REFUSED})


@dataclass(frozen=True)
class Enforcement:
    """What the canary found: ``enforced`` True, False, or None when it proves nothing."""

    enforced: bool | None
    detail: str
    namespace: str = ""
    cni: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"enforced": self.enforced, "detail": self.detail, "namespace": self.namespace,
                "cni": self.cni, "seconds": round(self.seconds, 3)}


def canary_namespace() -> str:
    """A fresh canary namespace name, unlikely to collide with any other run's."""
    return PREFIX + secrets.token_hex(4)


def _pod(namespace: str, name: str, args: list[str], ports: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": IMAGE, "args": args}
    if ports:
        container["ports"] = [{"containerPort": PORT, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {LABEL: "true", ROLE: name}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}


def canary_objects(namespace: str) -> list[dict[str, Any]]:
    """The namespace and the two pods (applied first, in one batch)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {LABEL: "true"}}},
        _pod(namespace, "server", ["serve-hostname", "--tcp", "--http=false", f"--port={PORT}"],
             ports=True),
        _pod(namespace, "client", ["pause"], ports=False),
    ]


def canary_policy(namespace: str) -> dict[str, Any]:
    """Deny every ingress to the server pod (and nothing else)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": POLICY, "namespace": namespace, "labels": {LABEL: "true"}},
            "spec": {"podSelector": {"matchLabels": {ROLE: "server"}},
                     "policyTypes": ["Ingress"]}}


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def probe_until(probe: Callable[[], Observation], done: Callable[[Observation], bool],
                seconds: float, interval: float = 0.2) -> tuple[Observation, int]:
    """Probe until ``done`` holds or ``seconds`` pass; (last observation, probes made)."""
    deadline = _Deadline(seconds)
    count = 0
    while True:
        obs = probe()
        count += 1
        if done(obs) or deadline.left() <= 0:
            return obs, count
        time.sleep(min(interval, deadline.left()))


def prove_enforcement(cluster: Cluster, *, timeout: float = 30, settle: float | None = None,
                      probe_timeout: float = 1.0) -> Enforcement:
    """Run the canary (see the module docstring) within ``timeout`` seconds.

    ``settle`` is how long the deny may take to be enforced (default: the cluster's
    ``propagation_seconds``, at most what is left of ``timeout``). Errors of the cluster
    make the result inconclusive; the canary namespace is deleted whatever happens.
    """
    started = time.monotonic()
    caps = cluster.capabilities()
    namespace = canary_namespace()
    deadline = _Deadline(timeout)
    result: Enforcement | None = None
    try:
        result = _run(cluster, namespace, deadline,
                      caps.propagation_seconds if settle is None else settle, probe_timeout,
                      caps.cni, caps.network_policy)
    except WaitTimeout as err:
        result = Enforcement(None, f"the canary pods in {namespace} did not become ready: "
                                   f"{err}", namespace, caps.cni)
    except ClusterError as err:
        result = Enforcement(None, f"the canary could not run in {namespace}: {err}",
                             namespace, caps.cni)
    finally:
        cleanup_error = _cleanup(cluster, namespace, raising=result is not None)
    assert result is not None  # every path above set it or raised
    if cleanup_error:
        result = Enforcement(result.enforced, f"{result.detail} (and the canary namespace "
                             f"{namespace} could not be deleted: {cleanup_error})",
                             namespace, caps.cni)
    return Enforcement(result.enforced, result.detail, namespace, caps.cni,
                       time.monotonic() - started)


def _cleanup(cluster: Cluster, namespace: str, raising: bool) -> str:
    """Delete the canary namespace; the error text, or "" (errors are swallowed while
    another exception is on its way out, so they never hide it)."""
    try:
        cluster.delete("Namespace", None, namespace)
    except ClusterError as err:
        return str(err)
    except Exception:
        if raising:
            raise
    return ""


def _run(cluster: Cluster, namespace: str, deadline: _Deadline, settle: float,
         probe_timeout: float, cni: str, declared: bool) -> Enforcement:
    cluster.apply(canary_objects(namespace), source="canary")
    cluster.wait_converged([namespace], timeout=max(1.0, deadline.left()))
    servers = cluster.get("Pod", namespace, "server")
    ip = (servers[0].get("status") or {}).get("podIP") if servers else None
    if not ip:
        return Enforcement(None, f"the canary server pod in {namespace} has no IP", namespace, cni)
    spec = ProbeSpec(kind="tcp", source=Source(namespace, "client"), target=str(ip), port=PORT,
                     timeout=probe_timeout)
    route = f"{namespace}/client -> {namespace}/server ({ip}:{PORT})"

    before, _ = probe_until(lambda: cluster.probe(spec), lambda o: o.connected, deadline.left())
    if not before.connected:
        return Enforcement(None, f"inconclusive: before any policy, {route} was not allowed "
                                 f"({before.summary()}), so a deny cannot be observed",
                           namespace, cni)

    cluster.apply([canary_policy(namespace)], source="canary")
    applied = time.monotonic()
    window = max(probe_timeout, min(settle, deadline.left()))
    seen: list[Observation] = []
    streak = 0
    flapped = False
    while True:
        obs = cluster.probe(spec)
        seen.append(obs)
        if obs.outcome in BLOCKING:
            streak += 1
            if streak >= CONFIRMATIONS:
                took = time.monotonic() - applied
                return Enforcement(True, f"a deny-ingress NetworkPolicy blocked {route} "
                                         f"({obs.outcome.value}) within {took:.1f}s "
                                         f"(CNI {cni})", namespace, cni)
        else:
            flapped = flapped or streak > 0
            streak = 0
        # A streak under way may finish after the window (the deny came late, it came).
        if deadline.left() <= 0 or (time.monotonic() - applied >= window and not streak):
            break
        if obs.outcome not in BLOCKING:
            time.sleep(min(0.2, deadline.left()))
    connected = sum(o.connected for o in seen)
    blocked = sum(o.outcome in BLOCKING for o in seen)
    other = [o for o in seen if not o.connected and o.outcome not in BLOCKING]
    if other or flapped or blocked:
        what = f"last {other[-1].summary()}" if other else \
            f"{blocked} blocked and {connected} connected"
        return Enforcement(None, f"inconclusive: after a deny-ingress policy, {route} gave "
                                 f"mixed results within {window:g}s ({what})", namespace, cni)
    claim = " although the cluster declares that it does" if declared else ""
    return Enforcement(False, f"this cluster does not enforce NetworkPolicy (CNI {cni}){claim}: "
                              f"{route} still connected {connected} times in {window:g}s after "
                              "a deny-ingress policy selected the server", namespace, cni)
