"""Calico's plugin without root: names, MACs, ip lines per backend, BIRD config and output.

The BIRD config is parse-checked by the real ``bird -p`` (it only reads the file, no root
needed), and ``show protocols`` parsing runs on output captured from BIRD 2.0.12.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from clusters.errors import ClusterError, WaitTimeout
from clusters.local.cni import bird, plugin_for
from clusters.local.cni.base import PodWiring
from clusters.local.cni.calico import CALI_MAC, Calico, cali_name, vxlan_mac
from clusters.local.topology import Topology, plan

CLUSTER = "calunit"


def topo(backend: str, workers: int = 2) -> Topology:
    return plan(CLUSTER, workers, cni="calico", backend=backend, arch="amd64")


def calico(backend: str, workers: int = 2) -> Calico:
    plugin = plugin_for(topo(backend, workers))
    assert isinstance(plugin, Calico)
    return plugin


def wiring(plugin: Calico, key: str = "lab01/client", node: int = 1) -> PodWiring:
    n = plugin.topo.nodes[node]
    return PodWiring(key=key, netns="knl-calunit-pod-0123456789ab", veth=plugin.pod_veth(key),
                     ip=n.pod_cidr[5], node=n)


# ---- names and MACs ---------------------------------------------------------------------------
def test_cali_names_are_calicos_sha1_of_namespace_dot_name() -> None:
    # sha1("default.nginx") starts with c440f455693...
    assert cali_name("default/nginx") == "calic440f455693"
    names = {cali_name(f"ns/pod-{i}") for i in range(200)}
    assert len(names) == 200
    assert all(len(n) == 15 and n.startswith("cali") for n in names)
    assert calico("bgp").pod_veth("default/nginx") == "calic440f455693"


def test_vxlan_macs_are_stable_local_unicast_and_distinct() -> None:
    macs = [vxlan_mac(CLUSTER, n.name) for n in topo("vxlan", 4).nodes]
    assert macs == [vxlan_mac(CLUSTER, n.name) for n in topo("vxlan", 4).nodes]
    assert len(set(macs)) == 5
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, mac  # locally administered, unicast
        assert len(mac.split(":")) == 6
    assert vxlan_mac("other", topo("vxlan").nodes[0].name) != macs[0]


def test_unknown_backend_is_refused_and_none_means_bgp() -> None:
    with pytest.raises(ClusterError, match="backend"):
        plugin_for(topo("host-gw"))
    assert calico("").backend == "bgp" and calico("").node_binds(topo("").nodes[0])


# ---- node lines -------------------------------------------------------------------------------
def test_bgp_nodes_only_route_the_gateway_on_link_and_never_default() -> None:
    plugin = calico("bgp")
    for node in plugin.topo.nodes:
        lines = plugin.node_lines(node)
        assert lines == ["route replace 169.254.1.1/32 dev eth0 scope link"]
    assert plugin.pod_mtu == 1500


def test_vxlan_nodes_get_calicos_device_routes_and_neighbours() -> None:
    plugin = calico("vxlan")
    nodes = plugin.topo.nodes
    me, others = nodes[1], [nodes[0], nodes[2]]
    lines = plugin.node_lines(me)
    assert not any("default" in line for line in lines)
    mac = vxlan_mac(CLUSTER, me.name)
    assert (f"link add vxlan.calico mtu 1450 address {mac} type vxlan id 4096 "
            f"local {me.underlay_ip} dev eth0 dstport 4789 nolearning") in lines
    assert f"addr replace {me.tunnel_ip}/32 dev vxlan.calico" in lines
    assert f"route replace blackhole {me.pod_cidr} proto 80" in lines
    for o in others:
        assert (f"route replace {o.pod_cidr} via {o.tunnel_ip} dev vxlan.calico onlink "
                "proto 80") in lines
        assert (f"neigh replace {o.tunnel_ip} lladdr {vxlan_mac(CLUSTER, o.name)} "
                "dev vxlan.calico nud permanent") in lines
    assert plugin.fdb_lines(me) == [
        f"fdb replace {vxlan_mac(CLUSTER, o.name)} dev vxlan.calico dst {o.underlay_ip} "
        "self permanent" for o in others]
    assert plugin.pod_mtu == 1450
    # The tunnel address is the block's first address and never a pod's.
    assert me.tunnel_ip == next(me.pod_cidr.hosts())


# ---- pods -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["bgp", "vxlan"])
def test_pods_are_wired_with_the_169_254_1_1_trick(backend: str) -> None:
    plugin = calico(backend)
    pod = wiring(plugin)
    node_lines = plugin.pod_node_lines(pod)
    mtu = plugin.pod_mtu
    assert node_lines[0] == (f"link add {pod.veth} mtu {mtu} address {CALI_MAC} type veth "
                             f"peer name eth0 netns {pod.netns} mtu {mtu}")
    assert f"route replace {pod.ip}/32 dev {pod.veth} scope link" in node_lines
    assert not any(line.startswith("addr") for line in node_lines)  # no address on cali*
    assert plugin.pod_node_sysctls(pod) == {
        f"net/ipv4/conf/{pod.veth}/proxy_arp": "1",
        f"net/ipv4/neigh/{pod.veth}/proxy_delay": "0"}
    assert plugin.pod_lines(pod) == [f"addr add {pod.ip}/32 dev eth0",
                                     "route add 169.254.1.1 dev eth0 scope link",
                                     "route add default via 169.254.1.1 dev eth0"]


# ---- for people -------------------------------------------------------------------------------
def test_annotations_per_backend() -> None:
    bgp, vx = calico("bgp"), calico("vxlan")
    node = bgp.topo.nodes[2]
    assert bgp.node_annotations(node) == {"projectcalico.org/IPv4Address": f"{node.underlay_ip}/24"}
    vnode = vx.topo.nodes[2]
    assert vx.node_annotations(vnode) == {
        "projectcalico.org/IPv4Address": f"{vnode.underlay_ip}/24",
        "projectcalico.org/IPv4VXLANTunnelAddr": str(vnode.tunnel_ip)}


def test_birdc_socket_is_bound_only_in_bgp_mode() -> None:
    bgp, vx = calico("bgp"), calico("vxlan")
    node = bgp.topo.nodes[0]
    assert bgp.node_binds(node) == [(Path(f"/run/kube-netlab/{CLUSTER}/nodes/{node.name}/bird"),
                                     "/run/bird")]
    assert vx.node_binds(vx.topo.nodes[0]) == []


def test_status_explains_each_backend() -> None:
    vx = calico("vxlan").status()
    assert vx["cni"] == "calico" and vx["backend"] == "vxlan" and vx["enforces_policy"]
    assert vx["calico_backend"] == "vxlan" and vx["pod_mtu"] == 1450
    assert "not used" in vx["bgp"] and "birdc" in vx["bgp"]
    assert vx["vxlan"]["vni"] == 4096 and vx["vxlan"]["port"] == 4789
    bgp = calico("bgp")
    st = bgp.status()
    assert st["ip_pool"] == "192.168.0.0/16" and st["gateway"] == "169.254.1.1"
    assert st["blocks"] == {n.name: str(n.pod_cidr) for n in bgp.topo.nodes}
    assert st["bgp"]["as_number"] == 64512
    # Nothing runs here: every node says its BIRD does not answer.
    for node in bgp.topo.nodes:
        assert st["bgp"]["sessions"][node.name]["BIRD"].startswith("not running")


def test_wait_ready_names_the_node_and_session_that_was_not_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = calico("bgp")
    stuck = plugin.topo.nodes[1]

    def mesh_state(node: object) -> dict[str, str]:
        if node == stuck:
            return {"Mesh_172_30_0_2": "start Active", "Mesh_172_30_0_4": "up Established"}
        return {"Mesh_x": "up Established"}

    monkeypatch.setattr(plugin, "mesh_state", mesh_state)
    monkeypatch.setattr(plugin, "missing_routes", lambda node: [])
    with pytest.raises(WaitTimeout) as err:
        plugin.wait_ready(0.3)
    assert f"{stuck.name}: Mesh_172_30_0_2 start Active" in str(err.value)
    assert "Mesh_172_30_0_4" not in str(err.value.last).split("BIRD logs")[0]

    monkeypatch.setattr(plugin, "mesh_state", lambda node: {"Mesh_x": "up Established"})
    monkeypatch.setattr(plugin, "missing_routes",
                        lambda node: ["192.168.1.0/26 via 172.30.0.9"] if node == stuck else [])
    with pytest.raises(WaitTimeout) as missing:
        plugin.wait_ready(0.3)
    assert f"{stuck.name}: routes missing: 192.168.1.0/26 via 172.30.0.9" in str(missing.value)
    monkeypatch.setattr(plugin, "missing_routes", lambda node: [])
    plugin.wait_ready(0.3)  # all up: returns


# ---- BIRD config ------------------------------------------------------------------------------
def test_bird_config_of_a_three_node_mesh() -> None:
    plugin = calico("bgp")
    a, b, c = plugin.topo.nodes
    conf = plugin.bird_config(b)
    assert f"router id {b.underlay_ip};" in conf
    assert f"route {b.pod_cidr} blackhole;" in conf
    assert f"if net = {b.pod_cidr} then accept;" in conf  # exports its own block only
    assert "local 172.30.0.3 as 64512;" in conf
    assert conf.count("protocol bgp Mesh_") == 2
    assert "protocol bgp Mesh_172_30_0_3" not in conf  # never a session to itself
    # Of each pair only the lower address connects; the higher one waits (passive).
    assert _peer_block(conf, "Mesh_172_30_0_2").count("passive on") == 0
    assert _peer_block(conf, "Mesh_172_30_0_4").count("passive on") == 1
    assert "connect delay time 1;" in conf and "connect retry time 2;" in conf
    assert str(plugin.bird_paths(b).log_file) in conf
    assert conf == plugin.bird_config(b)  # pure
    assert plugin.bird_config(a) != conf and plugin.bird_config(c) != conf


def _peer_block(conf: str, name: str) -> str:
    start = conf.index(f"protocol bgp {name} ")
    return conf[start:conf.index("}", start)]


needs_bird = pytest.mark.skipif(shutil.which(bird.BIRD) is None, reason="BIRD 2 not installed")


@needs_bird
@pytest.mark.parametrize("workers", [0, 3])
def test_real_bird_parses_every_nodes_config(tmp_path: Path, workers: int) -> None:
    plugin = calico("bgp", workers=workers)
    for node in plugin.topo.nodes:
        conf = tmp_path / f"{node.name}.conf"
        conf.write_text(plugin.bird_config(node))
        checked = subprocess.run([bird.BIRD, "-p", "-c", str(conf)], capture_output=True,
                                 text=True, check=False)
        assert checked.returncode == 0, checked.stderr


@needs_bird
def test_the_parse_check_catches_a_broken_config(tmp_path: Path) -> None:
    conf = tmp_path / "bird.conf"
    conf.write_text(calico("bgp").bird_config(topo("bgp").nodes[0]).replace(
        "local 172.30.0.2 as 64512;", "local 172.30.0.2 as;"))
    checked = subprocess.run([bird.BIRD, "-p", "-c", str(conf)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode != 0


def test_mesh_names_follow_calico() -> None:
    assert bird.mesh_name(IPv4Address("172.30.0.3")) == "Mesh_172_30_0_3"


# ---- BIRD output ------------------------------------------------------------------------------
#: ``birdc show protocols`` on a worker of a converged 3-node cluster (BIRD 2.0.12).
CONVERGED = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     23:27:07.787  
kernel1    Kernel     master4    up     23:27:07.787  
static1    Static     master4    up     23:27:07.787  
Mesh_172_30_3_2 BGP        ---        up     23:27:08.600  Established   
Mesh_172_30_3_4 BGP        ---        up     23:27:08.567  Established   
"""  # noqa: W291 (BIRD pads the Info column)

