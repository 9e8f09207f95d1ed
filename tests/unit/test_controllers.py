"""The local controllers turn workloads into pods, bind them, and clean up like Kubernetes."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters.local.controllers import ALPHABET, Controllers, is_ready, template_hash
from clusters.local.kinds import find_kind
from clusters.local.store import Store
from clusters.local.validation import validate

CP = "knl-control-plane"
WORKERS = ("knl-worker", "knl-worker2")
SUFFIX = f"[{ALPHABET}]{{5}}"


def make_store() -> Store:
    """kind's shape: a tainted control plane and two workers, plus namespace default."""
    store = Store()
    for name in (CP, *WORKERS):
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
        spec: dict[str, Any] = {}
        if name == CP:
            labels["node-role.kubernetes.io/control-plane"] = ""
            spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane",
                               "effect": "NoSchedule"}]
        store.apply({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": name, "labels": labels}, "spec": spec})
    namespace("default", store)
    return store


def namespace(name: str, store: Store) -> None:
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def make_ready(store: Store, pod: dict[str, Any]) -> None:
    """What the runtime does once a bound pod's containers run and pass readiness."""
    store.set_status("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], {
        **(pod.get("status") or {}), "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"},
                       {"type": "Ready", "status": "True"}]})


def run(ctrl: Controllers, store: Store, ready: bool = True, limit: int = 100) -> list[str]:
    """Reconcile (and let bound pods become Ready) until nothing changes; all events."""
    events: list[str] = []
    for _ in range(limit):
        step = ctrl.reconcile()
        events += step
        woke = False
        if ready:
            for pod in store.list("Pod"):
                if pod["spec"].get("nodeName") and not is_ready(pod):
                    make_ready(store, pod)
                    woke = True
        if not step and not woke:
            return events
    raise AssertionError(f"no convergence after {limit} passes; last events: {events[-5:]}")


def mark_deleting(store: Store, kind: str, ns: str | None, name: str) -> None:
    """What the engine does when a user deletes a namespace (or the runtime stops a pod).

    The store has no public call for it yet, so this reaches into its table.
    """
    obj = store._objects[(kind, ns or "", name)]
    obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"


def template(app: str, image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53",
             **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}, "annotations": {"note": app}},
            "spec": {"containers": [{"name": "c", "image": image}], **spec}}


