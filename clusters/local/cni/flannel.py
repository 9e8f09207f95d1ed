"""Flannel: a ``cni0`` bridge per node, and a VXLAN overlay (or direct routes) between nodes.

What a learner finds in a node is what a real Flannel node shows:

* ``cni0``, a Linux bridge holding the node's gateway (the first host of its /24) with the
  /24 prefix. Every pod's ``veth<8hex>`` is a port of it, with hairpin mode on (flannel's
  CNI config delegates to the bridge plugin with ``hairpinMode`` and ``isDefaultGateway``),
  so pods of one node reach each other over plain L2 and a pod can reach itself through
  its own Service. Pods get ``ip/24`` and ``default via <gateway>``, plus a route to the
  whole cluster range through the gateway (flannel's host-local IPAM routes).
* ``net.bridge.bridge-nf-call-iptables = 1``: bridged (same-node) frames go through
  iptables, so kube-proxy's DNAT of a Service is undone on the reply of a same-node
  backend. Without it that reply is bridged straight back and never un-NATed.
* Backend ``vxlan`` (the default): ``flannel.1``, VNI 1 on UDP 8472 (the kernel's
  historical port, which flannel keeps), learning off, MTU = underlay - 50, holding the
  node's subnet network address (10.244.N.0/32). flanneld programs, for every other node,
  what it reads from that node's ``backend-data`` annotation: a route
  ``<its /24> via <its 10.244.M.0> dev flannel.1 onlink``, a permanent ARP entry mapping
  that address to its VTEP MAC, and an FDB entry sending that MAC to its underlay IP. No
  multicast, no learning: every lookup is answered by those static entries.
* Backend ``host-gw``: no overlay; ``<its /24> via <its node IP> dev eth0`` (nodes share
  an L2 network, as kind's nodes do), and pods keep the full 1500 MTU.

Flannel does not enforce NetworkPolicy; its agent writes ``/run/flannel/subnet.env`` (shown
in ``lab node-shell``) and annotates the Node objects. VTEP MACs are derived from the
cluster and node names, so every node's entries are a pure function of the topology; no
agent process is needed since the topology never changes while a cluster lives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from clusters.errors import ClusterError
from clusters.local.cni.base import CniPlugin, PodWiring, overlay_mac
from clusters.local.netns import links_present
from clusters.local.topology import NodePlan, Topology, pod_veth_name
from clusters.proc import run

BRIDGE = "cni0"
VXLAN_VNI = 1
VXLAN_DEVICE = f"flannel.{VXLAN_VNI}"
VXLAN_PORT = 8472
ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
#: Where flannel's agent writes the node's lease, in the node's view.
RUN_FLANNEL = "/run/flannel"
BRIDGE_NF_SYSCTL = "net/bridge/bridge-nf-call-iptables"
BACKENDS = ("vxlan", "host-gw")


def vtep_mac(cluster: str, node: str) -> str:
    """The VTEP MAC of ``node``'s ``flannel.1`` (flanneld publishes its random one in the
    Node's ``backend-data`` annotation; see :func:`overlay_mac`)."""
    return overlay_mac("flannel", cluster, node)


def subnet_env(topo: Topology, node: NodePlan, mtu: int) -> str:
    """The text of ``/run/flannel/subnet.env``, which flannel's CNI plugin reads."""
    return (f"FLANNEL_NETWORK={topo.pod_cidr}\n"
            f"FLANNEL_SUBNET={node.gateway}/{node.pod_cidr.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
            "FLANNEL_IPMASQ=true\n")


