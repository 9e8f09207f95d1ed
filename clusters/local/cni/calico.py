"""Calico: routed ``cali*`` veths with the 169.254.1.1 trick, IPAM blocks, BGP or VXLAN.

Pods. Every pod's node-side veth is ``cali`` + 11 hex digits of sha1("<namespace>.<pod>"),
as Calico's CNI plugin names it, with MAC ee:ee:ee:ee:ee:ee and no address. The pod gets
its IP as a /32 and two routes: ``169.254.1.1 dev eth0 scope link`` and ``default via
169.254.1.1``. No interface has 169.254.1.1; the node answers the pod's ARP for it by proxy
(``proxy_arp=1`` on the cali veth, ``proxy_delay=0`` so the answer is not held back), so
every packet a pod sends, even to a pod on the same node, is routed by the node, where
kube-proxy and the NetworkPolicy rules see it. The node reaches the pod by ``<ip>/32 dev
caliX scope link``.

IPAM. Pods get addresses from the IP pool (192.168.0.0/16), one /26 block per node. The
node routes its own block to a blackhole, so an address of the block without a pod is
dropped at once instead of being routed elsewhere.

Between nodes, ``bgp`` (calico_backend bird, Calico's default): one BIRD per node,
full iBGP mesh in AS 64512, each node announcing its block; BIRD writes the other blocks
into the node's table (``proto bird``), as on a real node. ``vxlan`` (calico_backend
vxlan): no BIRD; Felix programs a ``vxlan.calico`` device (VNI 4096, UDP 4789), a route
per other block via that node's tunnel address, and the neighbour and FDB entries that
make the tunnel address resolve to the node's underlay address.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clusters.errors import ClusterError, WaitTimeout
from clusters.local.cni import bird
from clusters.local.cni.base import CniPlugin, PodWiring, overlay_mac
from clusters.local.netns import links_present
from clusters.local.topology import CALICO_GATEWAY, NodePlan
from clusters.proc import run

#: Every cali veth has this MAC in the node: pods see the gateway at ee:ee:ee:ee:ee:ee.
CALI_MAC = "ee:ee:ee:ee:ee:ee"
VXLAN_DEVICE = "vxlan.calico"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
#: The protocol number Felix marks its routes with (``ip route`` shows ``proto 80``).
FELIX_PROTO = 80


def cali_name(key: str) -> str:
    """The node-side veth of pod ``key`` (``namespace/name``), 15 characters, computed like
    Calico's CNI plugin: sha1 of ``namespace.name``."""
    namespace, _, name = key.partition("/")
    return "cali" + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


def vxlan_mac(cluster: str, node: str) -> str:
    """The MAC of ``node``'s vxlan.calico (Felix keeps its random one in the node's
    VXLAN tunnel data; see :func:`overlay_mac`)."""
    return overlay_mac("calico-vxlan", cluster, node)


