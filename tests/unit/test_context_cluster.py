"""ScopedCluster: a learner's share of a shared cluster, over the in-memory API server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubefake import FakeApi, FakeKube, pod

from clusters.context.cluster import ScopedCluster
from clusters.context.scope import LEARNER_LABEL, NAME_LABEL, OWNER_LABEL, OutsideScope, Scope
from clusters.engine import Capabilities, ExecResult
from clusters.errors import ManifestError, ObjectNotFound
from clusters.kube.cluster import KubeCluster
from clusters.probing import Observation, Outcome, ProbeSpec, Source

MARKS = {LEARNER_LABEL: "alice", OWNER_LABEL: "f00d"}


class Probes:
    def __init__(self) -> None:
        self.specs: list[ProbeSpec] = []

    def __call__(self, spec: ProbeSpec) -> Observation:
        self.specs.append(spec)
        return Observation(Outcome.DNS_ERROR, f"{spec.target} not found in alice-lab04",
                           extra={"qname": spec.target, "records": [{"data": "x.alice-lab04."}]})


@pytest.fixture
def fake() -> FakeKube:
    fake = FakeKube()
    for ns, labels in (("bob-lab04", {LEARNER_LABEL: "bob", OWNER_LABEL: "beef"}),
                       ("alice-stale", {}), ("team-x", {})):
        fake.add({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": ns, "labels": labels}})
    fake.add(pod("theirs", "bob-lab04"))
    fake.add(pod("coredns", "kube-system"))
    fake.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
    return fake


@pytest.fixture
def probes() -> Probes:
    return Probes()


def scoped(fake: FakeKube, probes: Probes, allow: bool = False) -> ScopedCluster:
    inner = KubeCluster(FakeApi(fake), "netlab", "context", capabilities=Capabilities(),
                        prober=probes)
    return ScopedCluster(inner, Scope("alice", "f00d"), name="netlab",
                         capabilities=Capabilities(dns=True), allow_cluster_scoped=allow)


SETUP: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab04"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
    pod("api", "lab04"),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "lab04"},
     "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "monitoring"},
     "data": {"target": "api.lab04.svc:80"}},
]


@pytest.fixture
def cluster(fake: FakeKube, probes: Probes) -> ScopedCluster:
    c = scoped(fake, probes)
    c.apply(SETUP, source="setup/")
    return c


def test_apply_creates_the_learners_namespaces_and_objects(fake: FakeKube,
                                                           probes: Probes) -> None:
    results = scoped(fake, probes).apply(SETUP, source="setup/")
    assert sorted((r.kind, r.namespace or "", r.name, r.action) for r in results) == [
        ("ConfigMap", "monitoring", "c", "created"), ("Namespace", "", "lab04", "created"),
        ("Namespace", "", "monitoring", "created"), ("Pod", "lab04", "api", "created"),
        ("Service", "lab04", "api", "created")]
    ns = fake.obj("Namespace", None, "alice-lab04")
    assert ns is not None and ns["metadata"]["labels"] == {**MARKS, NAME_LABEL: "alice-lab04"}
    assert fake.obj("Pod", "alice-lab04", "api") is not None
    cm = fake.obj("ConfigMap", "alice-monitoring", "c")
    assert cm is not None and cm["data"] == {"target": "api.alice-lab04.svc:80"}
    assert fake.obj("Pod", "lab04", "api") is None


def test_reads_see_only_the_learners_namespaces_in_lab_names(cluster: ScopedCluster,
                                                            fake: FakeKube) -> None:
    fake.requests.clear()
    assert [(p["metadata"]["namespace"], p["metadata"]["name"])
            for p in cluster.get("Pod", None)] == [("lab04", "api")]
    assert [n["metadata"]["name"] for n in cluster.get("Namespace")] == ["lab04", "monitoring"]
    ns = cluster.get("Namespace", None, "lab04")[0]
    assert ns["metadata"]["labels"] == {NAME_LABEL: "lab04"}
    cm = cluster.get("ConfigMap", "monitoring", "c")[0]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["data"] == {"target": "api.lab04.svc:80"}
    touched = {m[1] for r in fake.requests for m in [re.search(r"/namespaces/([^/]+)/", r.path)]
               if m}
    assert touched <= {"alice-lab04", "alice-monitoring"}


def test_other_namespaces_are_refused(cluster: ScopedCluster) -> None:
    with pytest.raises(OutsideScope, match="kube-system is outside your namespaces"):
        cluster.get("Pod", "kube-system")
    with pytest.raises(OutsideScope, match="kube-system"):
        cluster.wait_converged(["kube-system"])
    with pytest.raises(ObjectNotFound):
        cluster.get("Namespace", None, "team-x")


def test_cluster_scoped_reads_are_allowed(cluster: ScopedCluster) -> None:
    assert [n["metadata"]["name"] for n in cluster.get("Node")] == ["node-1"]


def test_someone_elses_namespace_is_never_reset_or_deleted(fake: FakeKube, probes: Probes) -> None:
    c = scoped(fake, probes)
    with pytest.raises(OutsideScope, match="someone else"):
        c.reset_namespaces(["stale"])
    with pytest.raises(OutsideScope, match="someone else"):
        c.delete("Namespace", None, "stale")
    with pytest.raises(ManifestError, match=r"document 1\): field metadata.name: .*someone else"):
        c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stale"}}],
                source="ns.yaml")
    assert not [r for r in fake.writes() if "alice-stale" in r.path]
    assert fake.obj("Namespace", None, "alice-stale") is not None


def test_a_namesake_learner_from_another_machine_is_refused(fake: FakeKube, probes: Probes) -> None:
    fake.add({"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": "alice-lab04", "labels": {LEARNER_LABEL: "alice",
                                                             OWNER_LABEL: "cafe"}}})
    with pytest.raises(OutsideScope, match=r"another kube-netlab installation.*--learner"):
        scoped(fake, probes).reset_namespaces(["lab04"])


def test_reset_deletes_the_learners_namespaces(cluster: ScopedCluster, fake: FakeKube) -> None:
    cluster.reset_namespaces(["lab04", "monitoring"])
    assert fake.obj("Namespace", None, "alice-lab04") is None
    assert fake.obj("Namespace", None, "bob-lab04") is not None
    assert cluster.get("Namespace") == []


def test_cluster_scoped_changes_are_refused_unless_allowed(fake: FakeKube, probes: Probes) -> None:
    klass = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "mine"}, "spec": {"controller": "example.com/x"}}
    with pytest.raises(ManifestError, match=r"ic.yaml \(document 1\): field kind: "
                                            r"ingressclass/mine: IngressClass is cluster-scoped"):
        scoped(fake, probes).apply([klass], source="ic.yaml")
    assert fake.obj("IngressClass", None, "mine") is None
    with pytest.raises(OutsideScope, match="--allow-cluster-scoped"):
        scoped(fake, probes).label("Node", None, "node-1", {"a": "b"})
    allowed = scoped(fake, probes, allow=True)
    allowed.apply([klass], source="ic.yaml")
    made = fake.obj("IngressClass", None, "mine")
    assert made is not None and made["metadata"]["labels"] == MARKS
    with pytest.raises(OutsideScope, match="node/node-1: it belongs to someone else"):
        allowed.label("Node", None, "node-1", {"a": "b"})
    assert allowed.delete("IngressClass", None, "mine", wait=False)


def test_the_marks_cannot_be_relabelled(cluster: ScopedCluster) -> None:
    with pytest.raises(OutsideScope, match="cannot be changed"):
        cluster.label("Namespace", None, "lab04", {}, remove=[LEARNER_LABEL])
    labelled = cluster.label("Namespace", None, "lab04", {"team": "a"})
    assert labelled["metadata"]["name"] == "lab04"
    assert labelled["metadata"]["labels"] == {NAME_LABEL: "lab04", "team": "a"}


def test_probes_go_to_the_real_names_and_come_back_in_lab_names(cluster: ScopedCluster,
                                                               probes: Probes) -> None:
    spec = ProbeSpec("http", Source("lab04", "api"), "web.monitoring.svc", 80,
                     host_header="web.monitoring")
    seen = cluster.probe(spec)
    sent = probes.specs[-1]
    assert (sent.source, sent.target, sent.host_header) == (
        Source("alice-lab04", "api"), "web.alice-monitoring.svc", "web.alice-monitoring")
    assert seen.detail == "web.monitoring.svc not found in lab04"
    assert seen.extra == {"qname": "web.monitoring.svc", "records": [{"data": "x.lab04."}]}


def test_probes_from_outside_the_pods_are_unsupported(cluster: ScopedCluster,
                                                      probes: Probes) -> None:
    for source in (Source(), Source(node="node-1")):
        seen = cluster.probe(ProbeSpec("tcp", source, "10.0.0.1", 80))
        assert seen.outcome is Outcome.UNSUPPORTED and "only from your pods" in seen.detail
    assert probes.specs == []
    with pytest.raises(OutsideScope, match="cannot run commands on nodes"):
        cluster.node_exec("node-1", ["ip", "route"])


def test_exec_rewrites_arguments_and_restores_captured_output(cluster: ScopedCluster) -> None:
    calls: list[tuple[str, str, list[str], bool]] = []

    def inner_exec(namespace: str, pod: str, argv: list[str], *, capture: bool = False,
                   timeout: float | None = None) -> ExecResult:
        calls.append((namespace, pod, list(argv), capture))
        return ExecResult(0, "Name: api.alice-lab04.svc.cluster.local\n", "", tuple(argv))

    cluster.inner.exec = inner_exec  # type: ignore[method-assign]
    result = cluster.exec("lab04", "api", ["nslookup", "api.lab04"], capture=True)
    assert calls == [("alice-lab04", "api", ["nslookup", "api.alice-lab04"], True)]
    assert result.stdout == "Name: api.lab04.svc.cluster.local\n"
    assert result.argv == ("nslookup", "api.lab04")


def test_wait_converged_waits_on_the_real_namespaces(cluster: ScopedCluster) -> None:
    waited: list[Any] = []
    cluster.inner.wait_converged = lambda ns=None, timeout=60: waited.append(ns)  # type: ignore
    cluster.wait_converged(["lab04"])
    cluster.wait_converged()
    assert waited == [["alice-lab04"], ["alice-lab04", "alice-monitoring"]]


def test_a_missing_namespace_says_which_file_and_document(fake: FakeKube, probes: Probes) -> None:
    with pytest.raises(ManifestError, match=r"app\.yaml"):
        scoped(fake, probes).apply([pod("x", "lab09")], source="app.yaml")


def test_objects_listed_everywhere_by_name(cluster: ScopedCluster) -> None:
    assert [p["metadata"]["namespace"] for p in cluster.get("Pod", None, "api")] == ["lab04"]
    with pytest.raises(ObjectNotFound, match="in your namespaces"):
        cluster.get("Pod", None, "theirs")


def test_custom_resources_of_a_crd_in_the_same_batch_are_scoped(fake: FakeKube,
                                                                probes: Probes) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.org"},
           "spec": {"group": "example.org", "scope": "Namespaced",
                    "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    gadget = {"apiVersion": "example.org/v1", "kind": "Gadget",
              "metadata": {"name": "g", "namespace": "lab04"}, "spec": {"to": "api.lab04"}}
    c = scoped(fake, probes, allow=True)
    c.apply(SETUP[:1])
    c.apply([crd, gadget], source="gadget.yaml")
    made = fake.objects.get(("example.org", "gadgets", "alice-lab04", "g"))
    assert made is not None and made["spec"] == {"to": "api.alice-lab04"}
    assert ("example.org", "gadgets", "lab04", "g") not in fake.objects