def deployment(name: str, replicas: int, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": template(name), **extra}}


def pods_of(store: Store, prefix: str, ns: str = "default") -> list[dict[str, Any]]:
    return [p for p in store.list("Pod", ns) if p["metadata"]["name"].startswith(prefix)]


@pytest.fixture
def store() -> Store:
    return make_store()


@pytest.fixture
def ctrl(store: Store) -> Controllers:
    return Controllers(store, clock=lambda: 1_700_000_000.0, rand=random.Random(7))


# ---- Deployment and ReplicaSet ----------------------------------------------------------
def test_template_hash_is_stable_short_and_vowel_free() -> None:
    h = template_hash(template("web"))
    assert h == template_hash(template("web"))
    assert re.fullmatch(f"[{ALPHABET}]{{10}}", h)
    assert h != template_hash(template("web", image="nginx:1.27"))


def test_deployment_makes_a_hashed_replicaset_and_owned_pods(store: Store,
                                                             ctrl: Controllers) -> None:
    store.apply(deployment("web", 3))
    run(ctrl, store)
    deploy = store.get("Deployment", "default", "web")
    assert deploy is not None
    (rs,) = store.list("ReplicaSet", "default")
    h = template_hash(deploy["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["labels"]["pod-template-hash"] == h
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
        "uid": deploy["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    pods = pods_of(store, "web-")
    assert len(pods) == 3
    for pod in pods:
        assert re.fullmatch(f"web-{h}-{SUFFIX}", pod["metadata"]["name"])
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
        assert pod["metadata"]["annotations"] == {"note": "web"}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["spec"]["nodeName"] in WORKERS
    assert {p["spec"]["nodeName"] for p in pods} == set(WORKERS)
    status = deploy["status"]
    assert {k: status[k] for k in ("replicas", "readyReplicas", "availableReplicas",
                                   "updatedReplicas", "observedGeneration")} == {
        "replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
        "observedGeneration": 1}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert rs["status"]["readyReplicas"] == 3


def test_new_pods_are_pending_until_the_runtime_reports_ready(store: Store,
                                                              ctrl: Controllers) -> None:
    store.apply(deployment("web", 2))
    run(ctrl, store, ready=False)
    pods = pods_of(store, "web-")
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    deploy = store.get("Deployment", "default", "web")
    assert deploy is not None and deploy["status"]["readyReplicas"] == 0
    assert {c["type"]: c["status"] for c in deploy["status"]["conditions"]}["Available"] == "False"


def test_same_seed_same_names() -> None:
    names = []
    for _ in range(2):
        s = make_store()
        s.apply(deployment("web", 3))
        run(Controllers(s, rand=random.Random(3)), s)
        names.append(sorted(p["metadata"]["name"] for p in s.list("Pod")))
    assert names[0] == names[1]


def test_scale_up_and_down_removes_not_ready_pods_first(store: Store, ctrl: Controllers) -> None:
    store.apply(deployment("web", 2))
    run(ctrl, store)
    ready_names = {p["metadata"]["name"] for p in pods_of(store, "web-")}
    store.apply(deployment("web", 5))
    run(ctrl, store, ready=False)
    assert len(pods_of(store, "web-")) == 5
    store.apply(deployment("web", 2))
    events = run(ctrl, store, ready=False)
    assert {p["metadata"]["name"] for p in pods_of(store, "web-")} == ready_names
    assert sum("scale down" in e for e in events) == 3


def test_terminating_pods_do_not_count_as_replicas(store: Store, ctrl: Controllers) -> None:
    store.apply(deployment("web", 2))
    run(ctrl, store)
    victim = pods_of(store, "web-")[0]["metadata"]["name"]
    mark_deleting(store, "Pod", "default", victim)
    run(ctrl, store)
    live = [p for p in pods_of(store, "web-") if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 2 and victim not in {p["metadata"]["name"] for p in live}
    (rs,) = store.list("ReplicaSet", "default")
    assert rs["status"]["replicas"] == 2


def test_template_change_rolls_to_a_new_replicaset(store: Store, ctrl: Controllers) -> None:
    store.apply(deployment("web", 4))
    run(ctrl, store)
    changed = deployment("web", 4)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    store.apply(changed)
    for _ in range(100):  # rolling: never fewer than replicas - maxUnavailable (1) ready
        events = ctrl.reconcile()
        ready = [p for p in store.list("Pod") if is_ready(p)]
        assert len(ready) >= 3
        for pod in store.list("Pod"):
            if pod["spec"].get("nodeName") and not is_ready(pod):
                make_ready(store, pod)
                events.append("ready")
        if not events:
            break
    new_hash = template_hash(changed["spec"]["template"])
    rs = {r["metadata"]["name"]: r for r in store.list("ReplicaSet", "default")}
    assert set(rs) == {f"web-{new_hash}", f"web-{template_hash(template('web'))}"}
    assert rs[f"web-{new_hash}"]["spec"]["replicas"] == 4
    assert rs[f"web-{new_hash}"]["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "2"
    assert [r["spec"]["replicas"] for n, r in rs.items() if n != f"web-{new_hash}"] == [0]
    pods = pods_of(store, "web-")
    assert len(pods) == 4
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.27" for p in pods)
    deploy = store.get("Deployment", "default", "web")
    assert deploy is not None
    assert deploy["status"]["updatedReplicas"] == 4
    assert deploy["status"]["observedGeneration"] == 2


def test_recreate_removes_old_pods_before_starting_new_ones(store: Store,
                                                            ctrl: Controllers) -> None:
    store.apply(deployment("web", 2, strategy={"type": "Recreate"}))
    run(ctrl, store)
    old = {p["metadata"]["name"] for p in pods_of(store, "web-")}
    changed = deployment("web", 2, strategy={"type": "Recreate"})
    changed["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    store.apply(changed)
    for _ in range(20):
        events = ctrl.reconcile()
        names = {p["metadata"]["name"] for p in pods_of(store, "web-")}
        assert not (names & old and names - old), "old and new pods ran together"
        if not events:
            break
    assert len(pods_of(store, "web-")) == 2


def test_bare_replicaset(store: Store, ctrl: Controllers) -> None:
    store.apply({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "metadata": {"name": "rs", "namespace": "default"},
                 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                          "template": template("rs")}})
    run(ctrl, store)
    assert all(re.fullmatch(f"rs-{SUFFIX}", p["metadata"]["name"]) for p in pods_of(store, "rs-"))
    assert len(pods_of(store, "rs-")) == 2


# ---- garbage collection and namespaces --------------------------------------------------
def test_deleting_a_deployment_cascades_to_replicasets_and_pods(store: Store,
                                                                ctrl: Controllers) -> None:
    store.apply(deployment("web", 2))
    store.apply(deployment("api", 1))
    run(ctrl, store)
    store.delete("Deployment", "default", "web")
    events = run(ctrl, store)
    assert [r["metadata"]["name"].split("-")[0] for r in store.list("ReplicaSet")] == ["api"]
    assert pods_of(store, "web-") == []
    assert len(pods_of(store, "api-")) == 1
    assert any("owner Deployment web is gone" in e for e in events)


def test_orphan_with_a_stale_owner_uid_is_collected(store: Store, ctrl: Controllers) -> None:
    store.create_owned({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "orphan", "namespace": "default",
                                     "ownerReferences": [{"apiVersion": "apps/v1",
                                                          "kind": "ReplicaSet", "name": "gone",
                                                          "uid": "nope", "controller": True}]},
                        "spec": {"containers": [{"name": "c", "image": "x"}]}})
    store.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare",
                                                                 "namespace": "default"},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
    run(ctrl, store)
    assert [p["metadata"]["name"] for p in store.list("Pod")] == ["bare"]


def test_namespace_deletion_empties_then_removes_it(store: Store, ctrl: Controllers) -> None:
    namespace("team", store)
    store.apply(deployment("web", 2, ns="team"))
    store.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace":
                                                                     "team"},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    store.apply(deployment("keep", 1))
    run(ctrl, store)
    mark_deleting(store, "Namespace", None, "team")
    run(ctrl, store)
    assert store.get("Namespace", None, "team") is None
    for kind in ("Deployment", "ReplicaSet", "Pod", "Service"):
        assert store.list(kind, "team") == []
    assert len(pods_of(store, "keep-")) == 1


def test_namespace_waits_for_pods_the_runtime_is_stopping(store: Store,
                                                          ctrl: Controllers) -> None:
    namespace("team", store)
    store.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team"},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
    run(ctrl, store)
    mark_deleting(store, "Pod", "team", "p")
    mark_deleting(store, "Namespace", None, "team")
    run(ctrl, store)
    ns = store.get("Namespace", None, "team")
    assert ns is not None and ns["status"]["phase"] == "Terminating"
    store.delete("Pod", "team", "p")  # the runtime finished
    run(ctrl, store)
    assert store.get("Namespace", None, "team") is None


# ---- DaemonSet --------------------------------------------------------------------------
def daemonset(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": template(name, **spec)}}


def test_daemonset_skips_the_tainted_control_plane(store: Store, ctrl: Controllers) -> None:
    store.apply(daemonset("agent"))
    run(ctrl, store)
    pods = pods_of(store, "agent-")
    assert sorted(p["spec"]["nodeName"] for p in pods) == list(WORKERS)
    assert all(re.fullmatch(f"agent-{SUFFIX}", p["metadata"]["name"]) for p in pods)
    ds = store.get("DaemonSet", "default", "agent")
    assert ds is not None
    assert {k: ds["status"][k] for k in ("desiredNumberScheduled", "currentNumberScheduled",
                                         "numberReady")} == {
        "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 2}


def test_daemonset_with_toleration_runs_everywhere(store: Store, ctrl: Controllers) -> None:
    store.apply(daemonset("cni", tolerations=[{"operator": "Exists"}]))
    run(ctrl, store)
    assert sorted(p["spec"]["nodeName"] for p in pods_of(store, "cni-")) == sorted(
        (CP, *WORKERS))


def test_daemonset_follows_node_selector_and_node_labels(store: Store, ctrl: Controllers) -> None:
    store.apply(daemonset("edge", nodeSelector={"edge": "true"}))
    run(ctrl, store)
    assert pods_of(store, "edge-") == []
    store.relabel("Node", None, WORKERS[1], {"edge": "true"}, [])
    run(ctrl, store)
    assert [p["spec"]["nodeName"] for p in pods_of(store, "edge-")] == [WORKERS[1]]
    store.relabel("Node", None, WORKERS[1], {}, ["edge"])
    run(ctrl, store)
    assert pods_of(store, "edge-") == []


def test_daemonset_template_change_replaces_pods(store: Store, ctrl: Controllers) -> None:
    store.apply(daemonset("agent"))
    run(ctrl, store)
    store.apply(daemonset("agent", hostNetwork=True))
    run(ctrl, store)
    pods = pods_of(store, "agent-")
    assert len(pods) == 2 and all(p["spec"].get("hostNetwork") for p in pods)


# ---- StatefulSet ------------------------------------------------------------------------
def statefulset(name: str, replicas: int, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": f"{name}-hl",
                     "selector": {"matchLabels": {"app": name}}, "template": template(name),
                     **extra}}


def test_statefulset_starts_pods_in_order_one_ready_at_a_time(store: Store,
                                                             ctrl: Controllers) -> None:
    store.apply(statefulset("db", 3))
    for expected in (["db-0"], ["db-0", "db-1"], ["db-0", "db-1", "db-2"]):
        run(ctrl, store, ready=False)
        assert sorted(p["metadata"]["name"] for p in pods_of(store, "db-")) == expected
        for each in pods_of(store, "db-"):
            make_ready(store, each)
    pod = store.get("Pod", "default", "db-1")
    assert pod is not None
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db-hl"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
    run(ctrl, store)
    sts = store.get("StatefulSet", "default", "db")
    assert sts is not None and sts["status"]["readyReplicas"] == 3


def test_statefulset_scales_down_from_the_highest_ordinal(store: Store,
                                                          ctrl: Controllers) -> None:
    store.apply(statefulset("db", 3))
    run(ctrl, store)
    store.apply(statefulset("db", 1))
    events = ctrl.reconcile()
    deleted = [e for e in events if e.startswith("deleted")]
    assert deleted == ["deleted pod default/db-2 (scale down)"]
    run(ctrl, store)
    assert [p["metadata"]["name"] for p in pods_of(store, "db-")] == ["db-0"]


def test_parallel_statefulset_creates_every_pod_at_once(store: Store, ctrl: Controllers) -> None:
    store.apply(statefulset("db", 3, podManagementPolicy="Parallel"))
    ctrl.reconcile()
    assert sorted(p["metadata"]["name"] for p in pods_of(store, "db-")) == ["db-0", "db-1", "db-2"]


# ---- scheduling -------------------------------------------------------------------------
def test_unschedulable_pod_explains_itself_and_is_retried(store: Store,
                                                          ctrl: Controllers) -> None:
    store.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace":
                                                                 "default"},
                 "spec": {"nodeSelector": {"disk": "ssd"},
                          "containers": [{"name": "c", "image": "x"}]}})
    run(ctrl, store)
    pod = store.get("Pod", "default", "p")
    assert pod is not None and not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
    (cond,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node "
        "affinity/selector.")
    assert ctrl.reconcile() == []  # nothing changed, nothing to say
    store.relabel("Node", None, WORKERS[1], {"disk": "ssd"}, [])
    run(ctrl, store)
    pod = store.get("Pod", "default", "p")
    assert pod is not None and pod["spec"]["nodeName"] == WORKERS[1]


def test_node_name_in_the_manifest_is_kept(store: Store, ctrl: Controllers) -> None:
    store.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace":
                                                                 "default"},
                 "spec": {"nodeName": CP, "containers": [{"name": "c", "image": "x"}]}})
    assert ctrl.reconcile() == []
    pod = store.get("Pod", "default", "p")
    assert pod is not None and pod["spec"]["nodeName"] == CP