class Calico(CniPlugin):
    name = "calico"
    enforces_policy = True

    backends = ("bgp", "vxlan")  # bgp first: Calico's default (calico_backend bird)

    def pod_veth(self, key: str) -> str:
        return cali_name(key)

    # ---- nodes --------------------------------------------------------------------------------
    def node_lines(self, node: NodePlan) -> list[str]:
        # Proxy ARP answers for 169.254.1.1 only if the node itself routes that address out
        # of another interface than the asking cali veth (a real node's default route does
        # that). Nodes here have no default route, so 169.254.1.1 gets an on-link route of
        # its own on eth0: nothing is ever sent to it (pods only ARP for it, and their
        # packets are routed by their real destination), and if something were, it would
        # stay on the cluster's bridge.
        lines = [f"route replace {CALICO_GATEWAY}/32 dev eth0 scope link"]
        if self.vxlan:
            lines += self._vxlan_lines(node)
        return lines

    def _vxlan_lines(self, node: NodePlan) -> list[str]:
        dev, mac = VXLAN_DEVICE, vxlan_mac(self.topo.cluster, node.name)
        lines = []
        # A VXLAN device's VNI, port and local address cannot be changed (``link replace``
        # fails on an existing one), so an existing device is kept and only updated.
        if dev not in links_present(node.netns, (dev,)):
            lines.append(f"link add {dev} mtu {self.pod_mtu} address {mac} type vxlan "
                         f"id {VXLAN_VNI} local {node.underlay_ip} dev eth0 "
                         f"dstport {VXLAN_PORT} nolearning")
        lines += [f"link set {dev} mtu {self.pod_mtu} address {mac} up",
                  f"addr replace {node.tunnel_ip}/32 dev {dev}",
                  f"route replace blackhole {node.pod_cidr} proto {FELIX_PROTO}"]
        for other in self.others(node):
            other_mac = vxlan_mac(self.topo.cluster, other.name)
            lines += [f"neigh replace {other.tunnel_ip} lladdr {other_mac} dev {dev} "
                      "nud permanent",
                      f"route replace {other.pod_cidr} via {other.tunnel_ip} dev {dev} "
                      f"onlink proto {FELIX_PROTO}"]
        return lines

    def fdb_lines(self, node: NodePlan) -> list[str]:
        """``bridge -batch`` lines: each other node's vxlan.calico MAC is reached by sending
        UDP to that node's underlay address."""
        return [f"fdb replace {vxlan_mac(self.topo.cluster, o.name)} dev {VXLAN_DEVICE} "
                f"dst {o.underlay_ip} self permanent" for o in self.others(node)]

    def node_finish(self, node: NodePlan) -> None:
        if self.vxlan and len(self.topo.nodes) > 1:
            run(["bridge", "-n", node.netns, "-batch", "-"],
                input="\n".join(self.fdb_lines(node)) + "\n")

    # ---- BIRD (bgp backend) ---------------------------------------------------------------------
    def bird_paths(self, node: NodePlan) -> bird.BirdPaths:
        return bird.BirdPaths(self.agent_dir(node))

    def bird_node(self, node: NodePlan) -> bird.BirdNode:
        return bird.BirdNode(
            name=node.name, address=node.underlay_ip, block=node.pod_cidr,
            pool=self.topo.pod_cidr, peers=tuple(o.underlay_ip for o in self.others(node)),
            log_file=self.bird_paths(node).log_file)

    def bird_config(self, node: NodePlan) -> str:
        return bird.render_config(self.bird_node(node))

    def start(self) -> None:
        if self.vxlan:
            return
        paths = [self.bird_paths(n) for n in self.topo.nodes]
        bird.stop(paths)  # BIRDs an earlier daemon left, maybe with another config
        for node, p in zip(self.topo.nodes, paths, strict=True):
            bird.start(p, node.netns, self.bird_config(node))

    def stop(self) -> None:
        if not self.vxlan:
            bird.stop([self.bird_paths(n) for n in self.topo.nodes])

    def mesh_state(self, node: NodePlan) -> dict[str, str]:
        """Mesh session -> "state info" as BIRD reports it ("BIRD not running: ..." when its
        control socket does not answer)."""
        try:
            text = bird.query(self.bird_paths(node).socket, "show protocols", timeout=1.0)
        except ClusterError as err:
            return {"BIRD": f"not running ({err})"}
        names = {bird.mesh_name(o.underlay_ip) for o in self.others(node)}
        seen = {p.name: p for p in bird.parse_protocols(text) if p.name in names}
        return {name: (seen[name].describe().partition(" ")[2] if name in seen else "missing")
                for name in sorted(names)}

    def missing_routes(self, node: NodePlan) -> list[str]:
        """Other nodes' blocks not yet in the node's kernel table via that node."""
        out = run(["ip", "-n", node.netns, "-4", "route", "show", "proto", "bird"]).stdout
        have = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
        missing = []
        for other in self.others(node):
            route = have.get(str(other.pod_cidr), [])
            if str(other.underlay_ip) not in route:
                missing.append(f"{other.pod_cidr} via {other.underlay_ip}")
        return missing

    def _mesh_report(self) -> dict[str, str]:
        """Node -> what keeps it from being ready ("" when ready)."""
        report = {}
        for node in self.topo.nodes:
            states = self.mesh_state(node)
            down = [f"{name} {state}" for name, state in states.items()
                    if not state.startswith("up Established")]
            if down:
                report[node.name] = "; ".join(down)
                continue
            missing = self.missing_routes(node)
            report[node.name] = f"routes missing: {', '.join(missing)}" if missing else ""
        return report

    def wait_ready(self, timeout: float) -> None:
        if self.vxlan or len(self.topo.nodes) < 2:
            return
        # Polled every 50 ms (a poll is one control-socket query per node, plus one ``ip``
        # per node once its sessions are up): the sessions come up about 0.8 s after BIRD
        # starts, and a growing interval would notice that only a few hundred ms later.
        what = "every BGP mesh session Established and every block routed"
        deadline = time.monotonic() + timeout
        while True:
            report = self._mesh_report()
            if not any(report.values()):
                return
            if time.monotonic() >= deadline:
                last = "; ".join(f"{n}: {why}" for n, why in report.items() if why)
                logs = {n.name: _tail(self.bird_paths(n).log_file) for n in self.topo.nodes}
                raise WaitTimeout(what, timeout, f"{last}\nBIRD logs: {logs}")
            time.sleep(0.05)

    # ---- pods ---------------------------------------------------------------------------------
    def pod_node_lines(self, pod: PodWiring) -> list[str]:
        return [self.veth_pair_line(pod, mac=CALI_MAC),
                f"link set {pod.veth} alias {self.topo.tag} up",
                f"route replace {pod.ip}/32 dev {pod.veth} scope link"]

    def pod_node_sysctls(self, pod: PodWiring) -> Mapping[str, str]:
        return {f"net/ipv4/conf/{pod.veth}/proxy_arp": "1",
                f"net/ipv4/neigh/{pod.veth}/proxy_delay": "0"}

    def pod_lines(self, pod: PodWiring) -> list[str]:
        gw = CALICO_GATEWAY
        return [f"addr add {pod.ip}/32 dev eth0",
                f"route add {gw} dev eth0 scope link",
                f"route add default via {gw} dev eth0"]

    # ---- for people ---------------------------------------------------------------------------
    def node_annotations(self, node: NodePlan) -> dict[str, str]:
        notes = {"projectcalico.org/IPv4Address":
                 f"{node.underlay_ip}/{self.topo.underlay.prefixlen}"}
        if self.vxlan and node.tunnel_ip is not None:
            notes["projectcalico.org/IPv4VXLANTunnelAddr"] = str(node.tunnel_ip)
        return notes

    def node_binds(self, node: NodePlan) -> list[tuple[Path, str]]:
        if self.vxlan:
            return []
        return [(self.bird_paths(node).socket_dir, bird.DEFAULT_SOCKET_DIR)]

    def status(self) -> dict[str, Any]:
        info = super().status()
        info.update({
            "calico_backend": "vxlan" if self.vxlan else "bird",
            "ip_pool": str(self.topo.pod_cidr),
            "gateway": str(CALICO_GATEWAY),
            "blocks": {n.name: str(n.pod_cidr) for n in self.topo.nodes},
        })
        if self.vxlan:
            info["vxlan"] = {"device": VXLAN_DEVICE, "vni": VXLAN_VNI, "port": VXLAN_PORT,
                             "tunnel_addresses": {n.name: str(n.tunnel_ip)
                                                  for n in self.topo.nodes}}
            info["bgp"] = ("not used: with calico_backend vxlan, Felix programs the routes "
                           "to other nodes' blocks over vxlan.calico and no BIRD runs, so "
                           "birdc has nothing to talk to")
        else:
            info["bgp"] = {"as_number": bird.AS_NUMBER, "mesh": "full node-to-node mesh",
                           "sessions": {n.name: self.mesh_state(n) for n in self.topo.nodes}}
        return info


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


__all__ = ["CALI_MAC", "Calico", "cali_name", "vxlan_mac"]
