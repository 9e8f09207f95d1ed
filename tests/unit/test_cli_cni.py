"""Choosing the CNI from the CLI: ``--cni``/``--backend`` on ``lab start`` and ``lab cluster
create``, with an in-memory engine (no root, nothing built).

The fake engine behaves like the local one where the CLI depends on it: ``create`` reuses a
cluster of the same profile and raises ClusterExists for another one; ``info`` and ``list``
report the stored profile.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from labrun import Ran, lab

from clusters import Capabilities, ClusterExists, ClusterInfo, ClusterProfile
from labs import doctor
from labs import session as session_mod
from labs.catalogue import default_catalogue
from labs.cli import labs_cmd


class FakeCluster:
    engine = "local"

    def __init__(self, name: str) -> None:
        self.name = name

    def capabilities(self) -> Capabilities:
        return Capabilities(network_policy=True, services=True, dns=True)


class FakeEngine:
    name = "local"

    def __init__(self) -> None:
        self.clusters: dict[str, ClusterProfile] = {}
        self.created: list[tuple[str, ClusterProfile]] = []
        self.deleted: list[str] = []

    def create(self, name: str, profile: ClusterProfile,
               report: Callable[[str], None] | None = None) -> FakeCluster:
        existing = self.clusters.get(name)
        if existing is not None and existing != profile:
            raise ClusterExists(f"cluster {name!r} exists with another profile (CNI "
                                f"{existing.cni_label}); wanted CNI {profile.cni_label}")
        if existing is None:
            self.clusters[name] = profile
            self.created.append((name, profile))
        return FakeCluster(name)

    def delete(self, name: str) -> bool:
        self.deleted.append(name)
        return self.clusters.pop(name, None) is not None

    def info(self, name: str) -> ClusterInfo | None:
        profile = self.clusters.get(name)
        if profile is None:
            return None
        return ClusterInfo(name, "local", profile, True, "daemon running",
                           tuple(f"{name}-n{i}" for i in range(profile.nodes)))

    def list(self) -> list[ClusterInfo]:
        return [i for i in (self.info(n) for n in sorted(self.clusters)) if i is not None]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Private workspace and state; every engine is the fake; lab setup is recorded."""
    name = f"knlt{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAB_CLUSTER", name)
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    engine = FakeEngine()
    monkeypatch.setattr(session_mod, "get_engine", lambda _name, context=None: engine)
    prepared: list[str] = []
    monkeypatch.setattr(labs_cmd, "prepare", lambda cluster, lab: prepared.append(lab.id))
    return {"ws": tmp_path / "ws", "cluster": name, "engine": engine, "prepared": prepared}


def start(*args: str, stdin: str = "") -> Ran:
    return lab("start", *args, "--engine", "local", stdin=stdin)


def assert_nothing_made(env: dict[str, Any]) -> None:
    assert env["engine"].created == [] and env["engine"].deleted == []
    assert env["prepared"] == []
    assert not Path(env["ws"]).exists(), "no workspace or progress for a refused start"


def one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- lab start


@pytest.mark.parametrize(("args", "says"), [
    (("--cni", "weave"), ["unknown CNI 'weave'", "kindnet, flannel (vxlan|host-gw), "
                          "calico (bgp|vxlan), cilium"]),
    (("--cni", "flannel", "--backend", "ipip"), ["no backend 'ipip'",
                                                 "vxlan, host-gw (default vxlan)"]),
    (("--cni", "calico", "--backend", "host-gw"), ["no backend 'host-gw'", "bgp, vxlan"]),
    (("--cni", "kindnet", "--backend", "vxlan"), ["no backends", "leave out --backend"]),
    (("--backend", "vxlan"), ["kindnet", "leave out --backend"]),  # the lab's default CNI
], ids=["unknown-cni", "flannel-backend", "calico-backend", "kindnet-backend", "backend-alone"])
def test_bad_choices_are_usage_errors_listing_the_choices(
        env: dict[str, Any], args: tuple[str, ...], says: list[str]) -> None:
    ran = start("01", *args)
    assert ran.code == 2, ran
    text = one_line(ran.err)
    for words in says:
        assert words in text
    assert "Traceback" not in ran.err
    assert_nothing_made(env)


def test_lab_04_refuses_flannel_and_says_why(env: dict[str, Any]) -> None:
    ran = start("04", "--cni", "flannel")
    assert ran.code == 2
    text = one_line(ran.err)
    assert "lab 04 supports the CNIs kindnet, calico, not flannel" in text
    assert "flannel does not enforce NetworkPolicy" in text
    assert "--cni kindnet or --cni calico" in text
    assert_nothing_made(env)


def test_cilium_on_the_local_engine_points_to_kind(env: dict[str, Any]) -> None:
    ran = start("01", "--cni", "cilium")
    assert ran.code == 1
    text = one_line(ran.err)
    assert "Cilium is not emulated on the local engine" in text
    assert "use the kind engine" in text and "--engine kind --cni cilium" in text
    assert "Traceback" not in ran.err
    assert_nothing_made(env)


