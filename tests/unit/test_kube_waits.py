"""wait_converged, reset_namespaces and wait_nodes_ready of clusters.kube.waits on FakeKube."""

from __future__ import annotations

from typing import Any

import pytest
from kubefake import (
    FakeApi,
    FakeKube,
    pod,
    ready_status,
    unschedulable_status,
    waiting_status,
)

from clusters.errors import ClusterError, WaitTimeout
from clusters.kube import waits


@pytest.fixture
def fake() -> FakeKube:
    fake = FakeKube()
    for name in ("lab", "other"):
        fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return fake


@pytest.fixture
def api(fake: FakeKube) -> FakeApi:
    return FakeApi(fake)


def add_pod(fake: FakeKube, name: str, status: dict[str, Any], ns: str = "lab", **kw: Any) -> None:
    fake.add(pod(name, ns, **kw))
    fake.set_status("Pod", ns, name, status)


# ---------------------------------------------------------------- pod_problem


def test_ready_pods_and_completed_pods_have_converged() -> None:
    assert waits.pod_problem({**pod("a"), "status": ready_status()}) is None
    assert waits.pod_problem({**pod("a"), "status": {"phase": "Succeeded"}}) is None


def test_image_pull_failure_names_the_image_and_why() -> None:
    status = waiting_status("ImagePullBackOff", 'Back-off pulling image "nginx:9.9"', image="nginx:9.9")
    why = waits.pod_problem({**pod("a", image="nginx:9.9"), "status": status})
    assert why == ('Pending: container app: ImagePullBackOff: image "nginx:9.9" cannot be pulled: '
                   'Back-off pulling image "nginx:9.9"')


def test_crash_loop_gives_restarts_and_last_exit_code() -> None:
    status = waiting_status("CrashLoopBackOff", "back-off 40s", restarts=4, last_exit=2)
    assert waits.pod_problem({**pod("a"), "status": status}) == (
        "Running: container app: CrashLoopBackOff, restarted 4 times; last exit code 2 (Error)")


def test_unscheduled_gives_the_scheduler_message() -> None:
    status = unschedulable_status("0/3 nodes are available: 3 Insufficient cpu.")
    assert waits.pod_problem({**pod("a"), "status": status}) == (
        "Pending: not scheduled: 0/3 nodes are available: 3 Insufficient cpu.")


def test_running_not_ready_unless_meant_never_to_be() -> None:
    status = ready_status(ready=False)
    assert waits.pod_problem({**pod("a"), "status": status}) == (
        "Running, not Ready: containers with unready status: [app]")
    never = pod("a", annotations={"acceptance/never-ready": "true"})
    assert waits.pod_problem({**never, "status": status}) is None


def test_terminating_and_creating_pods_have_not_converged() -> None:
    dying = pod("a")
    dying["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert waits.pod_problem({**dying, "status": ready_status()}) == "Running, terminating"
    creating = waiting_status("ContainerCreating")
    assert waits.pod_problem({**pod("a"), "status": creating}) == "Pending: container app: ContainerCreating"


# ---------------------------------------------------------------- wait_converged


def test_waits_until_pods_become_ready(fake: FakeKube, api: FakeApi) -> None:
    add_pod(fake, "web", waiting_status("ContainerCreating"))
    fake.later(4, lambda: fake.set_status("Pod", "lab", "web", ready_status()))
    waits.wait_converged(api, ["lab"], timeout=30)
    assert fake.obj("Pod", "lab", "web")["status"]["phase"] == "Running"  # type: ignore[index]


def test_only_the_given_namespaces_are_read(fake: FakeKube, api: FakeApi) -> None:
    add_pod(fake, "ok", ready_status())
    add_pod(fake, "broken", waiting_status("ErrImagePull"), ns="other")
    waits.wait_converged(api, ["lab"], timeout=1)
    assert set(fake.paths()) == {"/api/v1/namespaces/lab/pods", "/apis/apps/v1/namespaces/lab/deployments",
                                 "/apis/apps/v1/namespaces/lab/daemonsets"}


def test_timeout_names_each_pod_and_why(fake: FakeKube, api: FakeApi) -> None:
    add_pod(fake, "ok", ready_status())
    add_pod(fake, "pull", waiting_status("ErrImagePull", "manifest unknown", image="ghcr.io/x/y:1"),
            image="ghcr.io/x/y:1")
    with pytest.raises(WaitTimeout) as info:
        waits.wait_converged(api, ["lab"], timeout=0.2)
    err = info.value
    assert err.what == "pods to be Running and Ready in lab" and err.timeout == 0.2
    assert err.last == ('pod lab/pull (Pending: container app: ErrImagePull: image "ghcr.io/x/y:1" '
                        "cannot be pulled: manifest unknown)")


def test_a_not_ready_pod_gets_its_latest_warning_event(fake: FakeKube, api: FakeApi) -> None:
    add_pod(fake, "web", ready_status(ready=False))
    for i, (kind, message) in enumerate((("Warning", "Readiness probe failed: connection refused"),
                                         ("Normal", "Started container app"),
                                         ("Warning", "Readiness probe failed: HTTP probe failed with "
                                                     "statuscode: 503"))):
        fake.add({"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": f"web.{i}", "namespace": "lab"}, "type": kind,
                  "reason": "Unhealthy", "message": message,
                  "lastTimestamp": f"2025-01-01T00:00:0{i}Z",
                  "involvedObject": {"kind": "Pod", "name": "web", "namespace": "lab"}})
    with pytest.raises(WaitTimeout) as info:
        waits.wait_converged(api, ["lab"], timeout=0.2)
    assert str(info.value.last).endswith(
        "last event: Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503)")
    events = [r for r in fake.requests if r.path.endswith("/events")]
    assert events[0].query == {"fieldSelector": "involvedObject.kind=Pod,involvedObject.name=web"}


