"""KindEngine against fake kind/kubectl/docker/helm/istioctl: create, reuse, ownership,
clean-up on failure and Ctrl-C, delete, list, connect."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from fakebin import (
    DOCKER_DENIED,
    DOCKER_DOWN,
    FakeBin,
    already_exists,
    fake_fetch,
    wait_timed_out,
)

from clusters.engine import Capabilities, ClusterProfile, Engine
from clusters.errors import (
    ClusterError,
    ClusterExists,
    ClusterNotFound,
    CommandError,
    EngineUnavailable,
    WaitTimeout,
)
from clusters.kind import addons, cni
from clusters.kind import engine as engine_mod
from clusters.kind.engine import KindEngine, NodeExec, capabilities
from clusters.kind.pins import pin
from clusters.kind.state import READY, KindRecord, KindState
from clusters.kind.steps import Timeouts
from clusters.kind.tools import Tools

KINDNET = ClusterProfile(workers=1)
MANAGED = {"netlab.dev/managed": "true"}


@pytest.fixture
def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBin:
    fake = FakeBin(tmp_path / "fb").install(monkeypatch)
    fetch = fake_fetch(tmp_path / "files")
    monkeypatch.setattr(cni, "fetch", fetch)
    monkeypatch.setattr(addons, "fetch", fetch)
    return fake


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The KubeCluster handles the engine would build (no API client in these tests)."""
    calls: list[tuple[Any, ...]] = []

    def make(*args: Any) -> str:
        calls.append(args)
        return f"cluster:{args[2]}"

    monkeypatch.setattr(engine_mod, "make_cluster", make)
    return calls


def engine(tmp_path: Path) -> KindEngine:
    return KindEngine(state_dir=tmp_path / "state", tools=Tools(interval=0.01),
                      timeouts=Timeouts(create=5, apply=2, ready=2))


def kc(tmp_path: Path, name: str) -> list[str]:
    return ["--kubeconfig", str(tmp_path / "state" / "kind" / f"{name}.kubeconfig"),
            "--context", f"kind-{name}"]


def ours(tmp_path: Path, fb: FakeBin, name: str, profile: ClusterProfile,
         configmap: bool = True) -> None:
    """A running cluster made by us earlier: record, labelled nodes, the ConfigMap."""
    KindState(tmp_path / "state").write(KindRecord(name, profile).ready())
    fb.add_cluster(name, profile.workers, labels=MANAGED, configmap={
        "profile": json.dumps(profile.to_dict())} if configmap else None)


# ---- available -------------------------------------------------------------------------------

def test_engine_protocol_and_available(fb: FakeBin, tmp_path: Path) -> None:
    eng = engine(tmp_path)
    assert isinstance(eng, Engine) and eng.name == "kind"
    assert eng.available() == (True, "the kind CLI is installed and the Docker daemon answers")
    assert fb.commands() == ["docker info --format '{{json .}}'"]


