"""``lab get/delete/label`` ask the cluster which kinds it serves (Cluster.resolve_kind).

The cluster is a :class:`KubeCluster` on the in-memory API server (FakeKube), handed to the
CLI in place of ``Session.cluster()``: Ingress, IngressClass and a CRD's kind (Gateway API's
HTTPRoute) are served there though the local engine's table lacks them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeApi, FakeKube
from labrun import lab

from clusters.engine import Capabilities, KindRef
from clusters.errors import ClusterNotFound
from clusters.kube import KubeCluster
from clusters.local.engine import LocalCluster
from labs.session import Session

HTTPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"kind": "HTTPRoute", "plural": "httproutes", "singular": "httproute"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


def ingress(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ingressClassName": "nginx", "defaultBackend": {
                "service": {"name": "web", "port": {"number": 80}}}}}


@pytest.fixture
def fake() -> FakeKube:
    fake = FakeKube()
    fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    fake.add(ingress("web", "x"))
    fake.add({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
              "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    return fake


@pytest.fixture
def cluster(fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubeCluster:
    """The CLI's cluster is a KubeCluster on ``fake`` (workspace and state private)."""
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    kube = KubeCluster(FakeApi(fake), "lab", "kind", capabilities=Capabilities())  # type: ignore[arg-type]
    monkeypatch.setattr(Session, "cluster", lambda self: kube)
    return kube


def gets(fake: FakeKube) -> list[str]:
    """Object reads (not discovery: /api, /api/v1, /apis, /apis/GROUP/VERSION)."""
    def discovery(path: str) -> bool:
        parts = path.strip("/").split("/")
        return len(parts) <= (2 if parts[0] == "api" else 3)

    return [r.path for r in fake.requests if r.method == "GET" and not discovery(r.path)]


# ---------------------------------------------------------------- resolve_kind itself


def test_kube_cluster_resolves_every_kubectl_word(fake: FakeKube, cluster: KubeCluster) -> None:
    assert cluster.resolve_kind("ingress") == KindRef("Ingress", True)
    assert cluster.resolve_kind("ing") == KindRef("Ingress", True)
    assert cluster.resolve_kind("ingressclasses") == KindRef("IngressClass", False)
    assert cluster.resolve_kind("deployments.apps") == KindRef("Deployment", True)
    assert cluster.resolve_kind("po") == KindRef("Pod", True)
    assert cluster.resolve_kind("Namespace") == KindRef("Namespace", False)


def test_kube_cluster_unknown_kind_is_a_value_error_listing_names(cluster: KubeCluster) -> None:
    with pytest.raises(ValueError) as err:
        cluster.resolve_kind("frobnicators")
    text = str(err.value)
    assert "'frobnicators'" in text and "CustomResourceDefinition may be missing" in text
    names = text.split("accepted names: ", 1)[1].split(", ")
    assert {"pods", "po", "ingresses", "ing", "widgets", "netpol"} <= set(names)
    assert names == sorted(names)


def test_local_cluster_resolves_from_its_own_table() -> None:
    local = object.__new__(LocalCluster)  # resolve_kind needs no daemon and no state
    assert local.resolve_kind("deploy") == KindRef("Deployment", True)
    assert local.resolve_kind("networkpolicies.networking.k8s.io") == KindRef(
        "NetworkPolicy", True)
    with pytest.raises(ValueError, match=r"accepted names: .*pods"):
        local.resolve_kind("ingress")


# ---------------------------------------------------------------- lab get


def test_get_ingress_in_a_namespace(fake: FakeKube, cluster: KubeCluster) -> None:
    ran = lab("get", "ingress", "-n", "x", "-o", "name")
    assert (ran.code, ran.out.split()) == (0, ["ingress/web"]), ran.err
    assert gets(fake) == ["/apis/networking.k8s.io/v1/namespaces/x/ingresses"]

    table = lab("get", "ing", "-n", "x")
    assert table.code == 0, table.err
    assert table.out.splitlines()[0].split()[0] == "NAME" and "web" in table.out


