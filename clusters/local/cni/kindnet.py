"""kindnet, kind's default CNI: a routed veth per pod, plain routes between nodes.

Pod wiring is point-to-point, like kindnet's ``ptp`` plugin: every pod's node-side veth
carries the node's gateway address as a /32 (so it answers the pod's ARP for the gateway
itself, no proxy ARP needed) and the node routes ``<pod_ip>/32 dev veth... scope host``.
The pod's address has no on-link prefix route: it reaches even its same-node neighbours
through the gateway, so every packet crosses the node's routing table where kube-proxy and
policy rules see it. Between nodes it is plain routing: node A routes node B's /24 via B's
underlay address, so the server sees the client's real pod IP (no NAT, no tunnel).
"""

from __future__ import annotations

from clusters.local.cni.base import CniPlugin, PodWiring
from clusters.local.topology import NodePlan, pod_veth_name


class Kindnet(CniPlugin):
    name = "kindnet"
    enforces_policy = True

    def pod_veth(self, key: str) -> str:
        return pod_veth_name(key)

    def node_lines(self, node: NodePlan) -> list[str]:
        return [f"route replace {other.pod_cidr} via {other.underlay_ip} dev eth0"
                for other in self.topo.nodes if other.name != node.name]

    def pod_node_lines(self, pod: PodWiring) -> list[str]:
        tag, gw = self.topo.tag, pod.node.gateway
        return [self.veth_pair_line(pod),
                f"link set {pod.veth} alias {tag} up",
                f"addr replace {gw}/32 dev {pod.veth}",
                f"route replace {pod.ip}/32 dev {pod.veth} scope host"]

    def pod_lines(self, pod: PodWiring) -> list[str]:
        gw, prefix = pod.node.gateway, pod.node.pod_cidr
        return [f"addr add {pod.ip}/{prefix.prefixlen} dev eth0 noprefixroute",
                f"route add {gw} dev eth0 scope link src {pod.ip}",
                f"route add {prefix} via {gw} dev eth0 src {pod.ip}",
                f"route add default via {gw} dev eth0 src {pod.ip}"]