#: The same two seconds after start on a node whose peers are not there.
WAITING = """\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     23:27:34.996  
kernel1    Kernel     master4    up     23:27:34.996  
static1    Static     master4    up     23:27:34.996  
Mesh_172_31_9_1 BGP        ---        start  23:27:34.996  Active        Socket: Connection refused
Mesh_172_31_9_3 BGP        ---        start  23:27:34.996  Passive       
"""  # noqa: W291


def test_parse_show_protocols() -> None:
    rows = bird.parse_protocols(CONVERGED)
    assert [r.name for r in rows] == ["device1", "kernel1", "static1", "Mesh_172_30_3_2",
                                      "Mesh_172_30_3_4"]
    mesh = [r for r in rows if r.proto == "BGP"]
    assert all(r.established for r in mesh)
    assert not any(r.established for r in rows if r.proto != "BGP")
    assert rows[3].since == "23:27:08.600" and rows[3].table == "---"
    waiting = {r.name: r for r in bird.parse_protocols(WAITING)}
    active = waiting["Mesh_172_31_9_1"]
    assert (active.state, active.info) == ("start", "Active        Socket: Connection refused")
    assert not active.established
    assert waiting["Mesh_172_31_9_3"].describe() == "Mesh_172_31_9_3 start Passive"


def test_control_socket_replies_read_like_birdc() -> None:
    raw = io.StringIO(
        "2002-Name       Proto      Table      State  Since         Info\n"
        "1002-device1    Device     ---        up     23:27:34.996  \n"
        " Mesh_172_31_9_3 BGP        ---        start  23:27:34.996  Passive       \n"
        "1006-  Description:    Connection to BGP peer\n"
        "0000 \n"
        "0001 BIRD 2.0.12 ready.\n")
    code, lines = bird._read_reply(raw)
    assert code == 0
    assert lines[0].startswith("Name") and lines[2].startswith("Mesh_172_31_9_3")
    assert lines[3] == "  Description:    Connection to BGP peer"
    assert bird._read_reply(raw) == (1, ["BIRD 2.0.12 ready."])
    code, lines = bird._read_reply(io.StringIO("9001 syntax error, unexpected END\n"))
    assert code == 9001 and lines == ["syntax error, unexpected END"]
    with pytest.raises(OSError):
        bird._read_reply(io.StringIO("1002-device1 cut here\n"))


