"""EndpointSlices from Services and pods: readiness, ports, grouping, and the reasons why not."""

from __future__ import annotations

from typing import Any

from clusters.local.services.endpointslices import (
    MANAGED_BY,
    UNRESOLVED,
    desired_slices,
    reconcile_slices,
)
from clusters.local.store import Store


def service(name: str = "web", namespace: str = "default", *, selector: Any = None,
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("clusterIP", "10.96.1.2")
    spec["selector"] = {"app": "web"} if selector is None else selector
    spec["ports"] = ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                         "labels": {"tier": "front"}},
            "spec": spec}


def pod(name: str, ip: str | None = "10.244.1.5", *, ready: bool = True,
        labels: dict[str, str] | None = None, namespace: str = "default",
        ports: list[dict[str, Any]] | None = None, node: str = "c-worker",
        phase: str = "Running", deleting: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                            "labels": labels if labels is not None else {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    ctr_ports = ports if ports is not None else [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                                                       "ports": ctr_ports}], **spec},
            "status": status}


def endpoints(slices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {ep["targetRef"]["name"]: ep for s in slices for ep in s["endpoints"]}


def test_slice_shape_labels_owner_and_named_port() -> None:
    [sl] = desired_slices(service(), [pod("web-1")])
    assert sl["apiVersion"] == "discovery.k8s.io/v1" and sl["kind"] == "EndpointSlice"
    assert sl["addressType"] == "IPv4"
    meta = sl["metadata"]
    assert meta["name"].startswith("web-") and len(meta["name"]) == len("web-") + 5
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
    assert meta["ownerReferences"][0]["uid"] == "uid-web"
    assert meta["ownerReferences"][0]["kind"] == "Service"
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    ep = sl["endpoints"][0]
    assert ep["addresses"] == ["10.244.1.5"]
    assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert ep["nodeName"] == "c-worker"
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "web-1",
                               "uid": "uid-web-1"}
    assert UNRESOLVED not in meta.get("annotations", {})


def test_name_is_stable_and_depends_on_the_service_uid() -> None:
    a = desired_slices(service(), [pod("web-1")])[0]["metadata"]["name"]
    b = desired_slices(service(), [pod("web-2", "10.244.2.9")])[0]["metadata"]["name"]
    other = service()
    other["metadata"]["uid"] = "another"
    c = desired_slices(other, [pod("web-1")])[0]["metadata"]["name"]
    assert a == b and a != c


def test_readiness_terminating_and_publish_not_ready() -> None:
    pods = [pod("ok"), pod("notready", "10.244.1.6", ready=False),
            pod("leaving", "10.244.1.7", deleting=True),
            pod("noip", None), pod("done", "10.244.1.8", phase="Succeeded"),
            pod("other", "10.244.1.9", labels={"app": "db"}),
            pod("elsewhere", "10.244.1.10", namespace="prod")]
    eps = endpoints(desired_slices(service(), pods))
    assert set(eps) == {"ok", "notready", "leaving"}
    assert eps["notready"]["conditions"] == {"ready": False, "serving": False,
                                             "terminating": False}
    assert eps["leaving"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    published = endpoints(desired_slices(service(publishNotReadyAddresses=True), pods))
    assert published["notready"]["conditions"]["ready"] is True
    assert published["leaving"]["conditions"]["ready"] is True


def test_hostname_only_when_subdomain_names_the_service() -> None:
    pods = [pod("db-0", hostname="db-0", subdomain="web"),
            pod("db-1", "10.244.1.6", hostname="db-1", subdomain="other"),
            pod("db-2", "10.244.1.7", hostname="db-2")]
    eps = endpoints(desired_slices(service(), pods))
    assert eps["db-0"]["hostname"] == "db-0"
    assert "hostname" not in eps["db-1"] and "hostname" not in eps["db-2"]


def test_numeric_and_default_target_ports() -> None:
    ports = [{"name": "a", "port": 80, "protocol": "TCP", "targetPort": 9376},
             {"name": "b", "port": 81, "protocol": "UDP"}]
    [sl] = desired_slices(service(ports=ports), [pod("web-1", ports=[])])
    assert sl["ports"] == [{"name": "a", "port": 9376, "protocol": "TCP"},
                           {"name": "b", "port": 81, "protocol": "UDP"}]


def test_named_port_needs_the_same_protocol() -> None:
    ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"}]
    [sl] = desired_slices(service(ports=ports), [
        pod("p", ports=[{"name": "dns", "containerPort": 5353, "protocol": "TCP"}])])
    assert sl["ports"] == []
    assert "5353/TCP, not UDP" in sl["metadata"]["annotations"][UNRESOLVED]


def test_pods_with_different_port_sets_go_to_different_slices() -> None:
    pods = [pod("a", "10.244.1.5", ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.1.6", ports=[{"name": "http", "containerPort": 9090}]),
            pod("c", "10.244.1.7", ports=[{"name": "http", "containerPort": 8080}])]
    slices = desired_slices(service(), pods)
    assert len(slices) == 2
    by_port = {s["ports"][0]["port"]: sorted(e["targetRef"]["name"] for e in s["endpoints"])
               for s in slices}
    assert by_port == {8080: ["a", "c"], 9090: ["b"]}
    assert len({s["metadata"]["name"] for s in slices}) == 2


def test_unresolved_named_port_is_explained() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
             {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100}]
    pods = [pod("web-6f7c-abcde", ports=[{"name": "http-alt", "containerPort": 8080,
                                          "protocol": "TCP"}]),
            pod("web-6f7c-fghij", "10.244.1.6",
                ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])]
    slices = desired_slices(service(ports=ports), pods)
    assert len(slices) == 2
    broken = next(s for s in slices if len(s["ports"]) == 1)
    fine = next(s for s in slices if len(s["ports"]) == 2)
    assert broken["ports"] == [{"name": "metrics", "port": 9100, "protocol": "TCP"}]
    assert broken["metadata"]["annotations"][UNRESOLVED] == (
        'port "http": targetPort "web" is not declared by pod web-6f7c-abcde '
        '(it declares: 8080/TCP "http-alt")')
    assert UNRESOLVED not in fine["metadata"].get("annotations", {})
    [nothing] = desired_slices(service(), [pod("bare", ports=[])])
    assert "(it declares no ports)" in nothing["metadata"]["annotations"][UNRESOLVED]