def test_get_a_cluster_scoped_kind_ignores_the_namespace(fake: FakeKube,
                                                         cluster: KubeCluster) -> None:
    ran = lab("get", "ingressclasses", "-n", "x", "-o", "json")
    assert ran.code == 0, ran.err
    items = json.loads(ran.out)["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [("IngressClass", "nginx")]
    assert gets(fake) == ["/apis/networking.k8s.io/v1/ingressclasses"]


def test_get_a_custom_resource_by_its_group_qualified_name(fake: FakeKube,
                                                           cluster: KubeCluster) -> None:
    cluster.apply([HTTPROUTE_CRD])
    fake.add({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
              "metadata": {"name": "shop", "namespace": "default"},
              "spec": {"parentRefs": [{"name": "gw"}]}})
    ran = lab("get", "httproutes.gateway.networking.k8s.io", "-o", "json")
    assert ran.code == 0, ran.err
    items = json.loads(ran.out)["items"]
    assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in items] == [
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "shop")]
    assert gets(fake)[-1] == "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"

    one = lab("get", "httproute", "shop", "-o", "name")
    assert (one.code, one.out.split()) == (0, ["httproute/shop"]), one.err


def test_get_unknown_kind_is_a_usage_error_listing_names(fake: FakeKube,
                                                         cluster: KubeCluster) -> None:
    ran = lab("get", "frobnicators")
    assert ran.code == 2
    assert "frobnicators" in ran.err and "accepted names:" in ran.err
    assert "ingresses" in ran.err and "pods" in ran.err
    assert gets(fake) == []


# ---------------------------------------------------------------- lab label / delete


def test_label_an_ingress(fake: FakeKube, cluster: KubeCluster) -> None:
    ran = lab("label", "ing", "web", "tier=edge", "-n", "x")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "ingress/web labeled"
    obj = fake.obj("Ingress", "x", "web")
    assert obj is not None and obj["metadata"]["labels"] == {"tier": "edge"}

    clash = lab("label", "ingress", "web", "tier=core", "-n", "x")
    assert clash.code == 2 and "--overwrite" in clash.err


def test_label_unknown_kind_is_a_usage_error(cluster: KubeCluster) -> None:
    ran = lab("label", "frobs", "web", "a=b")
    assert ran.code == 2 and "'frobs'" in ran.err and "accepted names:" in ran.err


def test_delete_ingress_and_ingressclass(fake: FakeKube, cluster: KubeCluster) -> None:
    ran = lab("delete", "ingresses", "web", "-n", "x")
    assert (ran.code, ran.out.strip()) == (0, "ingress/web deleted"), ran.err
    assert fake.obj("Ingress", "x", "web") is None

    ran = lab("delete", "ingressclass", "nginx")
    assert (ran.code, ran.out.strip()) == (0, "ingressclass/nginx deleted"), ran.err
    deletes = [r.path for r in fake.requests if r.method == "DELETE"]
    assert deletes == ["/apis/networking.k8s.io/v1/namespaces/x/ingresses/web",
                       "/apis/networking.k8s.io/v1/ingressclasses/nginx"]

    again = lab("delete", "ingressclass", "nginx")
    assert again.code == 1 and 'ingressclass "nginx" not found' in again.err
    assert "in namespace" not in again.err  # cluster-scoped: no namespace to name


def test_delete_unknown_kind_is_a_usage_error(fake: FakeKube, cluster: KubeCluster) -> None:
    ran = lab("delete", "frobs", "web")
    assert ran.code == 2 and "'frobs'" in ran.err
    assert [r for r in fake.requests if r.method == "DELETE"] == []


# ---------------------------------------------------------------- without a cluster


def test_without_a_cluster_only_non_builtin_words_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))

    def missing(self: Session) -> Any:
        raise ClusterNotFound("no cluster named 'lab' is running")

    monkeypatch.setattr(Session, "cluster", missing)
    ran = lab("get", "frobnicators")
    assert ran.code == 2
    assert "'frobnicators'" in ran.err and "no cluster named 'lab' is running" in ran.err

    ran = lab("get", "pods")
    assert ran.code == 1 and "no cluster named 'lab' is running" in ran.err
    assert "Usage" not in ran.err
