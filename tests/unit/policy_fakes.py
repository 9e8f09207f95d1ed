"""A fake cluster that enforces NetworkPolicy (or not), for the grader's policy tests.

:class:`PolicyCluster` extends the matrix tests' :class:`ScriptedCluster` with what the
policy grader needs: Namespaces (cluster-scoped), NetworkPolicies, pods that get an IP and
``Running`` when applied (the canary's), namespace deletion that takes the namespace's
objects with it, and probes answered by the pure policy engine: CONNECTED when the
policies allow the traffic, TIMEOUT when they do not (``enforce=False``: always
CONNECTED, as flannel would). A Service's ClusterIP or DNS name is translated first, like
kube-proxy does, to its first selected pod and the targetPort (REFUSED without an
endpoint); with ``listening=True`` an allowed probe to a port the pod does not declare as a
container port is REFUSED (nothing listens there). A scripted ``(source, "ip:port")`` still wins, and
``on_probe`` may answer (or raise) before anything else, to fake lag, flapping or Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from test_matrix_fakes import ScriptedCluster, Step

from clusters.engine import ApplyResult, Capabilities
from clusters.errors import ClusterError, ObjectNotFound
from clusters.netpol.engine import PolicySet
from clusters.netpol.model import HostEndpoint
from clusters.probing import Observation, Outcome, ProbeSpec


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name,
                                                  **labels}}}


def policy(ns: str, name: str, selector: Mapping[str, str] | None = None, *,
           ingress: list[dict[str, Any]] | None = None,
           egress: list[dict[str, Any]] | None = None,
           types: Sequence[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": dict(selector)} if selector else {}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = list(types)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


class PolicyCluster(ScriptedCluster):
    """See the module docstring."""

    def __init__(self, objects: Sequence[Mapping[str, Any]] = (),
                 script: Mapping[tuple[str, str], Sequence[Step]] | None = None, *,
                 enforce: bool = True, cni: str = "kindnet", network_policy: bool = True,
                 propagation: float = 0.3, listening: bool = False) -> None:
        super().__init__(objects, script, default=Outcome.CONNECTED)
        self.enforce = enforce
        self.listening = listening
        self.cni = cni
        self.network_policy = network_policy
        self.propagation = propagation
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str | None, str]] = []
        self.on_probe: Callable[[ProbeSpec], Observation | None] | None = None
        self.apply_error: dict[str, Exception] = {}
        self.delete_error: Exception | None = None
        self._next_ip = 100

    def capabilities(self) -> Capabilities:
        return Capabilities(network_policy=self.network_policy, services=True, dns=True,
                            cni=self.cni, propagation_seconds=self.propagation)

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        for doc in docs:
            if doc["kind"] in self.apply_error:
                raise self.apply_error[doc["kind"]]
        results = []
        for doc in docs:
            obj = dict(doc)
            if obj["kind"] == "Pod" and not obj.get("status"):
                self._next_ip += 1
                obj["spec"] = {**obj.get("spec", {}), "nodeName": "worker"}
                obj["status"] = {"phase": "Running", "podIP": f"10.244.9.{self._next_ip}",
                                 "conditions": [{"type": "Ready", "status": "True"}]}
            self.objects.append(obj)
            self.applied.append(obj)
            meta = obj["metadata"]
            results.append(ApplyResult(obj["kind"], meta.get("namespace"), meta["name"],
                                       "created"))
        return results

    def get(self, kind: str, namespace: str | None = None, name: str | None = None,
            selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        found = [o for o in self.objects if o["kind"] == kind
                 and (kind == "Namespace" or namespace in (None, o["metadata"].get("namespace")))
                 and name in (None, o["metadata"]["name"])]
        if name is not None and not found:
            raise ObjectNotFound(f'{kind.lower()} "{name}" not found')
        return found

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        self.deleted.append((kind, namespace, name))
        if self.delete_error is not None:
            raise self.delete_error
        before = len(self.objects)
        self.objects = [o for o in self.objects if not (
            (o["kind"] == kind and o["metadata"]["name"] == name
             and (kind == "Namespace" or o["metadata"].get("namespace") == namespace))
            or (kind == "Namespace" and o["metadata"].get("namespace") == name))]
        return len(self.objects) < before

    def namespaces_named(self, prefix: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects
                if o["kind"] == "Namespace" and o["metadata"]["name"].startswith(prefix)]

    def policy_set(self) -> PolicySet:
        return PolicySet.from_objects(self.get("NetworkPolicy"), self.get("Pod"),
                                      self.get("Namespace"))

    def probe(self, spec: ProbeSpec) -> Observation:
        if self.on_probe is not None:
            answer = self.on_probe(spec)
            if answer is not None:
                with self._lock:
                    self.probes.append(spec)
                return answer
        key = (str(spec.source), f"{spec.target}:{spec.port}")
        if key in self.script or not self.enforce or spec.source.pod is None:
            return super().probe(spec)
        protocol = "UDP" if spec.kind == "udp" else "TCP"
        with self._lock:
            self.probes.append(spec)
            policies = self.policy_set()
            dnat = self._dnat(spec.target, spec.port or 0, protocol)
        src = policies.pod(str(spec.source))
        if src is None:
            return Observation(Outcome.ERROR, f"source {spec.source}: no such pod")
        if dnat is None:
            return Observation(Outcome.REFUSED, "no endpoint", elapsed=0.001)
        address, port = dnat
        dst = next((p for p in policies.pods if p.ip == address), None)
        verdict = policies.verdict(src, dst or HostEndpoint(address), port, protocol)
        if not verdict.allowed:
            return Observation(Outcome.TIMEOUT, "no answer", elapsed=spec.timeout)
        if self.listening and dst is not None and not any(
                p.port == port and p.protocol == protocol for p in dst.ports):
            return Observation(Outcome.REFUSED, "connection refused", elapsed=0.001)
        return Observation(Outcome.CONNECTED, elapsed=0.001)

    def _dnat(self, target: str, port: int, protocol: str) -> tuple[str, int] | None:
        """What kube-proxy would make of ``target:port``: a Service's ClusterIP or DNS name
        becomes its first selected pod and the entry's targetPort (a name looked up in the
        pod's container ports); None when it has no endpoint. Anything else is unchanged."""
        for svc in self.objects:
            if svc["kind"] != "Service":
                continue
            meta, spec = svc["metadata"], svc.get("spec") or {}
            name = f"{meta['name']}.{meta.get('namespace')}.svc.cluster.local"
            if target not in (spec.get("clusterIP"), name):
                continue
            entry = next((e for e in spec.get("ports") or () if e.get("port") == port
                          and (e.get("protocol") or "TCP") == protocol), None)
            selector = spec.get("selector") or {}
            pods = [o for o in self.objects if o["kind"] == "Pod"
                    and o["metadata"].get("namespace") == meta.get("namespace")
                    and all(o["metadata"].get("labels", {}).get(k) == v
                            for k, v in selector.items())]
            if entry is None or not pods:
                return None
            wanted = entry.get("targetPort", entry["port"])
            if isinstance(wanted, str):
                wanted = next((c["containerPort"] for k in pods[0]["spec"]["containers"]
                               for c in k.get("ports") or ()
                               if c.get("name") == wanted
                               and (c.get("protocol") or "TCP") == protocol), None)
            return None if wanted is None else (pods[0]["status"]["podIP"], int(wanted))
        return target, port


class Boom(ClusterError):
    """A cluster failure the tests inject."""
