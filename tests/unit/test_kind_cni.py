"""CNI install and readiness on kind, and the retrying waits of Tools, against fake tools."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakebin import (
    FakeBin,
    fake_fetch,
    no_matches,
    not_found,
    wait_timed_out,
)

from clusters.engine import ClusterProfile
from clusters.errors import ClusterError, CommandError, WaitTimeout
from clusters.kind import cni
from clusters.kind.config import POD_SUBNETS
from clusters.kind.steps import Timeouts, run_steps
from clusters.kind.tools import Tools, pod_problem

T = Timeouts(create=5, apply=2, ready=2)
KC = ["--kubeconfig", "/kc", "--context", "kind-c"]


@pytest.fixture
def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBin:
    fake = FakeBin(tmp_path / "fb").install(monkeypatch)
    fake.add_cluster("c", workers=2)
    monkeypatch.setattr(cni, "fetch", fake_fetch(tmp_path / "files"))
    return fake


def tools() -> Tools:
    return Tools(kubeconfig=Path("/kc"), context="kind-c", interval=0.01)


def run(profile: ClusterProfile, tmp_path: Path, nodes: tuple[str, ...] = ()) -> list[str]:
    said: list[str] = []
    steps = cni.cni_steps(tools(), profile, pod_subnet=POD_SUBNETS[profile.cni], nodes=nodes,
                          work_dir=tmp_path / "work", timeouts=T)
    run_steps(steps, said.append)
    return said


def kubectl(*words: str) -> str:
    return shlex.join(["kubectl", *KC, *words])


def test_kindnet_installs_nothing(fb: FakeBin, tmp_path: Path) -> None:
    assert run(ClusterProfile(cni="kindnet"), tmp_path) == []
    assert fb.calls() == []


@pytest.mark.parametrize(("backend", "encapsulation", "bgp"),
                         [("bgp", "None", "Enabled"), ("vxlan", "VXLAN", "Disabled")])
def test_calico_installation_per_backend(backend: str, encapsulation: str, bgp: str) -> None:
    doc = cni.calico_installation("192.168.0.0/16", backend)
    assert doc["kind"] == "Installation" and doc["metadata"] == {"name": "default"}
    net = doc["spec"]["calicoNetwork"]
    assert net["bgp"] == bgp
    assert net["ipPools"] == [{"cidr": "192.168.0.0/16", "blockSize": 26,
                               "encapsulation": encapsulation, "natOutgoing": "Enabled",
                               "nodeSelector": "all()"}]


def test_calico_commands_in_order(fb: FakeBin, tmp_path: Path) -> None:
    said = run(ClusterProfile(cni="calico", backend="vxlan"), tmp_path)
    files = tmp_path / "files"
    assert fb.commands() == [
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(files / "calico-crds-operator-crds.yaml")),
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(files / "calico-tigera-operator.yaml")),
        kubectl("wait", "--for=condition=Established", "crd/installations.operator.tigera.io",
                "--timeout=1s"),
        kubectl("apply", "-f", "-"),
        kubectl("wait", "--for=condition=Available", "tigerastatus/calico", "--timeout=1s"),
        kubectl("wait", "--for=condition=Available", "tigerastatus", "--all", "--timeout=1s"),
    ]
    [installation] = [json.loads(s) for s in fb.stdin("kubectl", "apply", "-")]
    assert installation == cni.calico_installation("192.168.0.0/16", "vxlan")
    assert said == ["Installing Calico v3.32.2 through the Tigera operator (pool 192.168.0.0/16, "
                    "vxlan)", "Waiting for Calico (TigeraStatus Available)"]


def test_calico_installation_retried_until_its_crd_is_served(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "apply", "-f", "-", code=1,
          stderr=no_matches("Installation", "operator.tigera.io/v1", "default"),
          then=[{"stdout": "installation.operator.tigera.io/default created"}])
    # TigeraStatus objects appear only once the operator has started
    fb.on("kubectl", "wait", "tigerastatus/calico", code=1,
          stderr='error: the server doesn\'t have a resource type "tigerastatus"',
          then=[{"code": 1, "stderr": not_found("tigerastatuses.operator.tigera.io", "calico")},
                {"stdout": "tigerastatus.operator.tigera.io/calico condition met"}])
    run(ClusterProfile(cni="calico"), tmp_path)
    assert len(fb.stdin("kubectl", "apply", "-")) == 2
    assert len([c for c in fb.calls("kubectl") if "tigerastatus/calico" in c]) == 3


def test_calico_not_available_reports_the_last_state(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "wait", "tigerastatus/calico", code=1, stderr=wait_timed_out(
        "tigerastatuses/calico"))
    fb.on("kubectl", "get", "pods", "-n", "calico-system", stdout=json.dumps({"items": [
        pod("calico-system", "calico-node-x2k9p", waiting=("ImagePullBackOff",
            'Back-off pulling image "docker.io/calico/node:v3.32.2"'))]}))
    with pytest.raises(WaitTimeout) as info:
        run(ClusterProfile(cni="calico"), tmp_path)
    message = str(info.value)
    assert "Calico (TigeraStatus calico) to be Available" in message
    assert "timed out waiting for the condition on tigerastatuses/calico" in message
    assert ('calico-system/calico-node-x2k9p: calico-node: ImagePullBackOff (Back-off pulling '
            'image "docker.io/calico/node:v3.32.2")') in message


def test_cilium_helm_chart_and_rollouts(fb: FakeBin, tmp_path: Path) -> None:
    said = run(ClusterProfile(cni="cilium"), tmp_path)
    assert fb.commands() == [
        shlex.join(["helm", "upgrade", "--install", "cilium", "cilium", "--repo",
                    "https://helm.cilium.io/", "--version", "1.20.2", "--namespace", "kube-system",
                    "--set", "ipam.mode=kubernetes", "--set", "image.pullPolicy=IfNotPresent",
                    "--set", "operator.replicas=1", "--kubeconfig", "/kc", "--kube-context",
                    "kind-c"]),
        kubectl("rollout", "status", "daemonset/cilium", "-n", "kube-system", "--timeout=1s"),
        kubectl("rollout", "status", "deployment/cilium-operator", "-n", "kube-system",
                "--timeout=1s"),
    ]
    assert said[0] == "Installing Cilium 1.20.2 (Helm chart, Kubernetes IPAM)"


def test_cilium_status_when_the_cli_is_installed(fb: FakeBin, tmp_path: Path) -> None:
    fb.add_tool("cilium")
    run(ClusterProfile(cni="cilium"), tmp_path)
    assert fb.calls("cilium") == [["status", "--wait", "--wait-duration", "2s",
                                   "--interactive=false", *KC]]
    fb.on("cilium", "status", code=1, stderr="Error: Unable to determine status: timeout while "
          "waiting for status to become successful: context deadline exceeded")
    with pytest.raises(WaitTimeout, match=r"cilium status to report success.*Unable to determine"):
        run(ClusterProfile(cni="cilium"), tmp_path)


def test_flannel_bridge_plugin_on_every_node_then_manifest(fb: FakeBin, tmp_path: Path) -> None:
    nodes = ("c-control-plane", "c-worker", "c-worker2")
    said = run(ClusterProfile(cni="flannel", backend="host-gw"), tmp_path, nodes)
    bridge = tmp_path / "work" / "cni-bin" / "bridge"
    assert bridge.read_text() == "#!/bin/sh\n# fake ./bridge\n" and bridge.stat().st_mode & 0o111
    assert fb.commands() == [
        *(shlex.join(["docker", "cp", str(bridge), f"{n}:/opt/cni/bin/bridge"]) for n in nodes),
        kubectl("apply", "-f", "-"),
        kubectl("rollout", "status", "daemonset/kube-flannel-ds", "-n", "kube-flannel",
                "--timeout=1s"),
    ]
    docs = list(yaml.safe_load_all(fb.stdin("kubectl", "apply")[0]))
    [cfg] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert json.loads(cfg["data"]["net-conf.json"]) == {
        "Network": "10.244.0.0/16", "EnableNFTables": False, "Backend": {"Type": "host-gw"}}
    assert cfg["data"]["cni-conf.json"] == '{"name": "cbr0"}'
    assert said == ["Installing Flannel v0.28.9 (host-gw) and the bridge plugin v1.9.1 on 3 "
                    "nodes", "Waiting for Flannel (DaemonSet rolled out)"]


def test_flannel_manifest_without_its_configmap_is_refused() -> None:
    with pytest.raises(ClusterError, match="no ConfigMap 'kube-flannel-cfg'"):
        cni.flannel_manifest([{"kind": "DaemonSet", "metadata": {"name": "x"}}], "10.244.0.0/16",
                             "vxlan")


def test_unknown_cni_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: kindnet, flannel, calico, cilium"):
        cni.cni_steps(tools(), ClusterProfile(cni="weave"), pod_subnet="", nodes=(),
                      work_dir=tmp_path, timeouts=T)


def test_settle_waits_for_every_node_and_coredns(fb: FakeBin) -> None:
    said: list[str] = []
    run_steps(cni.settle_steps(tools(), ClusterProfile(workers=2), T), said.append)
    assert fb.commands() == [
        kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=1s"),
        kubectl("get", "nodes", "-o", "name"),
        kubectl("rollout", "status", "deployment/coredns", "-n", "kube-system", "--timeout=1s"),
    ]
    assert said == ["Waiting for 3 nodes to be Ready", "Waiting for CoreDNS"]
    with pytest.raises(ClusterError, match=r"has 3 nodes .* asks for 4"):
        run_steps(cni.settle_steps(tools(), ClusterProfile(workers=3), T), said.append)


def test_node_not_ready_explained_by_the_cni_pods(fb: FakeBin) -> None:
    fb.on("kubectl", "wait", "nodes", code=1, stderr=wait_timed_out("nodes/c-worker"))
    fb.on("kubectl", "get", "pods", "-n", "kube-flannel", stdout=json.dumps({"items": [
        pod("kube-flannel", "kube-flannel-ds-7q2lx", waiting=("CrashLoopBackOff", "back-off 40s "
            "restarting failed container")), pod("kube-flannel", "kube-flannel-ds-ok", ready=True)]}))
    with pytest.raises(WaitTimeout) as info:
        run_steps(cni.settle_steps(tools(), ClusterProfile(cni="flannel"), T), lambda s: None)
    assert str(info.value) == (
        "timed out after 2s waiting for 3 nodes to be Ready; last seen: error: timed out waiting "
        "for the condition on nodes/c-worker; kube-flannel/kube-flannel-ds-7q2lx: kube-flannel: "
        "CrashLoopBackOff (back-off 40s restarting failed container)")
    assert fb.calls("kubectl")[-2][4:] == ["get", "pods", "-n", "kube-system", "-o", "json"]


# ---- Tools -------------------------------------------------------------------------------

def pod(namespace: str, name: str, *, waiting: tuple[str, str] | None = None,
        ready: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending",
                              "conditions": [{"type": "Ready", "status": str(ready)}]}
    if waiting:
        container = name.rsplit("-", 1)[0].removesuffix("-ds")
        status["containerStatuses"] = [{"name": container, "state": {
            "waiting": {"reason": waiting[0], "message": waiting[1]}}}]
    return {"metadata": {"namespace": namespace, "name": name}, "status": status}


def test_pod_problem_lines() -> None:
    assert pod_problem(pod("a", "ok", ready=True)) == ""
    unschedulable = {"metadata": {"namespace": "a", "name": "p"}, "status": {
        "phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                            "reason": "Unschedulable",
                                            "message": "0/3 nodes are available"}]}}
    assert pod_problem(unschedulable) == "a/p: Unschedulable: 0/3 nodes are available"
    pulling = pod("a", "web-1", waiting=("ErrImagePull", 'failed to pull image "nginx:nope"'))
    assert pod_problem(pulling) == 'a/web-1: web: ErrImagePull (failed to pull image "nginx:nope")'
    done = {"metadata": {"namespace": "a", "name": "job"}, "status": {"phase": "Succeeded"}}
    assert pod_problem(done) == ""


def test_apply_retries_only_transient_failures(fb: FakeBin) -> None:
    fb.on("kubectl", "apply", code=1, stderr="error: error parsing STDIN: error converting YAML")
    with pytest.raises(CommandError, match="error parsing STDIN") as info:
        tools().apply("a thing", "kind: x", timeout=2)
    assert info.value.argv == ["kubectl", *KC, "apply", "-f", "-"]
    assert len(fb.calls("kubectl")) == 1  # not retried: it would never work


def test_apply_gives_up_at_the_deadline_with_the_last_output(fb: FakeBin) -> None:
    fb.on("kubectl", "apply", code=1, stderr="The connection to the server 127.0.0.1:40123 was "
          "refused - did you specify the right host or port?")
    with pytest.raises(WaitTimeout) as info:
        Tools(kubeconfig=Path("/kc"), context="kind-c", interval=0.05).apply(
            "the pool", "kind: x", timeout=0.3)
    assert info.value.what == "the pool" and "was refused" in str(info.value.last)
    assert len(fb.calls("kubectl")) >= 2


def test_missing_tool_is_a_command_error_not_a_retry(fb: FakeBin) -> None:
    fb.remove("kubectl")
    with pytest.raises(CommandError, match="kubectl: not found"):
        tools().wait("x", ["nodes", "--all"], "Ready", timeout=1)