class Flannel(CniPlugin):
    name = "flannel"
    enforces_policy = False

    backends = BACKENDS

    def pod_veth(self, key: str) -> str:
        return pod_veth_name(key)

    def mac(self, node: NodePlan) -> str:
        return vtep_mac(self.topo.cluster, node.name)

    # ---- nodes -------------------------------------------------------------------------------
    def node_sysctls(self, node: NodePlan) -> dict[str, str]:
        if not Path("/proc/sys/net/bridge").is_dir() and shutil.which("modprobe"):
            run(["modprobe", "br_netfilter"], check=False)
        if not Path("/proc/sys/net/bridge").is_dir():
            raise ClusterError(
                "flannel needs the br_netfilter kernel module (net.bridge.bridge-nf-call-"
                "iptables): without it a pod reaching a Service backed by a pod of its own "
                "node gets no answer. Load it with: modprobe br_netfilter")
        return {BRIDGE_NF_SYSCTL: "1"}

    def node_lines(self, node: NodePlan) -> list[str]:
        present = links_present(node.netns, (BRIDGE, VXLAN_DEVICE) if self.vxlan else (BRIDGE,))
        return self.node_lines_given(node, present)

    def node_lines_given(self, node: NodePlan, present: frozenset[str] = frozenset()) -> list[str]:
        """:meth:`node_lines` for a node whose existing links are ``present`` (pure)."""
        mtu, prefix = self.pod_mtu, node.pod_cidr.prefixlen
        lines = [] if BRIDGE in present else [f"link add {BRIDGE} mtu {mtu} type bridge"]
        lines += [f"link set {BRIDGE} mtu {mtu} up",
                  f"addr replace {node.gateway}/{prefix} dev {BRIDGE}"]
        if not self.vxlan:
            return lines + [f"route replace {o.pod_cidr} via {o.underlay_ip} dev eth0"
                            for o in self.others(node)]
        dev = VXLAN_DEVICE
        if dev not in present:
            lines.append(f"link add {dev} mtu {mtu} address {self.mac(node)} type vxlan "
                         f"id {VXLAN_VNI} local {node.underlay_ip} dev eth0 "
                         f"dstport {VXLAN_PORT} nolearning")
        lines += [f"link set {dev} mtu {mtu} address {self.mac(node)} up",
                  f"addr replace {node.tunnel_ip}/32 dev {dev}"]
        for o in self.others(node):
            lines += [f"route replace {o.pod_cidr} via {o.tunnel_ip} dev {dev} onlink",
                      f"neigh replace {o.tunnel_ip} lladdr {self.mac(o)} dev {dev} nud permanent"]
        return lines

    def fdb_lines(self, node: NodePlan) -> list[str]:
        """``bridge -batch`` lines: where each other node's VTEP MAC lives on the underlay."""
        if not self.vxlan:
            return []
        return [f"fdb replace {self.mac(o)} dev {VXLAN_DEVICE} dst {o.underlay_ip} self permanent"
                for o in self.others(node)]

    def node_finish(self, node: NodePlan) -> None:
        folder = self.agent_dir(node) / "flannel"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "subnet.env").write_text(subnet_env(self.topo, node, self.pod_mtu))
        lines = self.fdb_lines(node)
        if lines:
            run(["bridge", "-n", node.netns, "-batch", "-"], input="\n".join(lines) + "\n")

    # ---- pods --------------------------------------------------------------------------------
    def pod_node_lines(self, pod: PodWiring) -> list[str]:
        return [self.veth_pair_line(pod),
                f"link set {pod.veth} master {BRIDGE} alias {self.topo.tag} up",
                f"link set {pod.veth} type bridge_slave hairpin on"]

    def pod_lines(self, pod: PodWiring) -> list[str]:
        gw = pod.node.gateway
        return [f"addr add {pod.ip}/{pod.node.pod_cidr.prefixlen} dev eth0",
                f"route add {self.topo.pod_cidr} via {gw} dev eth0",
                f"route add default via {gw} dev eth0"]

    # ---- for people --------------------------------------------------------------------------
    def node_annotations(self, node: NodePlan) -> dict[str, str]:
        backend_data = {"VNI": VXLAN_VNI, "VtepMAC": self.mac(node)}
        data = json.dumps(backend_data, separators=(",", ":")) if self.vxlan else "null"
        return {f"{ANNOTATION_PREFIX}backend-data": data,
                f"{ANNOTATION_PREFIX}backend-type": self.backend,
                f"{ANNOTATION_PREFIX}kube-subnet-manager": "true",
                f"{ANNOTATION_PREFIX}public-ip": str(node.underlay_ip)}

    def node_binds(self, node: NodePlan) -> list[tuple[Path, str]]:
        return [(self.agent_dir(node) / "flannel", RUN_FLANNEL)]

    def status(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"bridge": BRIDGE}
        if self.vxlan:
            extra |= {"device": VXLAN_DEVICE, "vni": VXLAN_VNI, "port": VXLAN_PORT}
        else:
            extra |= {"device": "eth0", "routes": "direct, via each node's IP"}
        return super().status() | extra