def test_deployments_must_be_rolled_out(fake: FakeKube, api: FakeApi) -> None:
    fake.add({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "lab", "generation": 2},
              "spec": {"replicas": 3}})
    fake.set_status("Deployment", "lab", "web", {"observedGeneration": 2, "replicas": 3,
                                                 "updatedReplicas": 3, "readyReplicas": 1})
    with pytest.raises(WaitTimeout, match=r"deployment lab/web \(1/3 replicas ready\)"):
        waits.wait_converged(api, ["lab"], timeout=0.1)
    fake.set_status("Deployment", "lab", "web", {"observedGeneration": 1})
    with pytest.raises(WaitTimeout, match="has not seen the latest spec"):
        waits.wait_converged(api, ["lab"], timeout=0.1)
    fake.set_status("Deployment", "lab", "web", {"observedGeneration": 2, "replicas": 4,
                                                 "updatedReplicas": 3, "readyReplicas": 3})
    with pytest.raises(WaitTimeout, match=r"1 old replica\(s\) still running"):
        waits.wait_converged(api, ["lab"], timeout=0.1)
    fake.set_status("Deployment", "lab", "web", {"observedGeneration": 2, "replicas": 3,
                                                 "updatedReplicas": 3, "readyReplicas": 3})
    waits.wait_converged(api, ["lab"], timeout=1)


def test_daemonsets_must_be_rolled_out(fake: FakeKube, api: FakeApi) -> None:
    fake.add({"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"name": "agent", "namespace": "lab"}, "spec": {}})
    fake.set_status("DaemonSet", "lab", "agent", {"observedGeneration": 1, "desiredNumberScheduled": 3,
                                                  "updatedNumberScheduled": 3, "numberReady": 2})
    with pytest.raises(WaitTimeout, match=r"daemonset lab/agent \(2/3 pods ready\)"):
        waits.wait_converged(api, ["lab"], timeout=0.1)


def test_whole_cluster_when_no_namespaces(fake: FakeKube, api: FakeApi) -> None:
    add_pod(fake, "a", ready_status(), ns="other")
    waits.wait_converged(api, None, timeout=1)
    assert "/api/v1/pods" in fake.paths()


# ---------------------------------------------------------------- reset_namespaces


def test_reset_deletes_and_waits_until_gone(fake: FakeKube, api: FakeApi) -> None:
    fake.terminating_reads = 3
    add_pod(fake, "web", ready_status())
    waits.reset_namespaces(api, ["lab", "never-existed"], timeout=10)
    assert fake.obj("Namespace", None, "lab") is None and fake.obj("Pod", "lab", "web") is None
    assert fake.obj("Namespace", None, "other") is not None
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == ["/api/v1/namespaces/lab", "/api/v1/namespaces/never-existed"]
    assert deletes[0].body["propagationPolicy"] == "Background"
    assert fake.paths("GET").count("/api/v1/namespaces/lab") == 4  # 3 Terminating, then gone
    assert all("other" not in p for p in fake.paths())


def test_reset_times_out_naming_the_finalizers(fake: FakeKube, api: FakeApi) -> None:
    fake.stuck["lab"] = ("Some content in the namespace has finalizers remaining: "
                         "example.com/hold in 1 resource instances")
    with pytest.raises(WaitTimeout) as info:
        waits.reset_namespaces(api, ["lab"], timeout=0.2)
    assert info.value.last == ('namespace "lab" still Terminating: Some content in the namespace has '
                               "finalizers remaining: example.com/hold in 1 resource instances")


def test_system_namespaces_are_never_reset(fake: FakeKube, api: FakeApi) -> None:
    with pytest.raises(ClusterError, match="'kube-system' is a system namespace"):
        waits.reset_namespaces(api, ["lab", "kube-system"])
    assert fake.writes() == []


# ---------------------------------------------------------------- nodes


def node(name: str, ready: bool) -> dict[str, Any]:
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        cond |= {"reason": "KubeletNotReady", "message": "cni plugin not initialized"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"conditions": [cond]}}


def test_nodes_ready_after_the_cni(fake: FakeKube, api: FakeApi) -> None:
    fake.add(node("cp", True))
    fake.add(node("w1", False))
    with pytest.raises(WaitTimeout, match="not Ready: w1: KubeletNotReady cni plugin not initialized"):
        waits.wait_nodes_ready(api, 2, timeout=0.1)
    fake.later(2, lambda: fake.set_status("Node", None, "w1", node("w1", True)["status"]))
    assert waits.wait_nodes_ready(api, 2, timeout=10) == ["cp", "w1"]
