"""Flannel's plugin without root: the exact lines it gives ``ip``/``bridge`` per backend,
its VTEP MACs, Node annotations, subnet.env and addressing."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from clusters.errors import ClusterError
from clusters.local.cni import plugin_for
from clusters.local.cni.base import PodWiring
from clusters.local.cni.flannel import Flannel, subnet_env, vtep_mac
from clusters.local.datapath import IPAM, pod_addresses
from clusters.local.topology import Topology, plan, pod_veth_name

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def topo(backend: str, workers: int = 2, cluster: str = "fl") -> Topology:
    return plan(cluster, workers, cni="flannel", backend=backend)


def test_registry_gives_flannel_for_both_backends() -> None:
    for backend in ("vxlan", "host-gw"):
        plugin = plugin_for(topo(backend))
        assert isinstance(plugin, Flannel)
        assert plugin.name == "flannel" and plugin.enforces_policy is False


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ClusterError, match="host-gw"):
        Flannel(topo("bgp"))


def test_vxlan_node_lines_exact() -> None:
    t = topo("vxlan")
    cp, w1, w2 = t.nodes
    f = Flannel(t)
    m1, m2 = vtep_mac("fl", w1.name), vtep_mac("fl", w2.name)
    assert (cp.pod_cidr, cp.gateway, cp.tunnel_ip) == (
        IPv4Network("10.244.0.0/24"), IPv4Address("10.244.0.1"), IPv4Address("10.244.0.0"))
    assert f.node_lines_given(cp) == [
        "link add cni0 mtu 1450 type bridge",
        "link set cni0 mtu 1450 up",
        "addr replace 10.244.0.1/24 dev cni0",
        f"link add flannel.1 mtu 1450 address {vtep_mac('fl', cp.name)} type vxlan id 1 "
        f"local {cp.underlay_ip} dev eth0 dstport 8472 nolearning",
        f"link set flannel.1 mtu 1450 address {vtep_mac('fl', cp.name)} up",
        "addr replace 10.244.0.0/32 dev flannel.1",
        "route replace 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink",
        f"neigh replace 10.244.1.0 lladdr {m1} dev flannel.1 nud permanent",
        "route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
        f"neigh replace 10.244.2.0 lladdr {m2} dev flannel.1 nud permanent",
    ]
    assert f.fdb_lines(cp) == [
        f"fdb replace {m1} dev flannel.1 dst {w1.underlay_ip} self permanent",
        f"fdb replace {m2} dev flannel.1 dst {w2.underlay_ip} self permanent",
    ]
    # No node programs entries for itself.
    for n in t.nodes:
        mine = vtep_mac("fl", n.name)
        assert not any(mine in line for line in f.fdb_lines(n))
        assert not any(f"{n.pod_cidr} " in line for line in f.node_lines_given(n)
                       if line.startswith("route"))


def test_vxlan_node_lines_on_a_built_node_add_nothing_again() -> None:
    t = topo("vxlan")
    f = Flannel(t)
    lines = f.node_lines_given(t.nodes[1], frozenset({"cni0", "flannel.1"}))
    assert not any(line.startswith("link add") for line in lines)
    assert "link set flannel.1 mtu 1450 address " + vtep_mac("fl", t.nodes[1].name) + " up" \
        in lines
    # Outside root and before the node exists, node_lines sees no links and adds them.
    assert f.node_lines(t.nodes[1]) == f.node_lines_given(t.nodes[1])


def test_host_gw_node_lines_exact() -> None:
    t = topo("host-gw")
    cp, w1, w2 = t.nodes
    f = Flannel(t)
    assert all(n.tunnel_ip is None for n in t.nodes)
    assert f.node_lines_given(w1) == [
        "link add cni0 mtu 1500 type bridge",
        "link set cni0 mtu 1500 up",
        "addr replace 10.244.1.1/24 dev cni0",
        f"route replace 10.244.0.0/24 via {cp.underlay_ip} dev eth0",
        f"route replace 10.244.2.0/24 via {w2.underlay_ip} dev eth0",
    ]
    assert f.fdb_lines(w1) == []
    assert not any("flannel.1" in line for n in t.nodes for line in f.node_lines_given(n))


@pytest.mark.parametrize(("backend", "mtu"), [("vxlan", 1450), ("host-gw", 1500)])
def test_pod_wiring_lines(backend: str, mtu: int) -> None:
    t = topo(backend)
    f = Flannel(t)
    node = t.workers[0]
    key = "default/web"
    pod = PodWiring(key=key, netns="knl-fl-pod-0123456789ab", veth=f.pod_veth(key),
                    ip=IPv4Address("10.244.1.7"), node=node)
    assert f.pod_mtu == mtu
    assert f.pod_veth(key) == pod_veth_name(key) and re.match(r"^veth[0-9a-f]{8}$", pod.veth)
    assert f.pod_node_lines(pod) == [
        f"link add {pod.veth} mtu {mtu} type veth peer name eth0 netns {pod.netns} mtu {mtu}",
        f"link set {pod.veth} master cni0 alias {t.tag} up",
        f"link set {pod.veth} type bridge_slave hairpin on",
    ]
    assert f.pod_lines(pod) == [
        "addr add 10.244.1.7/24 dev eth0",
        "route add 10.244.0.0/16 via 10.244.1.1 dev eth0",
        "route add default via 10.244.1.1 dev eth0",
    ]
    assert f.pod_node_sysctls(pod) == {}


def test_vtep_macs_are_stable_unique_local_unicast() -> None:
    t = topo("vxlan", workers=252)
    macs = [vtep_mac(t.cluster, n.name) for n in t.nodes]
    assert len(set(macs)) == len(macs) == 253
    for mac in macs:
        assert MAC.match(mac), mac
        first = int(mac[:2], 16)
        assert first & 0x02, f"{mac} is not locally administered"
        assert not first & 0x01, f"{mac} is multicast"
    assert macs == [vtep_mac(t.cluster, n.name) for n in topo("vxlan", workers=252).nodes]
    # Another cluster's nodes of the same names get other MACs.
    assert vtep_mac("other", t.nodes[0].name) != macs[0]


def test_node_annotations_like_the_kube_subnet_manager() -> None:
    vx, hg = topo("vxlan"), topo("host-gw")
    node = vx.workers[1]
    ann = Flannel(vx).node_annotations(node)
    assert ann == {
        "flannel.alpha.coreos.com/backend-data": f'{{"VNI":1,"VtepMAC":"{vtep_mac("fl", node.name)}"}}',
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": str(node.underlay_ip),
    }
    assert json.loads(ann["flannel.alpha.coreos.com/backend-data"]) == {
        "VNI": 1, "VtepMAC": vtep_mac("fl", node.name)}
    hg_ann = Flannel(hg).node_annotations(hg.workers[1])
    assert hg_ann["flannel.alpha.coreos.com/backend-data"] == "null"
    assert hg_ann["flannel.alpha.coreos.com/backend-type"] == "host-gw"
    assert hg_ann["flannel.alpha.coreos.com/public-ip"] == str(hg.workers[1].underlay_ip)


@pytest.mark.parametrize(("backend", "mtu"), [("vxlan", 1450), ("host-gw", 1500)])
def test_subnet_env_and_bind(backend: str, mtu: int) -> None:
    t = topo(backend)
    f = Flannel(t)
    node = t.workers[1]
    assert subnet_env(t, node, f.pod_mtu) == (
        f"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\n"
        f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=true\n")
    assert f.node_binds(node) == [
        (Path("/run/kube-netlab/fl/nodes") / node.name / "flannel", "/run/flannel")]


def test_status_names_the_backend_details() -> None:
    vx = Flannel(topo("vxlan")).status()
    assert vx == {"cni": "flannel", "backend": "vxlan", "pod_mtu": 1450,
                  "enforces_policy": False, "bridge": "cni0", "device": "flannel.1",
                  "vni": 1, "port": 8472}
    hg = Flannel(topo("host-gw")).status()
    assert hg["device"] == "eth0" and hg["pod_mtu"] == 1500 and "vni" not in hg
    json.dumps(vx), json.dumps(hg)


def test_node_sysctls_turn_on_bridge_netfilter() -> None:
    if not Path("/proc/sys/net/bridge").is_dir():
        pytest.skip("br_netfilter is not loaded here")
    t = topo("host-gw")
    assert Flannel(t).node_sysctls(t.nodes[0]) == {"net/bridge/bridge-nf-call-iptables": "1"}


def test_ipam_never_hands_out_gateway_or_tunnel_address() -> None:
    t = topo("vxlan", workers=1)
    node = t.workers[0]
    pool = pod_addresses(node)
    assert node.tunnel_ip not in pool and node.gateway not in pool
    assert len(pool) == 253  # .2 to .254
    ipam = IPAM(t)
    given = {ipam.allocate(node.name, f"default/p{i}") for i in range(253)}
    assert node.tunnel_ip not in given and node.gateway not in given
    assert all(a in node.pod_cidr for a in given)
