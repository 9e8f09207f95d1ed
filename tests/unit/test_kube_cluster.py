"""KubeCluster: the Cluster protocol on the API (FakeKube, and once through the real client)."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kubefake import FakeApi, FakeKube, ready_status, serve

from clusters.engine import Capabilities, Cluster, ExecResult, find
from clusters.errors import ClusterError, WaitTimeout
from clusters.kube import KubeApi, KubeCluster
from clusters.probing import Observation, Outcome, ProbeSpec, Source

CAPS = Capabilities(network_policy=True, services=True, dns=True, cni="calico", cni_backend="bgp")


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


def make(fake: FakeKube, **kw: Any) -> KubeCluster:
    return KubeCluster(FakeApi(fake, namespace=kw.pop("namespace", "default")), "lab1", "kind",  # type: ignore[arg-type]
                       capabilities=CAPS, **kw)


def test_it_is_a_cluster(fake: FakeKube) -> None:
    cluster = make(fake)
    assert isinstance(cluster, Cluster)
    assert (cluster.name, cluster.engine, cluster.capabilities()) == ("lab1", "kind", CAPS)


def test_objects_round_trip(fake: FakeKube) -> None:
    cluster = make(fake, namespace="team-a")
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}]
    results = cluster.apply(docs, source="c.yaml")
    assert [str(r) for r in results] == ["namespace/team-a created",
                                         "configmap/c created (namespace team-a)"]
    assert cluster.get("ConfigMap", "team-a", "c")[0]["data"] == {"a": "b"}
    assert find(cluster, "ConfigMap", "team-a", "missing") == []
    assert cluster.label("cm", "team-a", "c", {"x": "1"})["metadata"]["labels"] == {"x": "1"}
    assert [o["metadata"]["name"] for o in cluster.get("ConfigMap", None, selector={"x": "1"})] == ["c"]
    assert cluster.delete("ConfigMap", "team-a", "c") is True
    assert cluster.delete("ConfigMap", "team-a", "c") is False


def test_node_exec_without_a_runner_says_so(fake: FakeKube) -> None:
    with pytest.raises(ClusterError, match="this engine cannot run commands on nodes"):
        make(fake).node_exec("kind-worker", ["ip", "route"])


def test_node_exec_delegates(fake: FakeKube) -> None:
    calls: list[tuple[str, list[str], bool, float | None]] = []

    def runner(node: str, argv: Sequence[str], capture: bool, timeout: float | None) -> ExecResult:
        calls.append((node, list(argv), capture, timeout))
        return ExecResult(0, "default via 172.18.0.1\n", "", tuple(argv))

    result = make(fake, node_exec=runner).node_exec("kind-worker", ["ip", "route"], capture=True, timeout=5)
    assert result.stdout.startswith("default via")
    assert calls == [("kind-worker", ["ip", "route"], True, 5)]


def test_probe_uses_the_given_prober(fake: FakeKube) -> None:
    seen: list[ProbeSpec] = []

    def prober(spec: ProbeSpec) -> Observation:
        seen.append(spec)
        return Observation(Outcome.REFUSED, detail="connection refused")

    spec = ProbeSpec(kind="tcp", source=Source("lab", "client"), target="10.96.0.10", port=53)
    assert make(fake, prober=prober).probe(spec).outcome is Outcome.REFUSED
    assert seen == [spec]


def test_default_prober_is_built_lazily_once(fake: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []

    class KubeProber:
        def __init__(self, api: Any) -> None:
            built.append(api)

        def __call__(self, spec: ProbeSpec) -> Observation:
            return Observation(Outcome.CONNECTED)

    module = types.ModuleType("clusters.kube.probes")
    module.KubeProber = KubeProber  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clusters.kube.probes", module)
    cluster = make(fake)
    assert built == []
    spec = ProbeSpec(kind="tcp", source=Source(), target="172.18.0.2", port=80)
    assert cluster.probe(spec).connected and cluster.probe(spec).connected
    assert built == [cluster.api]


@pytest.fixture
def podexec(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def pod_exec(api: Any, namespace: str, pod: str, argv: Sequence[str], *,
                 container: str | None = None, timeout: float | None = None) -> ExecResult:
        calls.append((namespace, pod, list(argv), container, timeout))
        return ExecResult(3, "out\n", "err\n", tuple(argv))

    module = types.ModuleType("clusters.kube.podexec")
    module.pod_exec = pod_exec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clusters.kube.podexec", module)
    return calls


def test_exec_captures(fake: FakeKube, podexec: list[tuple[Any, ...]]) -> None:
    result = make(fake).exec("lab", "web", ["cat", "/etc/resolv.conf"], capture=True, timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert podexec == [("lab", "web", ["cat", "/etc/resolv.conf"], None, 10)]


def test_wait_converged_and_reset(fake: FakeKube) -> None:
    fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    fake.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "lab"},
              "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
    cluster = make(fake)
    with pytest.raises(WaitTimeout, match=r"pod lab/p \(Pending: not scheduled"):
        cluster.wait_converged(["lab"], timeout=0.1)
    fake.set_status("Pod", "lab", "p", ready_status())
    cluster.wait_converged(["lab"], timeout=1)
    cluster.reset_namespaces(["lab"])
    assert fake.obj("Namespace", None, "lab") is None


def test_through_the_real_client(tmp_path: Path) -> None:
    fake = FakeKube()
    with serve(fake, tmp_path) as (_url, kubeconfig):
        api = KubeApi.from_kubeconfig(kubeconfig, "kind-fake")
        cluster = KubeCluster(api, "fake", "context", capabilities=CAPS)
        assert cluster.default_namespace == "lab"
        cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}},
                       {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}], "p.yaml")
        fake.set_status("Pod", "lab", "p", ready_status())
        cluster.wait_converged(["lab"], timeout=5)
        assert [p["metadata"]["name"] for p in cluster.get("pods", None)] == ["p"]
        cluster.reset_namespaces(["lab"], timeout=5)
        assert fake.obj("Namespace", None, "lab") is None
        api.close()
