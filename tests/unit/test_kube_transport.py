"""KubeApi through the real kubernetes client against FakeKube served over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubefake import TOKEN, FakeKube, serve

from clusters.errors import ClusterError, ObjectNotFound
from clusters.kube.transport import (
    APPLY_PATCH,
    MERGE_PATCH,
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiInvalid,
    ApiNotFound,
    ApiUnauthorized,
    ApiUnreachable,
    KubeApi,
    KubeconfigError,
    Target,
    status_error,
)


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def served(fake: FakeKube, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve(fake, tmp_path) as where:
        yield where


@pytest.fixture
def api(served: tuple[str, Path]) -> Iterator[KubeApi]:
    client = KubeApi.from_kubeconfig(served[1], None)
    yield client
    client.close()


# ---------------------------------------------------------------- kubeconfig


def test_current_context_is_used_and_nothing_global_changes(served: tuple[str, Path]) -> None:
    from kubernetes import client as kclient

    before = kclient.Configuration.get_default_copy().host
    api = KubeApi.from_kubeconfig(served[1], None)
    assert api.context == "kind-fake"
    assert api.server == served[0]
    assert api.namespace == "lab"  # the context's namespace
    assert kclient.Configuration.get_default_copy().host == before


def test_a_named_context_is_used(served: tuple[str, Path], fake: FakeKube) -> None:
    api = KubeApi.from_kubeconfig(served[1], "intruder")
    assert (api.context, api.namespace) == ("intruder", "default")
    with pytest.raises(ApiUnauthorized, match="credentials of context 'intruder' were rejected"):
        api.request("GET", "/api/v1/namespaces")


def test_unknown_context_lists_the_contexts(served: tuple[str, Path]) -> None:
    with pytest.raises(KubeconfigError, match=r"has no context 'prod'; its contexts: kind-fake, intruder"):
        KubeApi.from_kubeconfig(served[1], "prod")


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"nope\.yaml does not exist"):
        KubeApi.from_kubeconfig(tmp_path / "nope.yaml", None)


def test_unreadable_kubeconfig(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [unclosed\n")
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        KubeApi.from_kubeconfig(bad, None)


def test_kubeconfig_from_the_environment(served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(served[1]))
    assert KubeApi.from_kubeconfig(None, None).server == served[0]


# ---------------------------------------------------------------- requests


def test_get_sends_the_token_and_parses_json(api: KubeApi, fake: FakeKube) -> None:
    ns = api.request("GET", "/api/v1/namespaces/default")
    assert ns["metadata"]["name"] == "default"
    rec = fake.requests[-1]
    assert (rec.method, rec.path) == ("GET", "/api/v1/namespaces/default")
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"
    assert rec.headers["accept"] == "application/json"


def test_apply_patch_is_sent_as_apply_yaml_with_the_query(api: KubeApi, fake: FakeKube) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}
    out = api.request("PATCH", "/api/v1/namespaces/default/configmaps/c", body=body,
                      query={"fieldManager": "kube-netlab", "force": "true"},
                      content_type=APPLY_PATCH)
    assert out["data"] == {"k": "v"}
    rec = fake.requests[-1]
    assert rec.content_type == "application/apply-patch+yaml"
    assert rec.query == {"fieldManager": "kube-netlab", "force": "true"}
    assert rec.body == body


def test_merge_patch_content_type(api: KubeApi, fake: FakeKube) -> None:
    api.request("PATCH", "/api/v1/namespaces/default", body={"metadata": {"labels": {"a": "b"}}},
                content_type=MERGE_PATCH)
    assert fake.requests[-1].content_type == "application/merge-patch+json"
    assert fake.obj("Namespace", None, "default")["metadata"]["labels"] == {  # type: ignore[index]
        "kubernetes.io/metadata.name": "default", "a": "b"}


def test_warning_headers_are_collected(api: KubeApi) -> None:
    warnings: list[str] = []
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "i", "namespace": "default"}, "spec": {"ingressClassName": "old"}}
    api.request("PATCH", "/apis/networking.k8s.io/v1/namespaces/default/ingresses/i", body=body,
                query={"fieldManager": "m"}, content_type=APPLY_PATCH, warnings=warnings)
    assert warnings == ["ingressClassName old is deprecated"]


# ---------------------------------------------------------------- errors


def test_not_found_is_object_not_found(api: KubeApi) -> None:
    with pytest.raises(ApiNotFound) as info:
        api.request("GET", "/api/v1/namespaces/default/pods/web")
    err = info.value
    assert isinstance(err, ObjectNotFound)
    assert (err.method, err.path, err.status, err.reason) == (
        "GET", "/api/v1/namespaces/default/pods/web", 404, "NotFound")
    assert err.message == 'pods "web" not found'


def test_invalid_shows_the_field_causes(api: KubeApi, fake: FakeKube) -> None:
    path = "/api/v1/namespaces/default/services/web"
    fake.fail("PATCH", path, 422, "Invalid", 'Service "web" is invalid',
              causes=[{"field": "spec.ports[0].port", "message": "must be between 1 and 65535",
                       "reason": "FieldValueInvalid"}])
    with pytest.raises(ApiInvalid) as info:
        api.request("PATCH", path, body={}, content_type=MERGE_PATCH)
    assert info.value.causes[0].field == "spec.ports[0].port"
    assert "field spec.ports[0].port: must be between 1 and 65535" in str(info.value)
    assert str(info.value).startswith(f"PATCH {path}: 422 Invalid")


def test_forbidden_says_verb_resource_and_rbac(api: KubeApi, fake: FakeKube) -> None:
    fake.fail("GET", "/api/v1/pods", 403, "Forbidden",
              'pods is forbidden: User "alice" cannot list resource "pods" at the cluster scope')
    with pytest.raises(ApiForbidden) as info:
        api.request("GET", "/api/v1/pods")
    text = str(info.value)
    assert "credentials of context 'kind-fake' are not allowed to list pods" in text
    assert "RBAC refuses it" in text
    assert info.value.status == 403


def test_forbidden_in_a_terminating_namespace_is_not_called_rbac() -> None:
    err = status_error("PATCH", "/api/v1/namespaces/x/pods/p", 403,
                       {"reason": "Forbidden", "message": "unable to create new content in namespace x "
                                                          "because it is being terminated"})
    assert isinstance(err, ApiForbidden)
    assert "RBAC" not in str(err) and "wait until the namespace is gone" in str(err)


def test_conflict_and_server_errors(api: KubeApi, fake: FakeKube) -> None:
    fake.fail("GET", "/api/v1/namespaces", 409, "AlreadyExists", "already exists")
    fake.fail("GET", "/api/v1/nodes", 500, "InternalError", "etcd is sad")
    with pytest.raises(ApiConflict, match="409 AlreadyExists: already exists"):
        api.request("GET", "/api/v1/namespaces")
    with pytest.raises(ApiError) as info:
        api.request("GET", "/api/v1/nodes")
    assert (info.value.status, info.value.reason, type(info.value)) == (500, "InternalError", ApiError)


def test_connection_refused_names_the_server(tmp_path: Path) -> None:
    from kubefake import write_kubeconfig

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = KubeApi.from_kubeconfig(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"), None)
    with pytest.raises(ApiUnreachable) as info:
        api.request("GET", "/api/v1/namespaces", timeout=2)
    text = str(info.value)
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in text
    assert "connection refused" in text and "cluster may be down" in text
    assert isinstance(info.value, ClusterError) and info.value.status is None


def test_timeout_names_the_server(api: KubeApi, fake: FakeKube) -> None:
    fake.fail("GET", "/api/v1/namespaces", "timeout", times=10)
    with pytest.raises(ApiUnreachable, match=r"cannot reach the Kubernetes API server at .*no answer"):
        api.request("GET", "/api/v1/namespaces", timeout=0.3)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(("path", "method", "verb", "text"), [
    ("/api/v1/pods", "GET", "list", "pods (all namespaces or cluster-wide)"),
    ("/api/v1/namespaces/web/pods/p", "GET", "get", 'pods "p" in namespace "web"'),
    ("/api/v1/namespaces/web", "DELETE", "delete", 'namespaces "web"'),
    ("/apis/apps/v1/namespaces/a/deployments/d/scale", "PUT", "update",
     'deployments.apps/scale "d" in namespace "a"'),
    ("/apis/netlab.example.com/v1/namespaces/a/widgets", "DELETE", "deletecollection",
     'widgets.netlab.example.com in namespace "a"'),
])
def test_target_parsing(path: str, method: str, verb: str, text: str) -> None:
    target = Target.parse(path)
    assert target.verb(method) == verb
    assert target.describe() == text