# ---- the acceptance fixtures land where their descriptions say ------------------------
ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"  # shipped with the repo


def _fixture_docs(suite: str) -> list[dict[str, Any]]:
    folder = ACCEPTANCE
    data = yaml.safe_load((folder / f"{suite}.yaml").read_text())
    (fixture,) = data["fixtures"].values()
    # Kinds the engine does not store yet (IngressClass) play no part in placement.
    docs = [d for d in yaml.safe_load_all(fixture["objects"]) if d and find_kind(d["kind"])]
    return [validate(d, source=f"{suite}.yaml", index=i) for i, d in enumerate(docs)]


def _build(suite: str, reverse: bool) -> tuple[Store, dict[str, dict[str, Any]]]:
    store = make_store()
    docs = _fixture_docs(suite)
    if reverse:  # namespaces first, everything else in the opposite order
        docs = ([d for d in docs if d["kind"] == "Namespace"]
                + [d for d in reversed(docs) if d["kind"] != "Namespace"])
    for doc in docs:
        store.apply(doc)
    run(Controllers(store, rand=random.Random(11)), store)
    pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
            for p in store.list("Pod") if p["metadata"]["namespace"] != "default"}
    for key, pod in pods.items():
        assert pod["spec"].get("nodeName") in WORKERS, f"{key} not on a worker: {pod['status']}"
    for deploy in store.list("Deployment"):
        assert deploy["status"]["readyReplicas"] == deploy["spec"]["replicas"]
    return store, pods