@pytest.mark.parametrize(("args", "profile"), [
    ((), ClusterProfile(cni="kindnet")),
    (("--cni", "flannel"), ClusterProfile(cni="flannel", backend="vxlan")),
    (("--cni", "flannel", "--backend", "host-gw"), ClusterProfile(cni="flannel", backend="host-gw")),
    (("--cni", "calico"), ClusterProfile(cni="calico", backend="bgp")),
    (("--cni", "calico", "--backend", "vxlan"), ClusterProfile(cni="calico", backend="vxlan")),
], ids=["default", "flannel", "flannel-host-gw", "calico", "calico-vxlan"])
def test_start_creates_the_cluster_of_the_chosen_mode(
        env: dict[str, Any], args: tuple[str, ...], profile: ClusterProfile) -> None:
    ran = start("01", *args)
    assert ran.code == 0, ran.err
    assert env["engine"].created == [(env["cluster"], profile)]
    assert env["prepared"] == ["01"]
    assert f"CNI: {profile.cni_label}" in ran.err
    enforced = "does not enforce NetworkPolicy" not in ran.err
    assert enforced is (profile.cni != "flannel")


def test_changing_the_cni_asks_first_and_shows_both_profiles(env: dict[str, Any]) -> None:
    engine: FakeEngine = env["engine"]
    engine.clusters[env["cluster"]] = ClusterProfile(cni="kindnet")

    refused = start("01", "--cni", "flannel", stdin="y\n")  # no terminal: only --yes says yes
    assert refused.code == 1
    question = one_line(refused.err)
    assert f"Delete cluster {env['cluster']} (CNI kindnet, 2 workers) and create it again " \
           "with CNI flannel (vxlan), 2 workers, for lab 01?" in question
    assert "pass --yes to confirm" in question
    assert engine.deleted == [] and engine.clusters[env["cluster"]].cni == "kindnet"
    assert env["prepared"] == []

    confirmed = start("01", "--cni", "flannel", "--yes")
    assert confirmed.code == 0, confirmed.err
    assert engine.deleted == [env["cluster"]]
    assert engine.clusters[env["cluster"]] == ClusterProfile(cni="flannel", backend="vxlan")


def test_changing_only_the_backend_also_recreates(env: dict[str, Any]) -> None:
    engine: FakeEngine = env["engine"]
    engine.clusters[env["cluster"]] = ClusterProfile(cni="calico", backend="bgp")
    ran = start("02", "--cni", "calico", "--backend", "vxlan", "--yes")
    assert ran.code == 0, ran.err
    assert "calico (bgp)" in ran.err and "calico (vxlan)" in ran.err
    assert engine.clusters[env["cluster"]].backend == "vxlan"


def test_without_cni_a_running_cluster_the_lab_supports_is_kept(env: dict[str, Any]) -> None:
    engine: FakeEngine = env["engine"]
    engine.clusters[env["cluster"]] = ClusterProfile(cni="calico", backend="vxlan")
    ran = start("02")
    assert ran.code == 0, ran.err
    assert engine.deleted == [] and engine.created == []
    assert "CNI: calico (vxlan)" in ran.err


def test_without_cni_a_cluster_the_lab_cannot_use_is_recreated_on_the_default(
        env: dict[str, Any]) -> None:
    engine: FakeEngine = env["engine"]
    engine.clusters[env["cluster"]] = ClusterProfile(cni="flannel", backend="host-gw")
    ran = start("04")
    assert ran.code == 1
    assert "(CNI flannel (host-gw), 2 workers)" in one_line(ran.err)
    assert "with CNI kindnet" in one_line(ran.err)
    assert engine.deleted == []


# --------------------------------------------------------------------------- lab cluster


def test_cluster_create_takes_cni_and_backend(env: dict[str, Any]) -> None:
    ran = lab("cluster", "create", "--engine", "local", "--name", env["cluster"],
              "--cni", "flannel", "--backend", "host-gw", "--nodes", "3")
    assert ran.code == 0, ran.err
    assert env["engine"].created == [(env["cluster"], ClusterProfile(
        workers=2, cni="flannel", backend="host-gw"))]
    assert "CNI flannel (host-gw)" in ran.out


@pytest.mark.parametrize(("args", "code", "says"), [
    (("--cni", "cilium"), 1, "use the kind engine"),
    (("--cni", "calico", "--backend", "ipip"), 2, "no backend 'ipip'"),
    (("--cni", "nope"), 2, "unknown CNI 'nope'"),
])
def test_cluster_create_refuses_before_creating(
        env: dict[str, Any], args: tuple[str, ...], code: int, says: str) -> None:
    ran = lab("cluster", "create", "--engine", "local", "--name", env["cluster"], *args)
    assert ran.code == code
    assert says in one_line(ran.err)
    assert env["engine"].created == []