def test_no_matching_pod_gives_an_empty_slice_with_the_reason() -> None:
    [sl] = desired_slices(service(selector={"app": "foo", "tier": "x"}), [pod("web-1")])
    assert sl["endpoints"] == [] and sl["ports"] == []
    assert sl["metadata"]["annotations"][UNRESOLVED] == (
        "no pod in namespace default matches selector app=foo,tier=x")
    [waiting] = desired_slices(service(), [pod("web-1", None)])
    assert "none has an IP yet" in waiting["metadata"]["annotations"][UNRESOLVED]


def test_no_slices_for_external_name_or_selectorless_services() -> None:
    assert desired_slices(service(type="ExternalName", externalName="x.org"), [pod("a")]) == []
    assert desired_slices(service(selector={}), [pod("a")]) == []


def test_headless_label_and_zone() -> None:
    node = {"metadata": {"name": "c-worker", "labels": {"topology.kubernetes.io/zone": "z1"}}}
    [sl] = desired_slices(service(clusterIP="None"), [pod("a")], [node])
    assert sl["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert sl["endpoints"][0]["zone"] == "z1"


def test_large_services_are_cut_into_slices_of_100() -> None:
    pods = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 2}") for i in range(250)]
    slices = desired_slices(service(), pods)
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    assert len({s["metadata"]["name"] for s in slices}) == 3


# ---- the reconcile pass against a real Store ---------------------------------------------


def _store_with(*objects: dict[str, Any]) -> Store:
    store = Store()
    for obj in objects:
        store.apply(obj)
    return store


def test_reconcile_creates_updates_only_on_change_and_deletes() -> None:
    store = _store_with(service(), pod("web-1"))
    svc = store.get("Service", "default", "web")
    assert svc is not None
    events = reconcile_slices(store)
    assert len(events) == 1 and events[0].startswith("created endpointslice default/web-")
    [sl] = store.list("EndpointSlice", "default")
    assert sl["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    version = store.revision
    assert reconcile_slices(store) == []
    assert store.revision == version  # no churn
    store.apply(pod("web-2", "10.244.2.7"))
    events = reconcile_slices(store)
    assert len(events) == 1 and events[0].startswith("updated") and "2 endpoint(s)" in events[0]
    store.delete("Service", "default", "web")
    events = reconcile_slices(store)
    assert len(events) == 1 and events[0].startswith("deleted endpointslice")
    assert store.list("EndpointSlice") == []


def test_reconcile_leaves_user_slices_alone() -> None:
    mine = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "manual", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "ext"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": []}
    store = _store_with(mine, service("ext", selector={}))
    assert reconcile_slices(store) == []
    assert [s["metadata"]["name"] for s in store.list("EndpointSlice")] == ["manual"]


def test_reconcile_replaces_slices_of_a_recreated_service() -> None:
    store = _store_with(service(), pod("web-1"))
    reconcile_slices(store)
    [old] = store.list("EndpointSlice")
    store.delete("Service", "default", "web")
    store.apply(service())  # new uid
    events = reconcile_slices(store)
    assert sorted(e.split()[0] for e in events) == ["created", "deleted"]
    [new] = store.list("EndpointSlice")
    assert new["metadata"]["name"] != old["metadata"]["name"]


def test_a_port_change_updates_the_slice_in_place_keeping_its_name() -> None:
    store = Store()
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    pod_obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "n", "labels": {"app": "a"}},
               "spec": {"nodeName": "w", "containers": [{"name": "c", "image": "x"}]}}
    store.apply(pod_obj)
    store.set_status("Pod", "n", "p", {"phase": "Running", "podIP": "10.244.1.5",
                                       "conditions": [{"type": "Ready", "status": "True"}]})
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
           "spec": {"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    store.apply(svc)
    reconcile_slices(store)
    (before,) = store.list("EndpointSlice", "n")
    store.apply({**svc, "spec": {**svc["spec"], "ports": [{"port": 80, "targetPort": 9090}]}})
    events = reconcile_slices(store)
    (after,) = store.list("EndpointSlice", "n")
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["ports"][0]["port"] == 9090
    assert events and events[0].startswith("updated")
