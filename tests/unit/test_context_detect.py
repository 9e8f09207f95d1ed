"""Capability detection on a shared cluster: tried in the learner's namespaces, not assumed."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from kubefake import FakeApi, FakeKind, FakeKube, ready_status

from clusters.context.cluster import ScopedCluster
from clusters.context.detect import detect, detect_gateway, detect_ingress, detect_istio
from clusters.context.record import Detected
from clusters.context.scope import Scope
from clusters.engine import Capabilities
from clusters.kube.cluster import KubeCluster
from clusters.probing import Observation, Outcome, ProbeSpec


class Network:
    """Answers probes the way the cluster under test would."""

    def __init__(self, fake: FakeKube, *, enforces: bool = True, dns: bool = True,
                 services: bool = True) -> None:
        self.fake, self.enforces, self.dns, self.services = fake, enforces, dns, services
        self.specs: list[ProbeSpec] = []

    def _service_ips(self) -> set[str]:
        return {str(o["spec"].get("clusterIP")) for k, o in self.fake.objects.items()
                if k[1] == "services"}

    def __call__(self, spec: ProbeSpec) -> Observation:
        self.specs.append(spec)
        if spec.kind == "dns":
            if not self.dns:
                return Observation(Outcome.TIMEOUT, elapsed=2.0)
            ip = next(iter(self._service_ips()))
            return Observation(Outcome.CONNECTED, extra={
                "rcode": "NOERROR", "qname": spec.target,
                "records": [{"name": spec.target, "type": "A", "ttl": 5, "data": ip}]})
        if spec.target in self._service_ips():
            return Observation(Outcome.CONNECTED if self.services else Outcome.TIMEOUT)
        ns = spec.source.namespace
        denied = any(k[1] == "networkpolicies" and k[2] == ns for k in self.fake.objects)
        return Observation(Outcome.TIMEOUT if denied and self.enforces else Outcome.CONNECTED)


def make(fake: FakeKube, network: Network) -> ScopedCluster:
    inner = KubeCluster(FakeApi(fake), "netlab", "context", capabilities=Capabilities(),
                        prober=network)
    cluster = ScopedCluster(inner, Scope("alice", "f00d"), name="netlab",
                            capabilities=Capabilities(propagation_seconds=0.3))
    ips = (f"10.244.1.{i}" for i in itertools.count(10))

    def converge(namespaces: Any = None, timeout: float = 60) -> None:
        for (_, plural, ns, name), obj in list(fake.objects.items()):
            if plural == "pods" and not (obj.get("status") or {}).get("podIP"):
                status = ready_status()
                status["podIP"] = next(ips)
                fake.set_status("Pod", ns, name, status)
            if plural == "services" and not obj["spec"].get("clusterIP"):
                obj["spec"]["clusterIP"] = "10.96.0.42"
    inner.wait_converged = converge  # type: ignore[method-assign]
    return cluster


def namespaces_left(fake: FakeKube) -> list[str]:
    return sorted(k[3] for k in fake.objects if k[1] == "namespaces"
                  and k[3].startswith("alice-"))


@pytest.fixture
def fake() -> FakeKube:
    fake = FakeKube()
    fake.terminating_reads = 0
    return fake


def test_a_capable_cluster(fake: FakeKube) -> None:
    fake.add({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
              "metadata": {"name": "nginx", "annotations": {
                  "ingressclass.kubernetes.io/is-default-class": "true"}},
              "spec": {"controller": "nginx.org/ingress-controller"}})
    network = Network(fake)
    said: list[str] = []
    found = detect(make(fake, network), said.append, image="agnhost:test")
    assert {k: v.present for k, v in found.items()} == {
        "services": True, "dns": True, "network_policy": True, "ingress": True,
        "gateway": False, "istio": False, "load_balancer": False}
    assert found["gateway"].how == "the cluster serves no Gateway API (no GatewayClass CRD)"
    assert found["istio"].how == "the cluster serves no Istio APIs (networking.istio.io)"
    assert found["ingress"].how == "IngressClass nginx (default)"
    assert "blocked" in found["network_policy"].how
    assert "costs money" in found["load_balancer"].how
    dns = next(s for s in network.specs if s.kind == "dns")
    assert dns.target == "echo.alice-netlab-detect.svc.cluster.local."
    assert all(s.source.namespace and s.source.namespace.startswith("alice-")
               for s in network.specs)
    assert namespaces_left(fake) == []
    writes = {m[1] for r in fake.writes()
              for m in [re.search(r"/namespaces/([^/]+)", r.path)] if m}
    assert writes and all(w.startswith("alice-netlab-") for w in writes)
    assert said[0].startswith("Detecting what the cluster can do")


def test_a_cluster_that_does_not_enforce_policies(fake: FakeKube) -> None:
    found = detect(make(fake, Network(fake, enforces=False)), image="agnhost:test")
    assert not found["network_policy"].present
    assert "does not enforce NetworkPolicy" in found["network_policy"].how
    assert not found["ingress"].present
    assert found["ingress"].how == "the cluster has no IngressClass (no Ingress controller)"
    assert namespaces_left(fake) == []


def test_no_dns_and_no_services_are_said_with_what_was_seen(fake: FakeKube,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clusters.context.detect.ANSWER_WITHIN", 0.0)
    network = Network(fake, dns=False, services=False)
    cluster = make(fake, network)
    found = detect(cluster, image="agnhost:test")
    assert not found["services"].present
    assert "could not reach a Service's ClusterIP 10.96.0.42:80: TIMEOUT" in found["services"].how
    assert not found["dns"].present and "could not resolve" in found["dns"].how


def test_pods_that_cannot_start_make_every_probe_false(fake: FakeKube) -> None:
    from clusters.errors import WaitTimeout

    cluster = make(fake, Network(fake))

    def stuck(namespaces: Any = None, timeout: float = 60) -> None:
        raise WaitTimeout("pods", timeout, "pod server: ImagePullBackOff")
    cluster.inner.wait_converged = stuck  # type: ignore[method-assign]
    found = detect(cluster, image="agnhost:test")
    assert not found["services"].present and "ImagePullBackOff" in found["services"].how
    assert not found["network_policy"].present
    assert "not proven" in found["network_policy"].how
    assert namespaces_left(fake) == []


def test_unreadable_ingress_classes(fake: FakeKube) -> None:
    fake.fail("GET", "/apis/networking.k8s.io/v1/ingressclasses", 403, "Forbidden",
              "ingressclasses is forbidden: User cannot list")
    found = detect_ingress(make(fake, Network(fake)))
    assert not found.present and "could not be read" in found.how and "forbidden" in found.how


def test_gateway_and_istio_are_detected_from_what_the_cluster_serves(fake: FakeKube) -> None:
    fake.kinds.append(FakeKind("gateway.networking.k8s.io", "v1", "GatewayClass",
                               "gatewayclasses", False))
    fake.kinds.append(FakeKind("networking.istio.io", "v1", "VirtualService",
                               "virtualservices", True, ("vs",)))
    cluster = make(fake, Network(fake))
    found = detect_gateway(cluster)
    assert not found.present
    assert found.how == "the Gateway API CRDs are installed but there is no GatewayClass"
    fake.add({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
              "metadata": {"name": "eg"}, "spec": {"controllerName": "x"}})
    assert detect_gateway(cluster).how == "no GatewayClass is accepted by a controller: eg"
    fake.set_status("GatewayClass", None, "eg", {"conditions": [
        {"type": "Accepted", "status": "True"}]})
    assert detect_gateway(cluster) == Detected(True, "GatewayClass eg (accepted by its controller)")
    istio = detect_istio(cluster)
    assert istio.present and "sidecar injector runs is not verified" in istio.how