def test_query_without_a_bird_says_so(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="control socket"):
        bird.query(tmp_path / "bird.ctl", "show protocols")


def test_running_birds_are_found_by_command_line_not_by_a_stale_pid_file(tmp_path: Path) -> None:
    paths = bird.BirdPaths(tmp_path / "node")
    proc = tmp_path / "proc"

    def fake(pid: int, *argv: str) -> None:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    fake(100, bird.BIRD, "-c", str(paths.config), "-s", str(paths.socket))
    fake(200, "/usr/bin/python3", "editor", str(paths.config))  # names it, is not a BIRD
    fake(300, bird.BIRD, "-c", str(tmp_path / "other" / "bird.conf"))
    paths.agent_dir.mkdir()
    paths.pid_file.write_text("300\n")  # reused pid: another node's BIRD
    assert bird.running(paths, proc) == [100]
    paths.pid_file.write_text("100\n")
    assert bird.running(paths, proc) == [100]


def test_bird_files_live_under_the_agent_dir() -> None:
    plugin = calico("bgp")
    node = plugin.topo.nodes[0]
    paths = plugin.bird_paths(node)
    argv = paths.argv(node.netns)
    assert argv[:4] == ["ip", "netns", "exec", node.netns]
    assert argv[4] == bird.BIRD
    root = f"/run/kube-netlab/{CLUSTER}/"
    assert [a for a in argv if a.startswith(root)] == [
        str(paths.config), str(paths.socket), str(paths.pid_file)]
    assert paths.socket == paths.socket_dir / "bird.ctl"
    assert IPv4Network(str(node.pod_cidr)).prefixlen == 26
