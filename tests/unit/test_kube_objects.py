"""apply/get/delete/label of clusters.kube.objects against FakeKube (and once over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeApi, FakeKube, Recorded, serve

from clusters.errors import ClusterError, ManifestError, ObjectNotFound, WaitTimeout
from clusters.kube import objects
from clusters.kube.resources import UnknownKind, resources_for
from clusters.kube.transport import ApiForbidden, KubeApi

SSA = {"fieldManager": "kube-netlab", "force": "true", "fieldValidation": "Strict"}
DRY = {**SSA, "dryRun": "All"}


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def api(fake: FakeKube) -> FakeApi:
    return FakeApi(fake)


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cm(name: str, namespace: str | None = "lab", **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name: str, namespace: str = "lab") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}


def patches(fake: FakeKube) -> list[tuple[str, str]]:
    """(dry|real, path) of every apply patch, in order."""
    return [("dry" if r.query.get("dryRun") else "real", r.path) for r in fake.requests
            if r.method == "PATCH" and r.content_type == "application/apply-patch+yaml"]


def real_writes(fake: FakeKube) -> list[Recorded]:
    return [r for r in fake.writes() if not r.query.get("dryRun")]


# ---------------------------------------------------------------- apply


def test_apply_dry_runs_everything_then_applies_namespaces_first(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    results = objects.apply(api, [deployment("web"), cm("conf"), ns("lab"), ns("fresh"),
                                  cm("other", "fresh")], "app.yaml")
    assert [(r.kind, r.name, r.action) for r in results] == [
        ("Deployment", "web", "created"), ("ConfigMap", "conf", "created"),
        ("Namespace", "lab", "unchanged"), ("Namespace", "fresh", "created"),
        ("ConfigMap", "other", "created")]
    assert patches(fake) == [
        # everything the server can judge now, in apply order, as a dry run
        ("dry", "/api/v1/namespaces/lab"), ("dry", "/api/v1/namespaces/fresh"),
        ("dry", "/api/v1/namespaces/lab/configmaps/conf"),
        ("dry", "/apis/apps/v1/namespaces/lab/deployments/web"),
        # then the namespaces, then what lives in a new one is judged, then the rest
        ("real", "/api/v1/namespaces/lab"), ("real", "/api/v1/namespaces/fresh"),
        ("dry", "/api/v1/namespaces/fresh/configmaps/other"),
        ("real", "/api/v1/namespaces/lab/configmaps/conf"),
        ("real", "/api/v1/namespaces/fresh/configmaps/other"),
        ("real", "/apis/apps/v1/namespaces/lab/deployments/web")]
    for rec in fake.requests:
        if rec.method == "PATCH":
            assert rec.query in (SSA, DRY)


def test_reapply_is_unchanged_then_configured(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    assert objects.apply(api, [cm("c", k="1")])[0].action == "created"
    assert objects.apply(api, [cm("c", k="1")])[0].action == "unchanged"
    assert objects.apply(api, [cm("c", k="2")])[0].action == "configured"


def test_what_is_sent_has_no_status_or_server_fields(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    doc = cm("c")
    doc["metadata"].update(resourceVersion="7", uid="u", managedFields=[{}], labels=None)
    doc["status"] = {"x": 1}
    objects.apply(api, [doc])
    sent = [r.body for r in fake.requests if r.method == "PATCH"][-1]
    assert sent == {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "lab"}, "data": {"k": "v"}}


def test_default_namespace_and_cluster_scoped_objects(fake: FakeKube) -> None:
    fake.add(ns("mine"))
    api = FakeApi(fake, namespace="mine")
    doc = ns("other")
    doc["metadata"]["namespace"] = "ignored"
    results = objects.apply(api, [cm("c", None), doc], default_namespace="mine")
    assert [(r.kind, r.namespace) for r in results] == [("ConfigMap", "mine"), ("Namespace", None)]
    assert fake.obj("ConfigMap", "mine", "c") is not None
    assert "namespace" not in fake.obj("Namespace", None, "other")["metadata"]  # type: ignore[index]


def test_a_refused_document_changes_nothing(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    fake.reject("ConfigMap", "bad", "data[k]", "must be short")
    with pytest.raises(ManifestError) as info:
        objects.apply(api, [cm("good"), cm("bad"), ns("lab")], "app.yaml")
    err = info.value
    assert (err.source, err.index, err.path) == ("app.yaml", 1, "data[k]")
    assert "configmap/bad refused by the API server (422 Invalid)" in str(err)
    assert "must be short" in str(err) and "nothing was applied" in str(err)
    assert real_writes(fake) == []


def test_every_refused_document_is_listed(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    fake.reject("ConfigMap", "a", "data", "no")
    fake.reject("ConfigMap", "b", "data", "nope")
    with pytest.raises(ManifestError, match=r"2 documents were refused; nothing was applied") as info:
        objects.apply(api, [cm("a"), cm("b")], "x.yaml")
    assert "x.yaml (document 1)" in str(info.value) and "x.yaml (document 2)" in str(info.value)


def test_client_side_schema_check_before_any_request(fake: FakeKube, api: FakeApi) -> None:
    doc = deployment("web")
    doc["spec"]["replica"] = 2
    with pytest.raises(ManifestError) as info:
        objects.apply(api, [ns("lab"), doc], "web.yaml")
    assert (info.value.index, info.value.path) == (1, "spec.replica")
    assert "did you mean replicas?" in str(info.value)
    assert fake.writes() == []


def test_local_engine_limits_do_not_apply_to_real_clusters(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "v6", "namespace": "lab"},
              "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/64"}}]}]}}
    assert objects.apply(api, [policy])[0].action == "created"


def test_missing_name_and_non_mapping(api: FakeApi) -> None:
    with pytest.raises(ManifestError, match="2 documents were refused") as info:
        objects.apply(api, [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}},
                            ["not", "a", "mapping"]], "s.yaml")  # type: ignore[list-item]
    assert "field metadata.name: required value is missing" in str(info.value)
    assert "a document must be a mapping" in str(info.value)


def test_unknown_kind_names_kind_apiversion_and_crd(fake: FakeKube, api: FakeApi) -> None:
    doc = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "r", "namespace": "default"}}
    with pytest.raises(ManifestError) as info:
        objects.apply(api, [cm("c", "default"), doc], "route.yaml")
    text = str(info.value)
    assert "route.yaml (document 2): field kind: no kind 'HTTPRoute' in apiVersion " \
           "'gateway.networking.k8s.io/v1'" in text
    assert "does not serve" in text and "CustomResourceDefinition may be missing" in text
    assert fake.writes() == []


def test_missing_namespace_is_a_manifest_error(fake: FakeKube, api: FakeApi) -> None:
    with pytest.raises(ManifestError) as info:
        objects.apply(api, [cm("c", "ghost")], "c.yaml")
    assert info.value.path == "metadata.namespace"
    assert 'namespaces "ghost" not found' in str(info.value)
    assert real_writes(fake) == []


def test_a_refusal_after_the_namespace_says_what_was_applied(fake: FakeKube, api: FakeApi) -> None:
    fake.reject("ConfigMap", "bad", "data", "refused")
    with pytest.raises(ManifestError) as info:
        objects.apply(api, [ns("fresh"), cm("bad", "fresh")], "f.yaml")
    assert "only these were applied before it: namespace/fresh created; nothing else" in str(info.value)
    assert [r.path for r in real_writes(fake)] == ["/api/v1/namespaces/fresh"]


def crd() -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.lab.example.com"},
            "spec": {"group": "lab.example.com", "scope": "Namespaced",
                     "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


def test_crd_and_its_custom_resources_in_one_batch(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    gadget = {"apiVersion": "lab.example.com/v1", "kind": "Gadget",
              "metadata": {"name": "g", "namespace": "lab"}, "spec": {"size": 3}}
    results = objects.apply(api, [gadget, crd()], "crd.yaml")
    assert [(r.kind, r.action) for r in results] == [("Gadget", "created"),
                                                      ("CustomResourceDefinition", "created")]
    order = patches(fake)
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.lab.example.com"
    gadget_path = "/apis/lab.example.com/v1/namespaces/lab/gadgets/g"
    assert order == [("dry", crd_path), ("real", crd_path), ("dry", gadget_path), ("real", gadget_path)]
    # Established was checked after the CRD was applied, and discovery asked again after that
    gets = fake.paths("GET")
    real_crd = fake.requests.index(next(r for r in fake.requests if r.method == "PATCH"
                                        and r.path == crd_path and not r.query.get("dryRun")))
    established = max(i for i, r in enumerate(fake.requests) if r.method == "GET" and r.path == crd_path)
    rediscovered = max(i for i, r in enumerate(fake.requests) if r.path == "/apis/lab.example.com/v1")
    assert real_crd < established < rediscovered
    assert gets.count("/apis/lab.example.com/v1") >= 2


def test_custom_resource_of_a_served_crd(fake: FakeKube, api: FakeApi) -> None:
    widget = {"apiVersion": "netlab.example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": "default"}, "spec": {"x": 1}}
    assert objects.apply(api, [widget])[0].action == "created"
    assert fake.obj("Widget", "default", "w")["spec"] == {"x": 1}  # type: ignore[index]


def test_forbidden_dry_run_is_not_a_manifest_error(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    fake.fail("PATCH", "/api/v1/namespaces/lab/configmaps/c", 403, "Forbidden",
              'configmaps "c" is forbidden: User "bob" cannot patch resource "configmaps"')
    with pytest.raises(ApiForbidden, match="not allowed to patch configmaps"):
        objects.apply(api, [cm("c")])
    assert real_writes(fake) == []


def test_server_warnings_reach_the_result(fake: FakeKube, api: FakeApi) -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "i", "namespace": "default"}, "spec": {"ingressClassName": "old"}}
    assert objects.apply(api, [ing])[0].warnings == ("ingressClassName old is deprecated",)


# ---------------------------------------------------------------- get / delete / label


def test_get_lists_everywhere_and_fills_types(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("a"))
    fake.add(cm("one", "a"))
    fake.add(cm("two", "default"))
    items = objects.get(api, "ConfigMap")
    assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in items] == [
        ("v1", "ConfigMap", "one"), ("v1", "ConfigMap", "two")]
    assert fake.requests[-1].path == "/api/v1/configmaps"
    assert [i["metadata"]["name"] for i in objects.get(api, "cm", "a")] == ["one"]
    assert fake.requests[-1].path == "/api/v1/namespaces/a/configmaps"


def test_get_by_selector(fake: FakeKube, api: FakeApi) -> None:
    for name, tier in (("x", "web"), ("y", "db")):
        doc = cm(name, "default")
        doc["metadata"]["labels"] = {"tier": tier}
        fake.add(doc)
    assert [i["metadata"]["name"] for i in objects.get(api, "configmaps", "default",
                                                       selector={"tier": "db"})] == ["y"]
    assert fake.requests[-1].query["labelSelector"] == "tier=db"
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}
    assert [i["metadata"]["name"] for i in objects.get(api, "cm", "default", selector=sel)] == ["x"]
    assert fake.requests[-1].query["labelSelector"] == "tier in (web,api)"


def test_get_by_name(fake: FakeKube, api: FakeApi) -> None:
    fake.add(cm("c", "default"))
    [found] = objects.get(api, "configmap", None, "c")
    assert found["kind"] == "ConfigMap"
    assert fake.requests[-1].path == "/api/v1/namespaces/default/configmaps/c"
    with pytest.raises(ObjectNotFound, match=r'^configmaps "nope" not found in namespace "default"$'):
        objects.get(api, "ConfigMap", "default", "nope")


@pytest.mark.parametrize(("word", "path"), [
    ("deploy", "/apis/apps/v1/namespaces/default/deployments"),
    ("Deployment", "/apis/apps/v1/namespaces/default/deployments"),
    ("networkpolicies.networking.k8s.io", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"),
    ("netpol.v1.networking.k8s.io", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"),
    ("wd", "/apis/netlab.example.com/v1/namespaces/default/widgets"),
    ("ns", "/api/v1/namespaces"),
])
def test_kind_words_resolve_through_discovery(fake: FakeKube, api: FakeApi, word: str, path: str) -> None:
    objects.get(api, word, "default")
    assert fake.requests[-1].path == path


def test_unknown_word_is_value_and_cluster_error(api: FakeApi) -> None:
    with pytest.raises(UnknownKind) as info:
        objects.get(api, "frobnicators")
    assert isinstance(info.value, ValueError) and isinstance(info.value, ClusterError)
    assert "no resource type 'frobnicators'" in str(info.value)


def test_discovery_is_cached_per_api(fake: FakeKube, api: FakeApi) -> None:
    objects.get(api, "pods", "default")
    objects.get(api, "po", "default")
    assert fake.paths("GET").count("/apis") == 1
    assert resources_for(api) is resources_for(api)
    assert resources_for(FakeApi(fake)) is not resources_for(api)


def test_delete_in_background(fake: FakeKube, api: FakeApi) -> None:
    fake.add(cm("c", "default"))
    assert objects.delete(api, "ConfigMap", "default", "c") is True
    rec, check = fake.requests[-2:]
    assert (rec.method, rec.path) == ("DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert rec.body == {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    assert (check.method, check.path) == ("GET", rec.path)  # gone, as kubectl delete waits
    assert objects.delete(api, "ConfigMap", "default", "c") is False


def test_delete_waits_until_a_namespace_is_gone(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    fake.terminating_reads = 2
    assert objects.delete(api, "Namespace", None, "lab") is True
    assert fake.obj("Namespace", None, "lab") is None
    assert fake.paths("GET").count("/api/v1/namespaces/lab") == 3


def test_delete_of_a_stuck_object_times_out_naming_finalizers(fake: FakeKube, api: FakeApi) -> None:
    fake.add(ns("lab"))
    fake.stuck["lab"] = "waiting for example.com/hold"
    with pytest.raises(WaitTimeout,
                       match=r"namespace/lab still exists \(terminating, finalizers: kubernetes\)"):
        objects.delete(api, "ns", None, "lab", timeout=0.1)
    assert objects.delete(api, "ns", None, "lab", wait=False) is True


def test_label_sets_and_removes_with_a_merge_patch(fake: FakeKube, api: FakeApi) -> None:
    doc = cm("c", "default")
    doc["metadata"]["labels"] = {"old": "1", "keep": "2"}
    fake.add(doc)
    out = objects.label(api, "cm", "default", "c", {"new": "3"}, ["old"])
    assert out["metadata"]["labels"] == {"keep": "2", "new": "3"} and out["kind"] == "ConfigMap"
    rec = fake.requests[-1]
    assert (rec.method, rec.content_type, rec.query) == (
        "PATCH", "application/merge-patch+json", {"fieldManager": "kube-netlab"})
    assert rec.body == {"metadata": {"labels": {"old": None, "new": "3"}}}
    with pytest.raises(ObjectNotFound, match='configmaps "gone" not found'):
        objects.label(api, "cm", "default", "gone", {"a": "b"})


# ---------------------------------------------------------------- the real client


def test_apply_get_label_delete_over_http(tmp_path: Path) -> None:
    fake = FakeKube()
    with serve(fake, tmp_path) as (_url, kubeconfig):
        api = KubeApi.from_kubeconfig(kubeconfig, None)
        results = objects.apply(api, [ns("lab"), cm("c")], "c.yaml")
        assert [r.action for r in results] == ["created", "created"]
        applies = [r for r in fake.requests if r.method == "PATCH"]
        assert [r.content_type for r in applies] == ["application/apply-patch+yaml"] * 4
        assert applies[0].query == DRY and applies[-1].query == SSA
        assert applies[-1].body["data"] == {"k": "v"}
        assert objects.get(api, "cm", None, "c")[0]["metadata"]["namespace"] == "lab"  # context ns
        assert objects.label(api, "cm", "lab", "c", {"x": "y"})["metadata"]["labels"] == {"x": "y"}
        assert fake.requests[-1].content_type == "application/merge-patch+json"
        assert objects.delete(api, "cm", "lab", "c") is True
        assert fake.requests[-2].body["propagationPolicy"] == "Background"
        with pytest.raises(ObjectNotFound):
            objects.get(api, "cm", "lab", "c")
        api.close()
