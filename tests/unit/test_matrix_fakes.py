"""A scripted Cluster for the matrix, probe-command and DNS-check tests (and its own tests).

``ScriptedCluster`` answers ``get`` from the pods and Services it was given, and each probe
from a script keyed by ``(source, target)``: ``source`` is ``"ns/pod"`` or ``"host"``,
``target`` is ``"HOST:PORT"`` (or the queried name for DNS). A script entry is a list of
outcomes (or observations) handed out in order, the last one repeating; unscripted probes
get ``default``; a probe from a pod that does not exist is an ERROR, as on the local
engine. It is thread-safe, as the matrix probes in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clusters.engine import ApplyResult, Capabilities, Cluster, ExecResult, KindRef
from clusters.errors import ObjectNotFound
from clusters.local.kinds import resolve_kind
from clusters.probing import Observation, Outcome, ProbeSpec, Source

Step = Outcome | Observation


def pod(ns: str, name: str, ip: str | None, *, phase: str = "Running",
        ports: Sequence[int | tuple[int, str]] = (), **labels: str) -> dict[str, Any]:
    container_ports = [{"containerPort": p} if isinstance(p, int)
                       else {"containerPort": p[0], "protocol": p[1]} for p in ports]
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
            "spec": {"nodeName": "worker", "containers": [{"name": "c", "ports": container_ports}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def service(ns: str, name: str, selector: Mapping[str, str], ports: Sequence[Mapping[str, Any]],
            cluster_ip: str = "10.96.0.10", type: str = "ClusterIP") -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": type, "clusterIP": cluster_ip, "selector": dict(selector),
                     "ports": [dict(p) for p in ports]}}


class ScriptedCluster:
    """A :class:`~clusters.engine.Cluster` with scripted probe outcomes; see the module doc."""

    engine = "fake"

    def __init__(self, objects: Sequence[Mapping[str, Any]] = (),
                 script: Mapping[tuple[str, str], Sequence[Step]] | None = None,
                 default: Step = Outcome.CONNECTED) -> None:
        self.name = "fake"
        self.objects = [dict(o) for o in objects]
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.default = default
        self.probes: list[ProbeSpec] = []
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        return Capabilities(services=True, dns=True, host_ip="172.30.0.1")

    def resolve_kind(self, kind: str) -> KindRef:
        info = resolve_kind(kind)  # the built-in kinds, as the local engine knows them
        return KindRef(info.kind, info.namespaced)

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        self.objects.extend(dict(d) for d in docs)
        return [ApplyResult(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"],
                            "created") for d in docs]

    def get(self, kind: str, namespace: str | None = None, name: str | None = None,
            selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        found = [o for o in self.objects if o["kind"] == kind
                 and namespace in (None, o["metadata"]["namespace"])
                 and name in (None, o["metadata"]["name"])]
        if name is not None and not found:
            raise ObjectNotFound(f'{kind.lower()} "{name}" not found')
        return found

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        before = len(self.objects)
        self.objects = [o for o in self.objects if not (
            o["kind"] == kind and o["metadata"]["name"] == name)]
        return len(self.objects) < before

    def label(self, kind: str, namespace: str | None, name: str,
              set_labels: Mapping[str, str], remove: Sequence[str] = ()) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)[0]
        obj["metadata"]["labels"].update(set_labels)
        return obj

    def exec(self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
             timeout: float | None = None) -> ExecResult:
        return ExecResult(0, argv=tuple(argv))

    def node_exec(self, node: str, argv: Sequence[str], *, capture: bool = False,
                  timeout: float | None = None) -> ExecResult:
        return ExecResult(0, argv=tuple(argv))

    def wait_converged(self, namespaces: Sequence[str] | None = None,
                       timeout: float = 60) -> None:
        return None

    def probe(self, spec: ProbeSpec) -> Observation:
        key = (str(spec.source), spec.target if spec.kind == "dns"
               else f"{spec.target}:{spec.port}")
        with self._lock:
            self.probes.append(spec)
            if spec.source.pod is not None and not any(
                    o["kind"] == "Pod" and o["metadata"]["name"] == spec.source.pod
                    and o["metadata"]["namespace"] == spec.source.namespace
                    for o in self.objects):
                return Observation(Outcome.ERROR, f"source {spec.source}: no such pod")  # as local
            queue = self.script.get(key)
            step = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else self.default
        if isinstance(step, Observation):
            return step
        return Observation(step, detail="" if step is Outcome.CONNECTED else step.value.lower(),
                           elapsed=0.001)

    def reset_namespaces(self, namespaces: Sequence[str]) -> None:
        return None

    def attempts(self, source: str, target: str) -> int:
        """How many probes went from ``source`` to ``target``."""
        return sum(1 for s in self.probes
                   if str(s.source) == source and f"{s.target}:{s.port}" == target)


def test_scripted_cluster_is_a_cluster_and_replays_its_script() -> None:
    cluster = ScriptedCluster([pod("a", "x", "10.0.0.9")],
                              {("a/x", "10.0.0.1:80"): [Outcome.TIMEOUT, Outcome.CONNECTED]},
                              default=Outcome.REFUSED)
    assert isinstance(cluster, Cluster)
    spec = ProbeSpec(kind="tcp", source=Source("a", "x"), target="10.0.0.1", port=80)
    seen = [cluster.probe(spec).outcome for _ in range(3)]
    assert seen == [Outcome.TIMEOUT, Outcome.CONNECTED, Outcome.CONNECTED]
    other = ProbeSpec(kind="tcp", source=Source("a", "x"), target="10.0.0.2", port=80)
    assert cluster.probe(other).outcome is Outcome.REFUSED
    assert cluster.attempts("a/x", "10.0.0.1:80") == 3
    ghost = ProbeSpec(kind="tcp", source=Source("a", "ghost"), target="10.0.0.1", port=80)
    assert cluster.probe(ghost).outcome is Outcome.ERROR