def test_cluster_list_and_status_show_the_cni_and_backend(env: dict[str, Any]) -> None:
    engine: FakeEngine = env["engine"]
    engine.clusters[env["cluster"]] = ClusterProfile(cni="calico", backend="bgp")
    listed = lab("cluster", "list", "--engine", "local")
    assert listed.code == 0
    row = next(line for line in listed.out.splitlines() if line.startswith(env["cluster"]))
    assert "calico (bgp)" in row

    status = lab("status", "--engine", "local")
    assert status.code == 0
    assert "CNI:       calico (bgp)" in status.out


# --------------------------------------------------------------------------- help, catalogue


def test_help_shows_cni_examples_and_node_shell_commands() -> None:
    ran = lab("--help")
    assert ran.code == 0
    for words in ("lab start 01 --cni flannel", "birdc show protocols",
                  "bridge fdb show dev flannel.1"):
        assert words in ran.out
    start_help = lab("start", "--help")
    assert "--backend" in start_help.out and "calico (bgp|vxlan)" in one_line(start_help.out)


@pytest.mark.parametrize(("lab_id", "cnis"), [
    ("01", ["kindnet", "flannel", "calico"]),
    ("02", ["kindnet", "flannel", "calico"]),
    ("04", ["kindnet", "calico"]),
])
def test_labs_declare_the_cnis_they_support(lab_id: str, cnis: Sequence[str]) -> None:
    lab_def = default_catalogue().get(lab_id)
    assert lab_def.cluster.cni == list(cnis)
    assert lab_def.profile("calico", "vxlan") == ClusterProfile(cni="calico", backend="vxlan")
    assert lab_def.profile().cni_label == "kindnet"


# --------------------------------------------------------------------------- lab doctor


def _tools(monkeypatch: pytest.MonkeyPatch, present: set[str], bird_says: str = "") -> None:
    from clusters.proc import Result

    monkeypatch.setattr(doctor.shutil, "which",
                        lambda tool: f"/usr/bin/{tool}" if tool in present else None)

    def fake_run(argv: Sequence[str], **_: Any) -> Result:
        assert list(argv) == ["bird", "--version"], argv
        return Result(list(argv), 0, "", bird_says)

    monkeypatch.setattr(doctor, "run", fake_run)


def test_doctor_cni_tools_all_present(monkeypatch: pytest.MonkeyPatch) -> None:
    _tools(monkeypatch, {"bird", "birdc", "iperf3"}, "BIRD version 2.0.12\n")
    found = {f.name: f for f in doctor._cni_tools()}
    assert found["BIRD 2 (calico bgp)"].ok and "BIRD 2.0.12" in found["BIRD 2 (calico bgp)"].detail
    assert found["iperf3 (benchmark)"].ok and found["iperf3 (benchmark)"].fix == ""
    assert {f.area for f in found.values()} == {"cni"}


@pytest.mark.parametrize(("present", "bird_says", "detail"), [
    ({"iperf3"}, "", "missing bird and birdc"),
    ({"bird", "iperf3"}, "", "missing birdc"),
    ({"bird", "birdc", "iperf3"}, "BIRD version 1.6.8\n", "BIRD 1.6.8; calico's configuration "
                                                          "is written for BIRD 2"),
], ids=["no-bird", "no-birdc", "bird-1"])
def test_doctor_says_how_to_get_bird_2(monkeypatch: pytest.MonkeyPatch, present: set[str],
                                       bird_says: str, detail: str) -> None:
    _tools(monkeypatch, present, bird_says)
    bird = next(f for f in doctor._cni_tools() if f.name == "BIRD 2 (calico bgp)")
    assert not bird.ok
    assert detail in bird.detail
    assert bird.fix == "apt-get install bird2"


def test_doctor_without_iperf3_only_notes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _tools(monkeypatch, {"bird", "birdc"}, "BIRD version 2.0.12\n")
    iperf = next(f for f in doctor._cni_tools() if f.name == "iperf3 (benchmark)")
    assert not iperf.ok and iperf.fix == "apt-get install iperf3"
    assert "bench_cni.py" in iperf.detail and "not a problem" in iperf.detail
    assert iperf.area not in ("system", "tools"), "a missing iperf3 must not fail `lab doctor`"


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel checks need a namespace (root)")
def test_doctor_tries_the_cni_kernel_features_in_a_namespace() -> None:
    found = {(f.area, f.name): f for f in doctor.diagnose()}
    bridge_nf = found[("kernel", "bridge netfilter (flannel)")]
    assert bridge_nf.ok or bridge_nf.fix == "load the module: modprobe br_netfilter"
    vxlan = found[("kernel", "vxlan")]
    assert vxlan.ok or "modprobe vxlan" in vxlan.fix
    assert f"knl-doctor-{os.getpid()}" not in run_ip_netns_list(), "the scratch namespace stays"


def run_ip_netns_list() -> list[str]:
    from clusters.proc import run

    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line]
