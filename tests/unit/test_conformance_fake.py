"""An in-memory cluster that behaves like Kubernetes closely enough for the acceptance files.

It keeps API objects, runs tiny controllers (Deployments make pods, Services get ClusterIPs
and NodePorts, pods are scheduled honouring the fixtures' pod (anti-)affinity) and answers
probes from a model of kube-proxy and cluster DNS. ``misbehave`` switches on one deviation
from upstream at a time, so tests can prove the runner *fails* a case when the engine is
wrong, not only that it passes a good one:

=================== ================================================================
no-reject           a Service without endpoints accepts connections (should REFUSE)
sticky              every Service connection lands on the first endpoint
dns-not-ready       headless Service A records include pods that are not Ready
no-affinity         sessionAffinity ClientIP is ignored
local-leaks         internalTrafficPolicy Local uses endpoints on other nodes
ignore-policy       (for the fake matrix) NetworkPolicies are not enforced
=================== ================================================================

The module's own tests check the fake itself, so a wrong fake cannot make a runner test pass.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from clusters.engine import ApplyResult, Capabilities, ExecResult, KindRef
from clusters.errors import ObjectNotFound
from clusters.local.kinds import resolve_kind
from clusters.probing import Observation, Outcome, ProbeSpec

NODES = [("kind-control-plane", "172.30.0.2", True), ("kind-worker", "172.30.0.3", False),
         ("kind-worker2", "172.30.0.4", False)]
HOST_IP = "172.30.0.1"
NAMESPACED_NOT = {"Namespace", "Node", "IngressClass"}


class FakeClock:
    """Time that only moves when someone sleeps (the runner's ``wait_seconds``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _labels_match(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class FakeCluster:
    engine = "fake"

    def __init__(self, misbehave: Sequence[str] = (), caps: Capabilities | None = None,
                 clock: FakeClock | None = None) -> None:
        self.name = "fake"
        self.misbehave = set(misbehave)
        self.caps = caps or Capabilities(network_policy=True, services=True, dns=True,
                                         ingress=False, load_balancer=True,
                                         propagation_seconds=0.0, host_ip=HOST_IP)
        self.clock = clock or FakeClock()
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.files: dict[tuple[str, str, str], str] = {}
        self.probes: list[ProbeSpec] = []
        self.applied: list[tuple[str, str | None, str]] = []
        self._ips = itertools.count(10)
        self._svc_ips = itertools.count(20)
        self._node_ports = itertools.count(30080)
        self._spread = itertools.count()
        self._rr: dict[str, int] = {}
        self._affinity: dict[tuple[str, str], tuple[str, float]] = {}
        for name, ip, tainted in NODES:
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}},
                    "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane",
                                         "effect": "NoSchedule"}]} if tainted else {},
                    "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                               "conditions": [{"type": "Ready", "status": "True"}]}}
            self.objects[("Node", None, name)] = node

    # ---- the API ----------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return self.caps

    def resolve_kind(self, kind: str) -> KindRef:
        info = resolve_kind(kind)  # the built-in kinds, as the local engine knows them
        return KindRef(info.kind, info.namespaced)

    @staticmethod
    def key(kind: str, namespace: str | None, name: str) -> tuple[str, str | None, str]:
        return (kind, None if kind in NAMESPACED_NOT else (namespace or "default"), name)

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        results = []
        for raw in docs:
            doc = copy.deepcopy(dict(raw))
            meta = doc["metadata"]
            key = self.key(doc["kind"], meta.get("namespace"), meta["name"])
            old = self.objects.get(key)
            self.applied.append(key)
            if doc["kind"] == "Service":
                self._service(doc, old)
            if old is not None and doc["kind"] in ("Pod", "Deployment"):
                old["metadata"]["labels"] = meta.get("labels", {})
                old["spec"] = doc["spec"]
            else:
                self.objects[key] = doc
            if doc["kind"] == "Pod" and old is None:
                self._run_pod(doc)
            if doc["kind"] == "Deployment":
                self._deploy(self.objects[key])
            results.append(ApplyResult(doc["kind"], key[1], key[2],
                                       "created" if old is None else "configured"))
        return results

    def get(self, kind: str, namespace: str | None = None, name: str | None = None,
            selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Like the local engine: a named object that does not exist raises ObjectNotFound."""
        found = self._get(kind, namespace, name, selector)
        if name is not None and not found:
            raise ObjectNotFound(f'{kind.lower()}s "{name}" not found')
        return found

    def has(self, kind: str, namespace: str | None, name: str) -> bool:
        return bool(self._get(kind, namespace, name))

    def _get(self, kind: str, namespace: str | None = None, name: str | None = None,
             selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, ns, n), o in sorted(
                    self.objects.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2]))
                if k == kind and (namespace is None or ns in (None, namespace))
                and (name is None or n == name)
                and _labels_match(o["metadata"].get("labels") or {}, selector or {})]

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        key = self.key(kind, namespace, name)
        obj = self.objects.pop(key, None)
        if obj is None:
            return False
        if kind == "Namespace":
            for k in [k for k in self.objects if k[1] == name]:
                del self.objects[k]
        if kind == "Deployment":
            for k, o in list(self.objects.items()):
                if k[0] == "Pod" and k[1] == key[1] and o["metadata"].get("ownerDeployment") == name:
                    del self.objects[k]
        if kind == "Pod" and obj["metadata"].get("ownerDeployment"):
            dep = self.objects.get(("Deployment", key[1], obj["metadata"]["ownerDeployment"]))
            if dep is not None:
                self._deploy(dep)
        return True

    def label(self, kind: str, namespace: str | None, name: str,
              set_labels: Mapping[str, str], remove: Sequence[str] = ()) -> dict[str, Any]:
        obj = self.objects[self.key(kind, namespace, name)]
        labels = obj["metadata"].setdefault("labels", {})
        labels.update(set_labels)
        for k in remove:
            labels.pop(k, None)
        return copy.deepcopy(obj)

    def exec(self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
             timeout: float | None = None) -> ExecResult:
        if list(argv[:1]) == ["cat"] and (namespace, pod, argv[1]) in self.files:
            return ExecResult(0, self.files[(namespace, pod, argv[1])], "", tuple(argv))
        return ExecResult(1, "", f"cat: {argv[-1]}: No such file or directory", tuple(argv))

    def node_exec(self, node: str, argv: Sequence[str], *, capture: bool = False,
                  timeout: float | None = None) -> ExecResult:
        return ExecResult(1, "", "no nodes to exec in", tuple(argv))

    def wait_converged(self, namespaces: Sequence[str] | None = None, timeout: float = 60) -> None:
        return None

    def reset_namespaces(self, namespaces: Sequence[str]) -> None:
        for ns in namespaces:
            self.delete("Namespace", None, ns)

    # ---- controllers ------------------------------------------------------------------

    def _service(self, doc: dict[str, Any], old: dict[str, Any] | None) -> None:
        spec = doc["spec"]
        old_spec = (old or {}).get("spec") or {}
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = old_spec.get("clusterIP") or f"10.96.0.{next(self._svc_ips)}"
        if spec.get("type") == "NodePort":
            old_ports = {p.get("name"): p.get("nodePort") for p in old_spec.get("ports", [])}
            for port in spec["ports"]:
                port["nodePort"] = old_ports.get(port.get("name")) or next(self._node_ports)

    def _node_for(self, pod: dict[str, Any]) -> str:
        workers = [n for n, _, tainted in NODES if not tainted]
        affinity = pod["spec"].get("affinity") or {}
        for kind, same in (("podAffinity", True), ("podAntiAffinity", False)):
            for term in (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution", []):
                wanted = term["labelSelector"]["matchLabels"]
                for other in self._get("Pod", pod["metadata"].get("namespace")):
                    if _labels_match(other["metadata"].get("labels") or {}, wanted):
                        node = other["spec"]["nodeName"]
                        return node if same else next(w for w in workers if w != node)
        return workers[next(self._spread) % len(workers)]

    def _run_pod(self, pod: dict[str, Any]) -> None:
        node = self._node_for(pod)
        index = [n for n, _, _ in NODES].index(node)
        pod["spec"]["nodeName"] = node
        ready = not any("readinessProbe" in c for c in pod["spec"]["containers"])
        pod["status"] = {
            "phase": "Running", "podIP": f"10.244.{index}.{next(self._ips)}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": c["name"], "started": True, "ready": ready}
                                  for c in pod["spec"]["containers"]],
        }

    def _deploy(self, dep: dict[str, Any]) -> None:
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        mine = [o for k, o in self.objects.items()
                if k[0] == "Pod" and k[1] == ns and o["metadata"].get("ownerDeployment") == name]
        want = int(dep["spec"].get("replicas", 1))
        for i in range(len(mine), want):
            template = copy.deepcopy(dep["spec"]["template"])
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{name}-5d8f7c-{'abcdefgh'[i]}{len(self.objects)}",
                                "namespace": ns, "labels": template["metadata"]["labels"],
                                "ownerDeployment": name},
                   "spec": template["spec"]}
            self._run_pod(pod)
            self.objects[("Pod", ns, pod["metadata"]["name"])] = pod
        dep["status"] = {"readyReplicas": want, "replicas": want}

    # ---- the data plane ---------------------------------------------------------------

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for k, o in self.objects.items() if k[0] == "Pod"
                and (namespace is None or k[1] == namespace)]

    def endpoints(self, svc: Mapping[str, Any], include_not_ready: bool = False) -> list[dict[str, Any]]:
        selector = svc["spec"].get("selector") or {}
        return sorted((p for p in self.pods(svc["metadata"]["namespace"])
                       if selector and _labels_match(p["metadata"].get("labels") or {}, selector)
                       and (include_not_ready or p["status"]["conditions"][0]["status"] == "True")),
                      key=lambda p: p["metadata"]["name"])

    def probe(self, spec: ProbeSpec) -> Observation:
        self.probes.append(spec)
        if spec.kind == "dns":
            return self._dns(spec)
        src = None if spec.source.is_host else self.objects.get(
            ("Pod", spec.source.namespace, spec.source.pod or ""))
        if src is None and not spec.source.is_host:
            return Observation(Outcome.ERROR, f"no pod {spec.source}")
        peer = f"{spec.target}:{spec.port}"
        client = HOST_IP if src is None else src["status"]["podIP"]
        for svc in (o for k, o in self.objects.items() if k[0] == "Service"):
            ports = svc["spec"]["ports"]
            by_cluster_ip = spec.target == svc["spec"].get("clusterIP") \
                and any(p["port"] == spec.port for p in ports)
            by_node_port = spec.target in {ip for _, ip, _ in NODES} \
                and any(p.get("nodePort") == spec.port for p in ports)
            if not (by_cluster_ip or by_node_port):
                continue
            eps = self.endpoints(svc)
            if by_cluster_ip and svc["spec"].get("internalTrafficPolicy") == "Local" \
                    and "local-leaks" not in self.misbehave and src is not None:
                eps = [p for p in eps if p["spec"]["nodeName"] == src["spec"]["nodeName"]]
                if not eps:
                    return Observation(Outcome.TIMEOUT, "dropped", peer=peer, elapsed=spec.timeout)
            if not eps:
                if "no-reject" in self.misbehave:
                    return Observation(Outcome.CONNECTED, peer=peer)
                return Observation(Outcome.REFUSED, "connection refused", peer=peer)
            return self._answer(spec, self._choose(svc, eps, client), peer)
        for pod in self.pods():
            if pod["status"]["podIP"] == spec.target:
                return self._answer(spec, pod, peer)
        return Observation(Outcome.TIMEOUT, "nothing answers", peer=peer, elapsed=spec.timeout)

    def _choose(self, svc: Mapping[str, Any], eps: list[dict[str, Any]], client: str) -> dict[str, Any]:
        if "sticky" in self.misbehave:
            return eps[0]
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        if svc["spec"].get("sessionAffinity") == "ClientIP" and "no-affinity" not in self.misbehave:
            timeout = svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
            held = self._affinity.get((key, client))
            names = [p["metadata"]["name"] for p in eps]
            if held and self.clock.now - held[1] <= timeout and held[0] in names:
                self._affinity[(key, client)] = (held[0], self.clock.now)
                return eps[names.index(held[0])]
        self._rr[key] = self._rr.get(key, -1) + 1
        chosen = eps[self._rr[key] % len(eps)]
        self._affinity[(key, client)] = (chosen["metadata"]["name"], self.clock.now)
        return chosen

    @staticmethod
    def _answer(spec: ProbeSpec, pod: Mapping[str, Any], peer: str) -> Observation:
        name = pod["metadata"]["name"]
        if spec.kind == "http":
            return Observation(Outcome.CONNECTED, status=200, body=name + "\n", peer=peer)
        return Observation(Outcome.CONNECTED, body=name if spec.kind == "udp" else None, peer=peer)

    # ---- DNS --------------------------------------------------------------------------

    def _dns(self, spec: ProbeSpec) -> Observation:
        ns = spec.source.namespace or "default"
        name = spec.target.lower()
        if name.endswith(".") or not spec.search:
            tries = [name.rstrip(".")]
        else:
            search = [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
            tries = [f"{name}.{d}" for d in search] + [name]
        rcode, tried = "NXDOMAIN", ""
        records: list[dict[str, Any]] = []
        for qname in tries:
            tried = qname
            rcode, records = self._zone(qname, spec.qtype)
            if records:
                break
        return Observation(Outcome.CONNECTED, extra={"rcode": rcode, "qname": tried + ".",
                                                     "records": records})

    def _zone(self, qname: str, qtype: str) -> tuple[str, list[dict[str, Any]]]:
        def rec(data: Any, rtype: str = qtype) -> dict[str, Any]:
            return {"name": qname + ".", "type": rtype, "ttl": 5, "data": data}

        if qname.endswith(".in-addr.arpa"):
            ip = ".".join(reversed(qname.removesuffix(".in-addr.arpa").split(".")))
            for (k, ns, n), o in self.objects.items():
                if k == "Service" and o["spec"].get("clusterIP") == ip:
                    return "NOERROR", [rec(f"{n}.{ns}.svc.cluster.local.")] if qtype == "PTR" else []
            return "NXDOMAIN", []
        parts = qname.split(".")
        if not qname.endswith(".svc.cluster.local") or len(parts) < 5:
            return "NXDOMAIN", []
        head, svc_name, ns = parts[:-5], parts[-5], parts[-4]
        svc = self.objects.get(("Service", ns, svc_name))
        if svc is None:
            return "NXDOMAIN", []
        headless = svc["spec"].get("clusterIP") == "None"
        eps = self.endpoints(svc, include_not_ready="dns-not-ready" in self.misbehave)
        if not head:
            if headless and not eps:
                return "NXDOMAIN", []
            ips = [p["status"]["podIP"] for p in eps] if headless else [svc["spec"]["clusterIP"]]
            return "NOERROR", [rec(ip) for ip in ips] if qtype == "A" else []
        if len(head) == 2 and head[0].startswith("_") and head[1].startswith("_"):
            for port in svc["spec"]["ports"]:
                if port.get("name") == head[0][1:] and port["protocol"].lower() == head[1][1:]:
                    target = f"{svc_name}.{ns}.svc.cluster.local."
                    data = {"priority": 0, "weight": 100, "port": port["port"], "target": target}
                    return "NOERROR", [rec(data)] if qtype == "SRV" else []
            return "NXDOMAIN", []
        if len(head) == 1:
            for pod in eps:
                spec = pod["spec"]
                if spec.get("hostname") == head[0] and spec.get("subdomain") == svc_name:
                    return "NOERROR", [rec(pod["status"]["podIP"])] if qtype == "A" else []
        return "NXDOMAIN", []


# ---- tests of the fake itself ---------------------------------------------------------------


def _svc_fixture(fake: FakeCluster) -> None:
    fake.apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "t"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c"}]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "t"},
         "spec": {"containers": [{"name": "c"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "t"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                         "protocol": "TCP"}]}},
    ])


def test_fake_balances_and_rejects_like_kube_proxy() -> None:
    from clusters.probing import Source

    fake = FakeCluster()
    _svc_fixture(fake)
    ip = fake.get("Service", "t", "web")[0]["spec"]["clusterIP"]
    spec = ProbeSpec(kind="http", source=Source("t", "client"), target=ip, port=80)
    bodies = {fake.probe(spec).body for _ in range(4)}
    assert len(bodies) == 2
    fake.label("Pod", "t", "client", {"app": "x"})
    fake.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "none", "namespace": "t"},
                 "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80, "protocol": "TCP"}]}}])
    none_ip = fake.get("Service", "t", "none")[0]["spec"]["clusterIP"]
    refused = fake.probe(ProbeSpec(kind="tcp", source=Source("t", "client"), target=none_ip, port=80))
    assert refused.outcome is Outcome.REFUSED
    sticky = FakeCluster(misbehave=["sticky"])
    _svc_fixture(sticky)
    ip = sticky.get("Service", "t", "web")[0]["spec"]["clusterIP"]
    spec = ProbeSpec(kind="http", source=Source("t", "client"), target=ip, port=80)
    assert len({sticky.probe(spec).body for _ in range(4)}) == 1


def test_fake_dns_answers_services() -> None:
    from clusters.probing import Source

    fake = FakeCluster()
    _svc_fixture(fake)
    ip = fake.get("Service", "t", "web")[0]["spec"]["clusterIP"]
    obs = fake.probe(ProbeSpec(kind="dns", source=Source("t", "client"), target="web", search=True))
    assert [r["data"] for r in obs.extra["records"]] == [ip]
    obs = fake.probe(ProbeSpec(kind="dns", source=Source("t", "client"), target="nope.t.svc.cluster.local."))
    assert obs.extra["rcode"] == "NXDOMAIN"
    assert ipaddress.ip_address(ip)
