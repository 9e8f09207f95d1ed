"""The object store: apply semantics, queries, selectors, persistence."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from clusters.errors import ClusterError, ObjectNotFound
from clusters.local.store import Store, matches_selector, parse_selector


def pod(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], **spec}}


# ---------------------------------------------------------------- apply


def test_apply_create_stamps_server_fields() -> None:
    store = Store()
    obj, action = store.apply(pod("a"))
    assert action == "created"
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1
    assert meta["resourceVersion"] == "1" and store.revision == 1
    assert meta["creationTimestamp"].endswith("Z") and "T" in meta["creationTimestamp"]


def test_apply_unchanged_and_configured() -> None:
    store = Store()
    first, _ = store.apply(pod("a", app="web"))
    again, action = store.apply(pod("a", app="web"))
    assert action == "unchanged" and again == first and store.revision == 1

    relabelled, action = store.apply(pod("a", app="api"))
    assert action == "configured"
    assert relabelled["metadata"]["uid"] == first["metadata"]["uid"]
    assert relabelled["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    assert relabelled["metadata"]["generation"] == 1, "labels are not spec"
    assert relabelled["metadata"]["resourceVersion"] == "2"

    changed = pod("a", app="api")
    changed["spec"]["containers"][0]["image"] = "nginx:2"
    updated, action = store.apply(changed)
    assert action == "configured" and updated["metadata"]["generation"] == 2


def test_apply_ignores_server_fields_from_the_manifest() -> None:
    store = Store()
    first, _ = store.apply(pod("a"))
    doc = pod("a")
    doc["metadata"].update(uid="forged", resourceVersion="999", generation=7)
    again, action = store.apply(doc)
    assert action == "unchanged"
    assert again["metadata"]["uid"] == first["metadata"]["uid"]


def test_apply_replaces_labels_and_keeps_status_and_owners() -> None:
    store = Store()
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
              "controller": True}]
    with_owner = pod("a", app="web", tier="fe")
    with_owner["metadata"]["ownerReferences"] = owner
    store.create_owned(with_owner)
    store.set_status("Pod", "default", "a", {"phase": "Running"})
    updated, action = store.apply(pod("a", app="web"))
    assert action == "configured"
    assert updated["metadata"]["labels"] == {"app": "web"}
    assert updated["metadata"]["ownerReferences"] == owner
    assert updated["status"] == {"phase": "Running"}


def test_apply_keeps_status_given_on_create_but_not_on_update() -> None:
    store = Store()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}
    created, _ = store.apply(node)
    assert created["status"]["addresses"][0]["address"] == "172.18.0.2"
    node["status"] = {"addresses": []}
    again, action = store.apply(node)
    assert action == "unchanged" and again["status"] == created["status"]


def test_service_keeps_allocated_fields() -> None:
    store = Store()
    store.apply(service(type="NodePort",
                        ports=[{"port": 80, "protocol": "TCP", "targetPort": 80}]))
    store.apply(service(type="NodePort", clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"],
                        ports=[{"port": 80, "protocol": "TCP", "targetPort": 80,
                                "nodePort": 30080}]))
    # a re-apply of the user's manifest (no clusterIP, no nodePort) keeps both
    kept, action = store.apply(service(type="NodePort",
                                       ports=[{"port": 80, "protocol": "TCP", "targetPort": 8080}]))
    assert action == "configured"
    assert kept["spec"]["clusterIP"] == "10.96.0.10"
    assert kept["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 8080,
                                        "nodePort": 30080}
    # switching to ClusterIP drops the nodePort but keeps the ClusterIP
    plain, _ = store.apply(service())
    assert plain["spec"]["clusterIP"] == "10.96.0.10"
    assert "nodePort" not in plain["spec"]["ports"][0]
    # re-applying the exact manifest is unchanged even though allocated fields were merged
    assert store.apply(service())[1] == "unchanged"


def test_cluster_scoped_kinds_ignore_namespace() -> None:
    store = Store()
    obj, _ = store.apply({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": "x", "namespace": "oops"}})
    assert "namespace" not in obj["metadata"]
    assert store.get("Namespace", None, "x") is not None
    assert store.get("Namespace", "whatever", "x") is not None
    assert [o["metadata"]["name"] for o in store.list("Namespace")] == ["x"]


def test_namespaced_kind_needs_a_namespace() -> None:
    doc = pod("a")
    del doc["metadata"]["namespace"]
    with pytest.raises(ValueError, match="namespace"):
        Store().apply(doc)


def test_get_and_list_return_copies() -> None:
    store = Store()
    store.apply(pod("a"))
    got = store.get("Pod", "default", "a")
    assert got is not None
    got["metadata"]["labels"]["evil"] = "yes"
    store.list("Pod")[0]["spec"].clear()
    fresh = store.get("Pod", "default", "a")
    assert fresh is not None and "evil" not in fresh["metadata"]["labels"] and fresh["spec"]


def test_list_filters_by_namespace_and_selectors() -> None:
    store = Store()
    store.apply(pod("a", "x", app="web", tier="fe"))
    store.apply(pod("b", "x", app="db"))
    store.apply(pod("c", "y", app="web"))
    store.apply(service())

    def names(objs: list[dict[str, Any]]) -> list[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in objs]

    assert names(store.list("Pod")) == ["x/a", "x/b", "y/c"]
    assert names(store.list("Pod", "x")) == ["x/a", "x/b"]
    assert names(store.list("Pod", selector={"app": "web"})) == ["x/a", "y/c"]
    sel = {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    assert names(store.list("Pod", label_selector=sel)) == ["x/b", "y/c"]
    assert store.list("Pod", "z") == []
    assert store.kinds() == ["Pod", "Service"]


def test_delete_does_not_cascade() -> None:
    store = Store()
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    store.apply(pod("a", "x"))
    deleted = store.delete("Namespace", None, "x")
    assert deleted is not None and deleted["metadata"]["name"] == "x"
    assert store.get("Pod", "x", "a") is not None
    assert store.delete("Namespace", None, "x") is None
    rev = store.revision
    assert store.delete("Pod", "x", "nope") is None and store.revision == rev


def test_set_status_bumps_only_on_change() -> None:
    store = Store()
    store.apply(pod("a"))
    one = store.set_status("Pod", "default", "a", {"phase": "Pending"})
    two = store.set_status("Pod", "default", "a", {"phase": "Pending"})
    assert one["metadata"]["resourceVersion"] == two["metadata"]["resourceVersion"] == "2"
    three = store.set_status("Pod", "default", "a", {"phase": "Running"})
    assert three["metadata"]["resourceVersion"] == "3"
    assert three["metadata"]["generation"] == 1
    with pytest.raises(ObjectNotFound):
        store.set_status("Pod", "default", "ghost", {})


def test_relabel() -> None:
    store = Store()
    store.apply(pod("a", app="web", tier="fe"))
    out = store.relabel("Pod", "default", "a", {"app": "api", "new": "1"}, ["tier", "absent"])
    assert out["metadata"]["labels"] == {"app": "api", "new": "1"}
    rev = store.revision
    same = store.relabel("Pod", "default", "a", {"app": "api"}, [])
    assert store.revision == rev and same == out
    with pytest.raises(ValueError, match="invalid label"):
        store.relabel("Pod", "default", "a", {"bad key": "x"}, [])
    with pytest.raises(ObjectNotFound):
        store.relabel("Pod", "default", "ghost", {"a": "b"}, [])


def test_create_owned() -> None:
    store = Store()
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u"}]
    doc = pod("", app="web")
    doc["metadata"].update(name="", generateName="web-1-", ownerReferences=owner)
    doc["status"] = {"phase": "Pending"}
    made = store.create_owned(doc)
    name = made["metadata"]["name"]
    assert name.startswith("web-1-") and len(name) == len("web-1-") + 5
    assert made["metadata"]["ownerReferences"] == owner and made["status"]["phase"] == "Pending"
    with pytest.raises(ValueError, match="already exists"):
        store.create_owned(store.get("Pod", "default", name) or {})


def test_wait_for_change_wakes_on_a_change() -> None:
    store = Store()
    assert store.wait_for_change(0, timeout=0.01) == 0
    thread = threading.Thread(target=store.apply, args=(pod("a"),))
    thread.start()
    assert store.wait_for_change(0, timeout=10) >= 1
    thread.join()


def test_concurrent_applies_are_all_counted() -> None:
    store = Store()
    threads = [threading.Thread(target=lambda i=i: [store.apply(pod(f"p{i}-{j}"))
                                                    for j in range(20)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list("Pod")) == 80 and store.revision == 80
    versions = {o["metadata"]["resourceVersion"] for o in store.list("Pod")}
    assert len(versions) == 80


# ---------------------------------------------------------------- persistence


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "store.json"
    store = Store(path)
    store.load()  # no file yet: nothing happens
    store.apply(pod("a", app="web"))
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    store.set_status("Pod", "default", "a", {"phase": "Running"})
    store.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["store.json"], "no temp files left"

    again = Store(path)
    again.load()
    assert again.revision == store.revision
    assert again.list("Pod") == store.list("Pod")
    assert again.get("Namespace", None, "x") == store.get("Namespace", None, "x")
    obj, action = again.apply(pod("b"))
    assert action == "created" and obj["metadata"]["resourceVersion"] == str(store.revision + 1)


def test_memory_only_store_save_is_a_no_op(tmp_path: Path) -> None:
    store = Store()
    store.apply(pod("a"))
    store.save()
    store.load()
    assert len(store.list("Pod")) == 1


def test_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_text("{not json")
    with pytest.raises(ClusterError, match="cannot read the object store"):
        Store(path).load()
    path.write_text(json.dumps({"revision": 1, "objects": [{"kind": "Pod"}]}))
    with pytest.raises(ClusterError):
        Store(path).load()


# ---------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "x"}, False),
        ({"matchLabels": {"a": "b"}}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]},
         {"a": "y"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]},
         {"a": "x"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "a"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        ({"matchLabels": {"a": "1"},
          "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ],
)
def test_matches_selector(selector: dict[str, Any], labels: dict[str, str],
                          expected: bool) -> None:
    assert matches_selector(labels, selector) is expected


def test_matches_selector_refuses_unknown_operator() -> None:
    with pytest.raises(ValueError, match="operator"):
        matches_selector({}, {"matchExpressions": [{"key": "a", "operator": "Gt"}]})


def test_parse_selector() -> None:
    assert parse_selector("") == {}
    assert parse_selector("a=b,c!=d, e in (x, y),!f,g,h==i, j notin (k)") == {
        "matchLabels": {"a": "b", "h": "i"},
        "matchExpressions": [
            {"key": "c", "operator": "NotIn", "values": ["d"]},
            {"key": "e", "operator": "In", "values": ["x", "y"]},
            {"key": "f", "operator": "DoesNotExist"},
            {"key": "g", "operator": "Exists"},
            {"key": "j", "operator": "NotIn", "values": ["k"]},
        ],
    }
    sel = parse_selector("app.kubernetes.io/name=web,tier")
    assert matches_selector({"app.kubernetes.io/name": "web", "tier": "fe"}, sel)
    assert not matches_selector({"app.kubernetes.io/name": "web"}, sel)


@pytest.mark.parametrize("text", ["a=b,", "a in (x", "a in ()", "a b", "=x", "a=b=c",
                                  "-a=b", "a=" + "v" * 64, "a)"])
def test_parse_selector_refuses_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(text)


def test_a_service_turned_externalname_drops_its_cluster_ip() -> None:
    store = Store()
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
           "spec": {"clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
                    "ports": [{"port": 80}]}}
    store.apply(svc)
    store.apply({**svc, "spec": {"type": "ExternalName", "externalName": "example.org"}})
    spec = store.get("Service", "n", "s")["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