def _node(pods: dict[str, dict[str, Any]], key: str) -> str:
    return str(pods[key]["spec"]["nodeName"])


@pytest.mark.parametrize("reverse", [False, True], ids=["as-written", "reversed"])
def test_xyz_fixture_spreads_each_namespace_over_both_workers(reverse: bool) -> None:
    _, pods = _build("netpol", reverse)
    assert len(pods) == 9
    for ns in "xyz":
        assert {_node(pods, f"{ns}/{p}") for p in "abc"} == set(WORKERS), ns


@pytest.mark.parametrize("reverse", [False, True], ids=["as-written", "reversed"])
def test_svc_fixture_places_clients_near_and_far(reverse: bool) -> None:
    _, pods = _build("services", reverse)
    solo = _node(pods, "svc/solo")
    assert _node(pods, "svc/client-near") == solo
    assert _node(pods, "svc/client-far") != solo
    hostnames = [k for k in pods if k.startswith("svc/hostnames-")]
    assert len(hostnames) == 3
    assert {_node(pods, k) for k in hostnames} == set(WORKERS)


@pytest.mark.parametrize("reverse", [False, True], ids=["as-written", "reversed"])
def test_dns_fixture_schedules_every_pod(reverse: bool) -> None:
    _, pods = _build("dns", reverse)
    assert set(pods) == {"n/p1", "n/p2", "n/p3", "n/u1", "n/client", "other/client"}
    assert pods["n/p2"]["spec"]["hostname"] == "p2" and pods["n/p2"]["spec"]["subdomain"] == "h"


@pytest.mark.parametrize("reverse", [False, True], ids=["as-written", "reversed"])
def test_ing_fixture_pod_names_name_their_deployment(reverse: bool) -> None:
    store, pods = _build("ingress", reverse)
    deployments = {d["metadata"]["name"] for d in store.list("Deployment", "ing")}
    assert len(deployments) == 8
    backends = sorted(name.split("/", 1)[1].rsplit("-", 2)[0] for name in pods)
    assert backends == sorted(deployments)
