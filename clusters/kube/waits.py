"""Waiting on a real cluster: convergence of pods and workloads, namespace resets, nodes.

Convergence means what it means on the local engine: every pod of the namespaces is
scheduled, Running with every container started, and Ready unless it is annotated
``acceptance/never-ready: "true"`` (a pod whose readiness probe is meant to fail); a pod
that completed (Succeeded) is done. Deployments and DaemonSets must also be rolled out
(the controller saw the latest spec, every replica updated and ready, no old pod left).

When the deadline passes, :class:`~clusters.errors.WaitTimeout` says, per pod, why it is
not there yet, in the kubelet's words: the image that cannot be pulled and the registry's
answer, a crash loop with the last exit code, the scheduler's reason, and for a pod that
runs but is not Ready the latest warning event (the failing readiness probe).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusters.errors import ClusterError, ObjectNotFound, WaitTimeout
from clusters.kube.resources import Requester
from clusters.proc import wait_until

NEVER_READY = "acceptance/never-ready"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                  "RegistryUnavailable")
_STARTING = ("ContainerCreating", "PodInitializing", "")
_EVENTS_FOR = 5  # pods whose events are fetched when a wait times out


@dataclass(frozen=True)
class Pending:
    """One thing convergence still waits for."""

    kind: str  # "pod", "deployment", "daemonset"
    namespace: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} ({self.why})"


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or ()}


def _container_problem(cs: Mapping[str, Any]) -> str | None:
    """Why one container is not running, or None when nothing is wrong with it."""
    name, image = cs.get("name", "?"), cs.get("image", "?")
    waiting = (cs.get("state") or {}).get("waiting")
    if waiting is not None:
        reason, message = str(waiting.get("reason") or ""), str(waiting.get("message") or "")
        if reason in _PULL_FAILURES:
            return (f'container {name}: {reason}: image "{image}" cannot be pulled'
                    + (f": {message}" if message else ""))
        if reason == "CrashLoopBackOff":
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            code = last.get("exitCode")
            why = f"; last exit code {code}" if code is not None else ""
            why += f" ({last['reason']})" if last.get("reason") else ""
            return (f"container {name}: CrashLoopBackOff, restarted {cs.get('restartCount', 0)} "
                    f"times{why}")
        if reason not in _STARTING:
            return f"container {name}: {reason}" + (f": {message}" if message else "")
        return f"container {name}: {reason}" if reason else None
    terminated = (cs.get("state") or {}).get("terminated")
    if terminated is not None and terminated.get("exitCode") not in (0, None):
        return (f"container {name}: terminated ({terminated.get('reason') or 'exited'}, "
                f"exit code {terminated.get('exitCode')})")
    return None


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why ``pod`` has not converged, or None when it has."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if meta.get("deletionTimestamp"):
        return f"{phase}, terminating"
    if phase == "Succeeded":
        return None
    conds = _conditions(pod)
    scheduled = conds.get("PodScheduled")
    if not (pod.get("spec") or {}).get("nodeName") and (scheduled is None
                                                      or scheduled.get("status") != "True"):
        why = (scheduled or {}).get("message") or "waiting for the scheduler"
        return f"{phase}: not scheduled: {why}"
    statuses = list(status.get("initContainerStatuses") or ()) + list(
        status.get("containerStatuses") or ())
    problems = [p for p in map(_container_problem, statuses) if p]
    wanted = len((pod.get("spec") or {}).get("containers") or ())
    started = [s for s in status.get("containerStatuses") or ()
               if s.get("started", "running" in (s.get("state") or {}))]
    if phase != "Running" or len(started) < wanted:
        return f"{phase}: " + ("; ".join(problems) if problems else
                               (status.get("message") or status.get("reason") or "starting"))
    never_ready = str((meta.get("annotations") or {}).get(NEVER_READY, "")).lower() == "true"
    if (conds.get("Ready") or {}).get("status") != "True" and not never_ready:
        why = (conds.get("Ready") or {}).get("message") or "readiness probe not passing yet"
        return f"Running, not Ready: {why}"
    return None


def _workload_problem(kind: str, obj: Mapping[str, Any]) -> str | None:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return "its controller has not seen the latest spec yet"
    if kind == "Deployment":
        want = int(spec.get("replicas", 1))
        ready, updated = int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        stalled = _conditions(obj).get("Progressing") or {}
        note = (f"; {stalled.get('message')}" if stalled.get("reason") == "ProgressDeadlineExceeded"
                else "")
        if updated < want:
            return f"rolling out: {updated}/{want} replicas updated{note}"
        if ready < want:
            return f"{ready}/{want} replicas ready{note}"
        if total > want:
            return f"{total - want} old replica(s) still running"
        return None
    desired = int(status.get("desiredNumberScheduled") or 0)
    ready, updated = int(status.get("numberReady") or 0), int(status.get("updatedNumberScheduled") or 0)
    if updated < desired:
        return f"rolling out: {updated}/{desired} pods updated"
    if ready < desired:
        return f"{ready}/{desired} pods ready"
    return None


def _list(api: Requester, path: str) -> list[dict[str, Any]]:
    return list((api.request("GET", path) or {}).get("items") or [])


def _scopes(namespaces: Sequence[str] | None) -> list[str]:
    return [f"/namespaces/{ns}" for ns in namespaces] if namespaces else [""]


def pending(api: Requester, namespaces: Sequence[str] | None = None) -> list[Pending]:
    """What keeps the namespaces (None: the whole cluster) from having converged."""
    out: list[Pending] = []
    for scope in _scopes(namespaces):
        for pod in _list(api, f"/api/v1{scope}/pods"):
            if (why := pod_problem(pod)) is not None:
                meta = pod.get("metadata") or {}
                out.append(Pending("pod", str(meta.get("namespace")), str(meta.get("name")), why))
        for kind, plural in (("Deployment", "deployments"), ("DaemonSet", "daemonsets")):
            for obj in _list(api, f"/apis/apps/v1{scope}/{plural}"):
                if (why := _workload_problem(kind, obj)) is not None:
                    meta = obj.get("metadata") or {}
                    out.append(Pending(kind.lower(), str(meta.get("namespace")),
                                       str(meta.get("name")), why))
    return out


def describe(left: Sequence[Pending], limit: int = 8) -> str:
    if not left:
        return "nothing pending"
    text = "; ".join(map(str, left[:limit]))
    return text + (f" (+{len(left) - limit} more)" if len(left) > limit else "")


def latest_warning(api: Requester, namespace: str, pod: str) -> str:
    """The newest Warning event about a pod ("Readiness probe failed: ..."), or ""."""
    query = {"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={pod}"}
    events = (api.request("GET", f"/api/v1/namespaces/{namespace}/events", query=query) or {}
              ).get("items") or []
    warnings = [e for e in events if e.get("type") == "Warning"]
    if not warnings:
        return ""

    def when(e: Mapping[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime")
                   or (e.get("metadata") or {}).get("creationTimestamp") or "")
    newest = max(warnings, key=when)
    return f"{newest.get('reason', '')}: {newest.get('message', '')}".strip(": ")


def _explain(api: Requester, left: Sequence[Pending]) -> list[Pending]:
    """``left`` with the latest warning event added to pods that lack a clear reason."""
    out, asked = [], 0
    for p in left:
        vague = p.kind == "pod" and ("not Ready" in p.why or "ContainerCreating" in p.why
                                     or p.why.endswith("starting"))
        if vague and asked < _EVENTS_FOR:
            asked += 1
            with contextlib.suppress(ClusterError):
                if event := latest_warning(api, p.namespace, p.name):
                    p = Pending(p.kind, p.namespace, p.name, f"{p.why}; last event: {event}")
        out.append(p)
    return out


def wait_converged(api: Requester, namespaces: Sequence[str] | None = None,
                   timeout: float = 60) -> None:
    """Block until :func:`pending` is empty; WaitTimeout naming what was not ready."""
    what = "pods to be Running and Ready" + (f" in {', '.join(namespaces)}" if namespaces else "")
    try:
        wait_until(what, lambda: pending(api, namespaces), lambda left: not left,
                   timeout=timeout, describe=describe)
    except WaitTimeout:
        last = pending(api, namespaces)
        if not last:
            return  # converged just as the deadline passed
        raise WaitTimeout(what, timeout, describe(_explain(api, last))) from None


# ---------------------------------------------------------------- namespaces and nodes


def _namespace_state(api: Requester, name: str) -> str | None:
    """None when the namespace is gone, else what it still waits for."""
    try:
        ns = api.request("GET", f"/api/v1/namespaces/{name}")
    except ObjectNotFound:
        return None
    status = ns.get("status") or {}
    notes = [str(c.get("message")) for c in status.get("conditions") or ()
             if c.get("status") == "True" and c.get("message")]
    finalizers = list((ns.get("spec") or {}).get("finalizers") or ()) + list(
        (ns.get("metadata") or {}).get("finalizers") or ())
    text = f'namespace "{name}" still {status.get("phase") or "present"}'
    if notes:
        text += ": " + "; ".join(notes)
    elif finalizers:
        text += f" (finalizers: {', '.join(map(str, finalizers))})"
    return text


def reset_namespaces(api: Requester, namespaces: Sequence[str], timeout: float = 120) -> None:
    """Delete these namespaces (and everything in them) and wait until they are gone.

    System namespaces are refused; no other namespace is read or changed."""
    refused = [ns for ns in namespaces if ns in PROTECTED_NAMESPACES]
    if refused:
        raise ClusterError(f"namespace {refused[0]!r} is a system namespace and cannot be reset")
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    for ns in namespaces:
        with contextlib.suppress(ObjectNotFound):
            api.request("DELETE", f"/api/v1/namespaces/{ns}", body=options)

    def left() -> list[str]:
        return [s for s in (_namespace_state(api, ns) for ns in namespaces) if s is not None]
    wait_until(f"namespaces {', '.join(namespaces)} to be deleted", left, lambda s: not s,
               timeout=timeout, describe=lambda s: "; ".join(s))


def ready_nodes(api: Requester) -> tuple[list[str], list[str]]:
    """(Ready node names, "name: why" for the others)."""
    ready, not_ready = [], []
    for node in _list(api, "/api/v1/nodes"):
        name = str((node.get("metadata") or {}).get("name"))
        cond = _conditions(node).get("Ready") or {}
        if cond.get("status") == "True":
            ready.append(name)
        else:
            not_ready.append(f"{name}: {cond.get('reason') or 'NotReady'} {cond.get('message') or ''}"
                             .strip())
    return ready, not_ready


def wait_nodes_ready(api: Requester, count: int, timeout: float = 120) -> list[str]:
    """Block until ``count`` nodes are Ready (after a CNI install); their names."""
    state = wait_until(f"{count} nodes to be Ready", lambda: ready_nodes(api),
                       lambda s: len(s[0]) >= count and not s[1], timeout=timeout,
                       describe=lambda s: f"{len(s[0])} Ready" + (
                           f"; not Ready: {'; '.join(s[1])}" if s[1] else ""))
    return state[0]
