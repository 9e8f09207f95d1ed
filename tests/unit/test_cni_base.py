"""The CNI catalogue, profiles with backends, CNI-aware planning and the plugin seam (no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from clusters.cnis import CniChoiceError, choices, resolve
from clusters.engine import ClusterProfile
from clusters.errors import EngineUnavailable
from clusters.local import cleanup
from clusters.local.cni import PodWiring, check_supported
from clusters.local.cni.base import CniPlugin
from clusters.local.cni.kindnet import Kindnet
from clusters.local.datapath import IPAM, Datapath, pod_addresses
from clusters.local.podstatus import node_object
from clusters.local.topology import (
    CALICO_GATEWAY,
    CALICO_POOL,
    NodePlan,
    Topology,
    calico_blocks,
    plan,
)


# ---- catalogue and profiles ----------------------------------------------------------------------
def test_backends_default_to_the_cnis_first_choice() -> None:
    assert resolve("flannel") == ("flannel", "vxlan")
    assert resolve("calico") == ("calico", "bgp")
    assert resolve("kindnet") == ("kindnet", "")
    assert resolve("flannel", "host-gw") == ("flannel", "host-gw")


@pytest.mark.parametrize(("cni", "backend", "says"), [
    ("weave", "", "unknown CNI 'weave'; choose one of: kindnet, flannel (vxlan|host-gw)"),
    ("flannel", "bgp", "the flannel CNI has no backend 'bgp'; choose one of: vxlan, host-gw"),
    ("kindnet", "vxlan", "the kindnet CNI has no backends to choose from"),
])
def test_bad_choices_name_the_good_ones(cni: str, backend: str, says: str) -> None:
    with pytest.raises(CniChoiceError) as err:
        resolve(cni, backend)
    assert says in str(err.value)
    assert "calico (bgp|vxlan)" in choices()


def test_a_profile_stores_the_resolved_backend_so_equal_clusters_compare_equal() -> None:
    assert ClusterProfile(cni="flannel") == ClusterProfile(cni="flannel", backend="vxlan")
    assert ClusterProfile(cni="flannel") != ClusterProfile(cni="flannel", backend="host-gw")
    assert ClusterProfile(cni="calico").cni_label == "calico (bgp)"
    assert ClusterProfile().cni_label == "kindnet"
    again = ClusterProfile.from_dict(ClusterProfile(cni="calico", backend="vxlan").to_dict())
    assert again == ClusterProfile(cni="calico", backend="vxlan")
    # State written before backends existed still reads as the same cluster.
    assert ClusterProfile.from_dict({"workers": 2, "cni": "kindnet", "addons": []}) == ClusterProfile()


def test_cilium_is_refused_on_the_local_engine_with_what_to_do() -> None:
    with pytest.raises(EngineUnavailable) as err:
        check_supported("cilium")
    assert "Cilium is not emulated on the local engine" in str(err.value)
    assert "--engine kind --cni cilium" in str(err.value)


# ---- planning --------------------------------------------------------------------------------------
def test_calico_gets_a_26_block_per_node_from_its_pool_and_the_link_local_gateway() -> None:
    topo = plan("demo", 2, cni="calico", backend="bgp")
    assert topo.pod_cidr == CALICO_POOL and topo.cni == "calico" and topo.backend == "bgp"
    blocks = [n.pod_cidr for n in topo.nodes]
    assert all(b.prefixlen == 26 and b.subnet_of(CALICO_POOL) for b in blocks)
    assert len(set(blocks)) == 3
    assert {n.gateway for n in topo.nodes} == {CALICO_GATEWAY}
    assert all(n.tunnel_ip is None for n in topo.nodes)
    assert Topology.from_dict(topo.to_dict()) == topo


def test_calico_blocks_are_reproducible_distinct_and_not_simply_the_first_ones() -> None:
    a = calico_blocks("demo", CALICO_POOL, 200)
    assert a == calico_blocks("demo", CALICO_POOL, 200) and len(set(a)) == 200
    assert calico_blocks("other", CALICO_POOL, 3) != a[:3]


def test_calico_pool_moves_when_the_host_routes_part_of_192_168() -> None:
    topo = plan("demo", 2, [IPv4Network("192.168.1.0/24")], cni="calico")
    assert topo.pod_cidr == IPv4Network("10.244.0.0/16")
    assert all(n.pod_cidr.prefixlen == 26 and n.pod_cidr.subnet_of(topo.pod_cidr)
               for n in topo.nodes)


def test_vxlan_modes_reserve_the_tunnel_address_and_ipam_never_hands_it_out() -> None:
    flannel = plan("demo", 1, cni="flannel", backend="vxlan")
    node = flannel.nodes[1]
    assert node.tunnel_ip == node.pod_cidr.network_address  # 10.244.1.0 on flannel.1
    calico = plan("demo", 1, cni="calico", backend="vxlan")
    cnode = calico.nodes[0]
    assert cnode.tunnel_ip == next(cnode.pod_cidr.hosts())
    assert cnode.tunnel_ip not in pod_addresses(cnode)
    ipam = IPAM(calico)
    given = {ipam.allocate(cnode.name, f"ns/p{i}") for i in range(len(pod_addresses(cnode)))}
    assert cnode.tunnel_ip not in given and len(given) == 61
    assert Topology.from_dict(calico.to_dict()) == calico


def test_a_topology_saved_before_cni_modes_loads_as_kindnet() -> None:
    data = plan("demo", 1).to_dict()
    for key in ("cni", "backend"):
        data.pop(key)
    for n in data["nodes"]:
        n.pop("tunnel_ip")
    topo = Topology.from_dict(data)
    assert topo.cni == "kindnet" and topo.nodes[0].tunnel_ip is None


def test_calico_node_objects_keep_the_controller_managers_24_apart_from_the_blocks() -> None:
    topo = plan("demo", 1, cni="calico")
    node = topo.nodes[1]
    obj = node_object(node, topo, "2026-01-01T00:00:00Z", {"projectcalico.org/x": "y"})
    assert obj["spec"]["podCIDR"] == "192.168.1.0/24" != str(node.pod_cidr)
    assert obj["metadata"]["annotations"]["projectcalico.org/x"] == "y"
    kindnet = plan("demo", 1)
    assert node_object(kindnet.nodes[1], kindnet, "t")["spec"]["podCIDR"] == "10.244.1.0/24"


# ---- the plugin seam ------------------------------------------------------------------------------
def test_kindnet_wires_pods_point_to_point_through_the_gateway() -> None:
    topo = plan("demo", 1)
    node = topo.nodes[1]
    k = Kindnet(topo)
    pod = PodWiring("ns/web", "knl-demo-pod-abc", k.pod_veth("ns/web"),
                    IPv4Address("10.244.1.5"), node)
    assert k.pod_node_lines(pod) == [
        f"link add {pod.veth} mtu 1500 type veth peer name eth0 netns knl-demo-pod-abc mtu 1500",
        f"link set {pod.veth} alias kube-netlab:demo up",
        "addr replace 10.244.1.1/32 dev " + pod.veth,
        f"route replace 10.244.1.5/32 dev {pod.veth} scope host"]
    assert k.pod_lines(pod)[0] == "addr add 10.244.1.5/24 dev eth0 noprefixroute"
    assert k.node_lines(node) == [
        f"route replace 10.244.0.0/24 via {topo.nodes[0].underlay_ip} dev eth0"]
    assert pod.veth.startswith("veth") and len(pod.veth) == 12


class _Binds(CniPlugin):
    name = "binds"

    def node_binds(self, node: NodePlan) -> list[tuple[Path, str]]:
        return [(Path("/run/kube-netlab/demo/nodes") / node.name / "bird", "/run/bird")]


def test_node_commands_see_the_cnis_folders_through_a_private_bind_mount() -> None:
    topo = plan("demo", 1)
    argv = Datapath(topo, _Binds(topo)).node_exec_argv("demo-worker", ["birdc", "show", "protocols"])
    assert argv[:4] == ["ip", "netns", "exec", "knl-demo-worker"]
    i = argv.index("sh")
    assert argv[i:i + 2] == ["sh", "-ec"]
    assert 'mount --bind "$1" "$2"' in argv[i + 2] and 'exec "$@"' in argv[i + 2]
    assert argv[i + 4:] == ["/run/kube-netlab/demo/nodes/demo-worker/bird", "/run/bird",
                            "birdc", "show", "protocols"]
    plain = Datapath(topo).node_exec_argv("demo-worker", ["ip", "route"])
    assert plain[-3:] == ["--", "ip", "route"]


def test_agents_are_found_by_a_path_under_the_clusters_run_folder(tmp_path: Path) -> None:
    proc = tmp_path / "proc"

    def fake(pid: int, *argv: str) -> None:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    fake(10, "/usr/sbin/bird", "-c", "/run/kube-netlab/demo/nodes/demo-worker/bird.conf")
    fake(11, "/usr/sbin/bird", "-c", "/run/kube-netlab/demo-b/nodes/x/bird.conf")
    fake(12, "python", "-m", "clusters.local.daemon", "--cluster", "demo")
    fake(13, "/usr/sbin/bird", "-c", "/etc/bird/bird.conf")
    (proc / "self").mkdir()
    assert cleanup.agent_processes("demo", proc) == [(10, "bird")]
    assert cleanup.agent_processes("demo-b", proc) == [(11, "bird")]
