"""The local engine end to end: lifecycle, objects, exec, recovery, cleanup."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from clusters import ClusterExists, ClusterProfile, ManifestError, Outcome, ProbeSpec, Source
from clusters.local import cleanup
from clusters.local.engine import LocalCluster, LocalEngine
from clusters.local.paths import ClusterPaths
from clusters.local.validation import load_documents

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080"]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  containers: [{name: shell, image: busybox, command: ["sleep", "infinity"]}]
"""


def web_pods(cluster: LocalCluster) -> list[dict]:
    return cluster.get("Pod", "demo", selector={"app": "web"})


def test_nodes_like_kind(local_cluster: LocalCluster, cluster_name: str) -> None:
    nodes = {n["metadata"]["name"]: n for n in local_cluster.get("Node")}
    assert sorted(nodes) == [f"{cluster_name}-control-plane", f"{cluster_name}-worker",
                             f"{cluster_name}-worker2"]
    cp = nodes[f"{cluster_name}-control-plane"]
    assert cp["spec"]["taints"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert [n["spec"]["podCIDR"] for n in nodes.values()] == [
        "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    ns = {n["metadata"]["name"]: n for n in local_cluster.get("Namespace")}
    assert ns["default"]["metadata"]["labels"]["kubernetes.io/metadata.name"] == "default"


def test_workloads_run_across_nodes_without_nat(local_cluster: LocalCluster) -> None:
    results = local_cluster.apply(load_documents(APP, "app.yaml"), source="app.yaml")
    assert [r.action for r in results] == ["created"] * 3
    local_cluster.wait_converged(["demo"], timeout=20)
    pods = web_pods(local_cluster)
    assert len(pods) == 2
    # Spread across both workers, never on the tainted control plane.
    assert sorted(p["spec"]["nodeName"].rsplit("-", 1)[-1] for p in pods) == ["worker", "worker2"]
    client = local_cluster.get("Pod", "demo", "client")[0]
    for pod in pods:
        ip = pod["status"]["podIP"]
        res = local_cluster.exec("demo", "client", ["curl", "-s", "-m", "2",
                                                    f"http://{ip}:8080/clientip"], capture=True)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split(":")[0] == client["status"]["podIP"]
        obs = local_cluster.probe(ProbeSpec("http", Source("demo", "client"), ip, 8080,
                                            path="/hostname"))
        assert obs.outcome is Outcome.CONNECTED and obs.body == pod["metadata"]["name"]
    # Exit codes pass through; the pod has its own hostname and resolv.conf.
    assert local_cluster.exec("demo", "client", ["sh", "-c", "exit 7"], capture=True).returncode == 7
    assert local_cluster.exec("demo", "client", ["hostname"], capture=True).stdout.strip() == "client"
    resolv = local_cluster.exec("demo", "client", ["cat", "/etc/resolv.conf"], capture=True).stdout
    assert "search demo.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv


def test_invalid_manifest_changes_nothing(local_cluster: LocalCluster) -> None:
    bad = APP.replace("containers: [{name: shell", "containers: [{nme: shell")
    with pytest.raises(ManifestError) as err:
        local_cluster.apply(load_documents(bad, "bad.yaml"), source="bad.yaml")
    assert "bad.yaml (document 3)" in str(err.value)
    assert "spec.containers[0]" in str(err.value)
    assert local_cluster.get("Namespace", None, None, None) and not [
        n for n in local_cluster.get("Namespace") if n["metadata"]["name"] == "demo"]


def test_scale_and_delete(local_cluster: LocalCluster) -> None:
    local_cluster.apply(load_documents(APP, "app.yaml"))
    local_cluster.wait_converged(["demo"], timeout=20)
    local_cluster.apply(load_documents(APP.replace("replicas: 2", "replicas: 4"), "app.yaml"))
    local_cluster.wait_converged(["demo"], timeout=20)
    assert len(web_pods(local_cluster)) == 4
    assert local_cluster.delete("Deployment", "demo", "web")
    assert web_pods(local_cluster) == []
    local_cluster.reset_namespaces(["demo"])
    assert not [n for n in local_cluster.get("Namespace") if n["metadata"]["name"] == "demo"]


def test_reuse_and_profile_mismatch(local_cluster: LocalCluster, cluster_name: str) -> None:
    engine = LocalEngine()
    again = engine.create(cluster_name, ClusterProfile())
    assert again.ping()["pid"] == local_cluster.ping()["pid"]
    with pytest.raises(ClusterExists, match="another profile"):
        engine.create(cluster_name, ClusterProfile(workers=3))


def test_killed_daemon_recovers_pods_and_ips(local_cluster: LocalCluster) -> None:
    local_cluster.apply(load_documents(APP, "app.yaml"))
    local_cluster.wait_converged(["demo"], timeout=20)
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in web_pods(local_cluster)}
    pid = local_cluster.ping()["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    again = LocalEngine().connect(local_cluster.name)  # restarts the daemon
    again.wait_converged(["demo"], timeout=20)
    after = {p["metadata"]["name"]: p["status"]["podIP"] for p in web_pods(again)}
    assert after == before
    ip = next(iter(after.values()))
    res = again.exec("demo", "client", ["curl", "-s", "-m", "2", f"{ip}:8080/hostname"],
                     capture=True)
    assert res.stdout.strip() in after


def test_delete_after_daemon_killed_leaves_nothing(state_dir: Path, cluster_name: str) -> None:
    engine = LocalEngine()
    cluster = engine.create(cluster_name, ClusterProfile())
    cluster.apply(load_documents(APP, "app.yaml"))
    cluster.wait_converged(["demo"], timeout=20)
    os.kill(cluster.ping()["pid"], signal.SIGKILL)
    assert engine.delete(cluster_name)
    assert cleanup.find_leftovers(cluster_name).empty
    assert not ClusterPaths(cluster_name).state_dir.exists()
    assert engine.delete(cluster_name) is False  # nothing left to delete


def test_interrupted_create_leaves_nothing(state_dir: Path, cluster_name: str) -> None:
    """Ctrl-C during a step: everything made so far is removed before the error goes on."""
    steps: list[str] = []

    def interrupt(step: str) -> None:
        steps.append(step)
        if step.startswith("Waiting for nodes"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalEngine().create(cluster_name, ClusterProfile(), report=interrupt)
    assert len(steps) == 3
    assert cleanup.find_leftovers(cluster_name).empty
    assert not ClusterPaths(cluster_name).state_dir.exists()