def test_docker_daemon_down(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("docker", "info", code=1, stderr=DOCKER_DOWN + "\n")
    ok, why = engine(tmp_path).available()
    assert not ok
    assert why.startswith(f"{DOCKER_DOWN} (fix: ") and "systemctl start docker" in why
    with pytest.raises(EngineUnavailable) as info:
        engine(tmp_path).create("lab", KINDNET)
    assert info.value.why == DOCKER_DOWN and "systemctl start docker" in info.value.fix
    assert fb.calls("kind") == []


def test_docker_permission_denied(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("docker", "info", code=1, stderr=DOCKER_DENIED)
    ok, why = engine(tmp_path).available()
    assert not ok and "permission denied" in why and "sudo usermod -aG docker $USER" in why


def test_kind_missing(fb: FakeBin, tmp_path: Path) -> None:
    fb.remove("kind")
    ok, why = engine(tmp_path).available()
    assert not ok and why.startswith("the kind CLI is not installed (fix: install kind (https://kind")
    with pytest.raises(EngineUnavailable, match="the kind engine cannot run here: the kind CLI"):
        engine(tmp_path).create("lab", KINDNET)


def test_tools_the_profile_needs_are_checked_first(fb: FakeBin, tmp_path: Path) -> None:
    fb.remove("helm")
    engine(tmp_path).create("lab", KINDNET)  # kindnet without add-ons needs no helm
    with pytest.raises(EngineUnavailable) as info:
        engine(tmp_path).create("other", ClusterProfile(cni="cilium"))
    assert info.value.why == "helm is not installed (needed for this cluster profile)"
    assert info.value.fix == "install helm: https://helm.sh/docs/intro/install/"
    assert ["create", "cluster", "--name", "other"] not in [c[:4] for c in fb.calls("kind")]


@pytest.mark.parametrize(("name", "profile", "error", "message"), [
    ("Lab_1", KINDNET, ValueError, "not a valid kind cluster name"),
    ("x" * 51, KINDNET, ValueError, "1 to 50 lowercase letters"),
    ("lab", ClusterProfile(cni="weave"), EngineUnavailable, "choose one of: kindnet, flannel"),
    ("lab", ClusterProfile(cni="flannel", backend="ipip"), EngineUnavailable, "vxlan, host-gw"),
    ("lab", ClusterProfile(addons=("mesh",)), ValueError, "choose from: ingress, gateway"),
])
def test_bad_input_refused_before_anything_runs(fb: FakeBin, tmp_path: Path, name: str,
                                                profile: ClusterProfile, error: type[Exception],
                                                message: str) -> None:
    with pytest.raises(error, match=message):
        engine(tmp_path).create(name, profile)
    assert fb.calls() == []


# ---- create ---------------------------------------------------------------------------------

def test_create_kindnet_exact_commands(fb: FakeBin, tmp_path: Path,
                                       made: list[tuple[Any, ...]]) -> None:
    said: list[str] = []
    cluster = engine(tmp_path).create("lab", KINDNET, report=said.append)
    state = tmp_path / "state" / "kind"
    config = state / "lab.d" / "kind-config.yaml"
    k = kc(tmp_path, "lab")
    assert fb.commands()[1:] == [
        "kind get clusters",
        "kind version",
        shlex.join(["kind", "create", "cluster", "--name", "lab", "--config", str(config),
                    "--image", pin("node-image").image, "--wait", "120s", "--kubeconfig",
                    str(state / "lab.kubeconfig")]),
        "kind get nodes --name lab",
        shlex.join(["kubectl", *k, "wait", "--for=condition=Ready", "nodes", "--all",
                    "--timeout=1s"]),
        shlex.join(["kubectl", *k, "get", "nodes", "-o", "name"]),
        shlex.join(["kubectl", *k, "rollout", "status", "deployment/coredns", "-n", "kube-system",
                    "--timeout=1s"]),
        shlex.join(["kubectl", *k, "apply", "-f", "-"]),
        "kind get clusters",
        "kind get nodes --name lab",
    ]
    assert said == ["Creating cluster lab: 2 nodes, Kubernetes v1.35.8, kind v0.33.0",
                    "Waiting for 2 nodes to be Ready", "Waiting for CoreDNS",
                    "Marking the cluster as made by kube-netlab"]
    assert "disableDefaultCNI: false" in config.read_text()
    mark = json.loads(fb.stdin("kubectl", "apply")[0])
    assert mark["metadata"] == {"name": "kube-netlab", "namespace": "kube-system",
                                "labels": MANAGED}
    assert json.loads(mark["data"]["profile"]) == KINDNET.to_dict()
    record = KindState(tmp_path / "state").read("lab")
    assert record is not None and record.status == READY and record.kind_version == "v0.33.0"
    assert record.node_image == pin("node-image").image
    assert cluster == "cluster:lab"
    [(kubeconfig, context, name, caps, node_exec)] = made
    assert (kubeconfig, context, name) == (state / "lab.kubeconfig", "kind-lab", "lab")
    assert caps == capabilities(KINDNET)
    assert node_exec.nodes == ("lab-control-plane", "lab-worker")


def test_disabled_default_cni_means_no_kind_wait(fb: FakeBin, tmp_path: Path,
                                                 made: list[tuple[Any, ...]]) -> None:
    said: list[str] = []
    engine(tmp_path).create("cal", ClusterProfile(workers=0, cni="calico"), report=said.append)
    [create] = [c for c in fb.calls("kind") if c[:2] == ["create", "cluster"]]
    assert "--wait" not in create
    assert said[1:4] == ["Installing Calico v3.32.2 through the Tigera operator (pool "
                         "192.168.0.0/16, bgp)", "Waiting for Calico (TigeraStatus Available)",
                         "Waiting for 1 nodes to be Ready"]


def test_same_profile_is_reused(fb: FakeBin, tmp_path: Path, made: list[tuple[Any, ...]]) -> None:
    profile = ClusterProfile(workers=2, cni="flannel", addons=("ingress",))
    ours(tmp_path, fb, "lab", profile)
    said: list[str] = []
    assert engine(tmp_path).create("lab", profile, report=said.append) == "cluster:lab"
    assert said == ["Reusing cluster lab (2 workers, CNI flannel (vxlan), ingress)"]
    k = kc(tmp_path, "lab")
    assert fb.commands()[1:] == [
        "kind get clusters",
        shlex.join(["kind", "export", "kubeconfig", "--name", "lab", "--kubeconfig", k[1]]),
        shlex.join(["kubectl", *k, "get", "nodes", "-o", "json"]),
        shlex.join(["kubectl", *k, "get", "configmap", "kube-netlab", "-n", "kube-system", "-o",
                    "json"]),
        "kind get clusters",
        "kind get nodes --name lab",
    ]


def test_other_profile_is_deleted_and_made_again(fb: FakeBin, tmp_path: Path,
                                                 made: list[tuple[Any, ...]]) -> None:
    ours(tmp_path, fb, "lab", ClusterProfile(workers=1, cni="calico"))
    said: list[str] = []
    engine(tmp_path).create("lab", KINDNET, report=said.append)
    assert said[0] == ("Deleting cluster lab: it runs 1 workers, CNI calico (bgp), no add-ons, "
                       "this lab needs 1 workers, CNI kindnet, no add-ons")
    kind = [c[:3] for c in fb.calls("kind")]
    assert kind.index(["delete", "cluster", "--name"]) < kind.index(["create", "cluster", "--name"])
    delete = fb.calls("kind")[kind.index(["delete", "cluster", "--name"])]
    assert delete == ["delete", "cluster", "--name", "lab", "--kubeconfig", kc(tmp_path, "lab")[1]]
    assert json.loads(fb.clusters()["lab"]["configmap"]["profile"]) == KINDNET.to_dict()


def test_half_built_cluster_of_ours_is_made_again(fb: FakeBin, tmp_path: Path,
                                                  made: list[tuple[Any, ...]]) -> None:
    ours(tmp_path, fb, "lab", KINDNET, configmap=False)
    said: list[str] = []
    engine(tmp_path).create("lab", KINDNET, report=said.append)
    assert said[0] == "Deleting cluster lab: an earlier create did not finish"
    assert fb.calls("kind")[3][:4] == ["delete", "cluster", "--name", "lab"]


def test_foreign_cluster_is_never_touched(fb: FakeBin, tmp_path: Path) -> None:
    fb.add_cluster("lab", workers=1)
    with pytest.raises(ClusterExists) as info:
        engine(tmp_path).create("lab", KINDNET)
    assert str(info.value) == (
        "a kind cluster named 'lab' exists that kube-netlab did not create; it is left alone. If "
        "you no longer need it, remove it yourself: kind delete cluster --name lab (or use "
        "another cluster name)")
    assert fb.calls("kind") == [["get", "clusters"]] and fb.calls("kubectl") == []
    with pytest.raises(ClusterExists):
        engine(tmp_path).delete("lab")
    with pytest.raises(ClusterExists):
        engine(tmp_path).connect("lab")
    assert "lab" in fb.clusters() and not (tmp_path / "state" / "kind" / "lab.json").exists()


def test_record_without_node_marks_is_not_ours(fb: FakeBin, tmp_path: Path) -> None:
    KindState(tmp_path / "state").write(KindRecord("lab", KINDNET).ready())
    fb.add_cluster("lab", workers=1, labels={"team": "blue"})
    with pytest.raises(ClusterExists, match=r"nodes lab-control-plane, lab-worker lack the "
                                            r"netlab.dev/managed label"):
        engine(tmp_path).create("lab", KINDNET)
    assert "lab" in fb.clusters()
    assert not any(c[:1] == ["delete"] for c in fb.calls("kind"))


def test_cluster_of_ours_whose_api_is_down(fb: FakeBin, tmp_path: Path) -> None:
    ours(tmp_path, fb, "lab", KINDNET)
    fb.on("kubectl", "get", "nodes", code=1, stderr="The connection to the server "
          "127.0.0.1:40123 was refused - did you specify the right host or port?")
    with pytest.raises(ClusterError, match=r"kind cluster lab \(made by kube-netlab\) does not "
                                           r"answer: .*docker start lab-control-plane.*"
                                           r"lab cluster delete --name lab"):
        engine(tmp_path).create("lab", KINDNET)
    assert "lab" in fb.clusters()


def test_name_taken_while_creating(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kind", "create", "cluster", code=1,
          stderr=f'Creating cluster "lab" ...\n{already_exists("lab")}\n')
    with pytest.raises(ClusterExists, match="appeared while this one was being created"):
        engine(tmp_path).create("lab", KINDNET)
    assert not any(c[:1] == ["delete"] for c in fb.calls("kind"))
    assert KindState(tmp_path / "state").names() == []


def test_node_image_pull_failure_says_which_image(fb: FakeBin, tmp_path: Path) -> None:
    image = pin("node-image").image
    fb.on("kind", "create", "cluster", code=1, stderr=(
        f' ✗ Ensuring node image ({image}) 🖼\nERROR: failed to create cluster: failed to pull '
        f'image "{image}": command "docker pull {image}" failed with error: exit status 1\n'))
    with pytest.raises(ClusterError) as info:
        engine(tmp_path).create("lab", KINDNET)
    message = str(info.value)
    assert message.startswith(f"kind could not pull the node image {image}:")
    assert f"`docker pull {image}`" in message and "HTTPS_PROXY" in message
    assert isinstance(info.value.__cause__, CommandError)
    assert KindState(tmp_path / "state").names() == []  # kind made nothing: nothing to delete
    assert not any(c[:1] == ["delete"] for c in fb.calls("kind"))


def test_failure_mid_install_deletes_what_we_started(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "rollout", "deployment/coredns", code=1, stderr=wait_timed_out(
        "deployments/coredns"))
    said: list[str] = []
    with pytest.raises(WaitTimeout, match="deployment/coredns in kube-system to roll out"):
        engine(tmp_path).create("lab", KINDNET, report=said.append)
    assert said[-1] == "Creation failed: deleting the half-built cluster lab"
    assert fb.calls("kind")[-1] == ["delete", "cluster", "--name", "lab", "--kubeconfig",
                                    kc(tmp_path, "lab")[1]]
    assert fb.clusters() == {} and KindState(tmp_path / "state").names() == []


def test_ctrl_c_mid_install_deletes_the_cluster(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "wait", "nodes", interrupt=True)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        engine(tmp_path).create("lab", ClusterProfile(workers=1, cni="flannel"), report=said.append)
    assert said[-1] == "Interrupted: deleting the half-built cluster lab"
    assert fb.calls("kind")[-2:] == [["get", "clusters"], ["delete", "cluster", "--name", "lab",
                                     "--kubeconfig", kc(tmp_path, "lab")[1]]]
    assert fb.clusters() == {} and not (tmp_path / "state" / "kind" / "lab.d").exists()


def test_ctrl_c_and_a_failed_delete_name_the_cluster_to_remove(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "rollout", interrupt=True)
    fb.on("kind", "delete", "cluster", code=1, stderr='ERROR: failed to delete cluster "lab": '
          'failed to delete nodes: command "docker rm -f -v lab-control-plane" failed')
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt) as info:
        engine(tmp_path).create("lab", KINDNET, report=said.append)
    note = ("the half-built kind cluster 'lab' could not be deleted (command failed: kind delete "
            f"cluster --name lab --kubeconfig {kc(tmp_path, 'lab')[1]} (exit code 1)); remove it "
            "with: kind delete cluster --name lab")
    assert info.value.__notes__ == [note] and said[-1] == note
    # the record stays: the cluster is still ours, so `lab cluster delete` may remove it later
    assert KindState(tmp_path / "state").names() == ["lab"]
    assert engine(tmp_path).info("lab") is not None


# ---- delete, list, info, connect --------------------------------------------------------------

def test_delete(fb: FakeBin, tmp_path: Path) -> None:
    fb.remove("kubectl")  # kind alone removes a cluster
    eng = engine(tmp_path)
    assert eng.delete("lab") is False
    ours(tmp_path, fb, "lab", KINDNET)
    assert eng.delete("lab") is True
    assert fb.calls("kind")[-1] == ["delete", "cluster", "--name", "lab", "--kubeconfig",
                                    kc(tmp_path, "lab")[1]]
    assert fb.clusters() == {} and KindState(tmp_path / "state").names() == []
    # a record whose cluster is gone: only the record goes
    KindState(tmp_path / "state").write(KindRecord("gone", KINDNET))
    fb.clear_log()
    assert eng.delete("gone") is True and not any(c[0] == "delete" for c in fb.calls("kind"))


def test_list_and_info(fb: FakeBin, tmp_path: Path) -> None:
    profile = ClusterProfile(workers=1, cni="calico", addons=("load-balancer",))
    ours(tmp_path, fb, "mine", profile)
    fb.add_cluster("theirs", workers=0)
    KindState(tmp_path / "state").write(KindRecord("stale", KINDNET).ready())
    eng = engine(tmp_path)
    infos = {i.name: i for i in eng.list()}
    assert sorted(infos) == ["mine", "stale", "theirs"]
    assert infos["mine"].running and infos["mine"].profile == profile
    assert infos["mine"].nodes == ("mine-control-plane", "mine-worker")
    assert infos["mine"].detail.startswith("made by kube-netlab on ")
    assert not infos["stale"].running
    assert infos["stale"].detail == ("recorded but not running; forget it with "
                                     "`lab cluster delete --name stale`")
    assert infos["theirs"].running and infos["theirs"].detail == (
        "not created by kube-netlab (profile unknown): left alone; remove it yourself with "
        "`kind delete cluster --name theirs`")
    assert eng.info("nothing") is None and eng.info("mine") == infos["mine"]
    fb.remove("kind")
    [stale_view] = [i for i in eng.list() if i.name == "stale"]
    assert [i.name for i in eng.list()] == ["mine", "stale"]
    assert stale_view.detail == "kind is not installed here: cannot tell whether it runs"


def test_connect(fb: FakeBin, tmp_path: Path, made: list[tuple[Any, ...]]) -> None:
    eng = engine(tmp_path)
    with pytest.raises(ClusterNotFound, match="no kind cluster named 'lab' made by kube-netlab"):
        eng.connect("lab")
    KindState(tmp_path / "state").write(KindRecord("lab", KINDNET).ready())
    with pytest.raises(ClusterNotFound, match="recorded but kind does not list it"):
        eng.connect("lab")
    fb.add_cluster("lab", workers=1, labels=MANAGED)
    assert eng.connect("lab") == "cluster:lab"
    assert (tmp_path / "state" / "kind" / "lab.kubeconfig").exists()  # exported when missing


def test_node_exec_only_on_this_clusters_nodes(fb: FakeBin, capsys: pytest.CaptureFixture[str]) -> None:
    fb.on("docker", "exec", "lab-worker", "ip", stdout="10.244.1.0/24 via 172.18.0.3\n")
    run = NodeExec(Tools(), "lab", ("lab-control-plane", "lab-worker"))
    res = run("lab-worker", ["ip", "route"], True, 5)
    assert (res.returncode, res.stdout) == (0, "10.244.1.0/24 via 172.18.0.3\n")
    assert res.argv == ("docker", "exec", "lab-worker", "ip", "route")
    run("lab-worker", ["ip", "route"], False, None)
    assert capsys.readouterr().out == "10.244.1.0/24 via 172.18.0.3\n"
    with pytest.raises(ClusterNotFound, match="no node 'db' in kind cluster lab"):
        run("db", ["true"], True, None)
    assert fb.calls("docker") == [["exec", "lab-worker", "ip", "route"]] * 2


@pytest.mark.parametrize(("profile", "policy", "ingress", "lb"), [
    (ClusterProfile(cni="kindnet"), True, False, False),
    (ClusterProfile(cni="flannel", addons=("ingress",)), False, True, False),
    (ClusterProfile(cni="calico", addons=("load-balancer", "istio")), True, False, True),
    (ClusterProfile(cni="cilium"), True, False, False),
])
def test_capabilities(profile: ClusterProfile, policy: bool, ingress: bool, lb: bool) -> None:
    caps = capabilities(profile)
    assert isinstance(caps, Capabilities)
    assert (caps.network_policy, caps.ingress, caps.load_balancer) == (policy, ingress, lb)
    assert caps.services and caps.dns and not caps.sctp and caps.host_ip == ""
    assert (caps.cni, caps.cni_backend) == (profile.cni, profile.backend)
    assert 1 <= caps.propagation_seconds <= 10


def test_ctrl_c_during_kind_create(fb: FakeBin, tmp_path: Path) -> None:
    # kind is interrupted too and removes its own nodes: nothing is listed afterwards
    fb.on("kind", "create", "cluster", interrupt=True)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        engine(tmp_path).create("lab", KINDNET, report=said.append)
    assert said[-1] == "Interrupted: deleting the half-built cluster lab"
    assert fb.calls("kind")[-1] == ["get", "clusters"]
    assert KindState(tmp_path / "state").names() == []


def test_connect_builds_a_kube_cluster_on_our_kubeconfig(fb: FakeBin, tmp_path: Path) -> None:
    from clusters.kube.cluster import KubeCluster

    profile = ClusterProfile(workers=1, cni="flannel", addons=("ingress",))
    ours(tmp_path, fb, "lab", profile)
    cluster = engine(tmp_path).connect("lab")
    assert isinstance(cluster, KubeCluster)
    assert (cluster.name, cluster.engine) == ("lab", "kind")
    assert (cluster.api.context, cluster.api.server) == ("kind-lab", "https://127.0.0.1:40123")
    assert cluster.capabilities() == capabilities(profile)
    res = cluster.node_exec("lab-worker", ["cat", "/etc/cni/net.d/10-flannel.conflist"],
                            capture=True)
    assert res.returncode == 0 and fb.calls("docker")[-1] == [
        "exec", "lab-worker", "cat", "/etc/cni/net.d/10-flannel.conflist"]
