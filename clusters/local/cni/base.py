"""What a CNI plugin does on the local engine, as one small interface the datapath calls.

The datapath (:mod:`clusters.local.datapath`) builds what every mode shares: the host's
bridge that plays kind's Docker network, one namespace per node with ``eth0`` on it, one
namespace per pod with ``eth0`` in it, and the host's routes to the cluster's ranges. A
:class:`CniPlugin` decides everything a real CNI decides: how the pod's veth is named and
addressed, what the node needs to reach its own pods (routes, a bridge), how it reaches other
nodes' pods (routes, a VXLAN overlay, BGP), the MTU pods get, and which agents run in the
nodes (BIRD for Calico) and when they are ready.

Plugins produce ``ip -batch`` lines where they can, so that building a node or a pod stays
one process per namespace; what ``ip`` cannot express (``bridge fdb``, sysctls of a new
link, agent processes) goes through the hooks that run after the lines.

Every hook must be idempotent: a restarted daemon calls them again on a built cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, ClassVar

from clusters.errors import ClusterError
from clusters.local.topology import NodePlan, Topology, run_dir

#: What VXLAN costs every packet: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
VXLAN_OVERHEAD = 50


def overlay_mac(device: str, cluster: str, node: str) -> str:
    """A stable MAC for ``node``'s overlay ``device``: locally administered, unicast.

    Real agents pick a random MAC once and publish it (a Node annotation); deriving it from
    the names keeps it stable across daemon restarts, so every node's neighbour and FDB
    entries for the others follow from the topology alone.
    """
    raw = bytearray(hashlib.sha1(f"{device}/{cluster}/{node}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02  # locally administered (bit 1), unicast (bit 0 clear)
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class PodWiring:
    """What a plugin needs to wire one pod: its key, names and address."""

    key: str  # namespace/name
    netns: str  # the pod's network namespace
    veth: str  # node end of the pod's veth pair (the plugin's name for it)
    ip: IPv4Address
    node: NodePlan


class CniPlugin:
    """Base class: the parts every mode shares. Subclasses set :attr:`name` and override."""

    name: ClassVar[str] = ""
    #: Whether this CNI's agent enforces NetworkPolicy (the policy agent runs only then).
    enforces_policy: ClassVar[bool] = False
    #: The backends this plugin builds, the default first; () when it has no choice.
    backends: ClassVar[tuple[str, ...]] = ()

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.backend = topo.backend or (self.backends[0] if self.backends else "")
        if self.backend and self.backend not in self.backends:
            choice = ", ".join(self.backends) or "none"
            raise ClusterError(f"{self.name} has no backend {self.backend!r} on the local "
                               f"engine (choose one of: {choice})")

    # ---- names and sizes ---------------------------------------------------------------------
    @property
    def vxlan(self) -> bool:
        """Whether pod traffic between nodes is VXLAN-encapsulated."""
        return self.backend == "vxlan"

    @property
    def pod_mtu(self) -> int:
        """MTU of every pod's eth0: the underlay's, minus VXLAN's headers with an overlay."""
        return self.topo.mtu - VXLAN_OVERHEAD if self.vxlan else self.topo.mtu

    def others(self, node: NodePlan) -> list[NodePlan]:
        """Every node but ``node``: the peers it needs routes (or sessions) to."""
        return [n for n in self.topo.nodes if n.name != node.name]

    def pod_veth(self, key: str) -> str:
        """Name of the node end of pod ``key``'s veth (at most 15 characters)."""
        raise NotImplementedError

    def agent_dir(self, node: NodePlan) -> Path:
        """Where this node's agents keep config, sockets and pid files (removed with the
        cluster's run folder; process command lines naming it mark them as ours)."""
        return run_dir(self.topo.cluster) / "nodes" / node.name

    # ---- building nodes ------------------------------------------------------------------------
    def node_sysctls(self, node: NodePlan) -> Mapping[str, str]:
        """Extra sysctls (``net/...`` paths) of the node, written before its links exist."""
        return {}

    def node_lines(self, node: NodePlan) -> list[str]:
        """``ip -batch`` lines in the node, run after eth0 has its underlay address: the
        devices and routes that carry pod traffic to this node's and other nodes' pods."""
        raise NotImplementedError

    def node_finish(self, node: NodePlan) -> None:
        """What ``ip`` cannot do, after :meth:`node_lines` (FDB entries, files)."""

    def start(self) -> None:
        """Start the agents of every node (after all nodes are built). Restarts any that a
        previous daemon left running, so the config always matches the topology."""

    def wait_ready(self, timeout: float) -> None:
        """Block until the datapath carries traffic between every pair of nodes (sessions
        up, routes installed); raise ``WaitTimeout`` naming what was last seen."""

    def stop(self) -> None:
        """Stop the agents (the devices and routes stay with the namespaces)."""

    # ---- wiring pods --------------------------------------------------------------------------
    def pod_node_lines(self, pod: PodWiring) -> list[str]:
        """``ip -batch`` lines in the node: create the veth pair (its peer named eth0 in
        ``pod.netns``) and make the node reach the pod."""
        raise NotImplementedError

    def pod_lines(self, pod: PodWiring) -> list[str]:
        """``ip -batch`` lines in the pod (lo is up, eth0 exists): address and routes."""
        raise NotImplementedError

    def pod_node_sysctls(self, pod: PodWiring) -> Mapping[str, str]:
        """Sysctls of the pod's node-side veth, written after the lines (proxy ARP...)."""
        return {}

    def veth_pair_line(self, pod: PodWiring, *, mac: str = "") -> str:
        """The shared ``link add`` line: veth ``pod.veth`` in the node, ``eth0`` in the pod."""
        address = f" address {mac}" if mac else ""
        mtu = self.pod_mtu
        return (f"link add {pod.veth} mtu {mtu}{address} type veth "
                f"peer name eth0 netns {pod.netns} mtu {mtu}")

    # ---- for people ---------------------------------------------------------------------------
    def node_annotations(self, node: NodePlan) -> dict[str, str]:
        """Annotations the CNI's agent puts on the Node object."""
        return {}

    def node_binds(self, node: NodePlan) -> list[tuple[Path, str]]:
        """Folders shown at a well-known path when a learner runs a tool in the node
        (``/run/bird`` for ``birdc``, ``/run/flannel`` for ``subnet.env``): (host folder,
        path in the node's view). ``lab node-shell`` bind-mounts them in a private mount
        namespace, so the host's own paths are never touched."""
        return []

    def status(self) -> dict[str, Any]:
        """What ``lab cluster status`` shows about the CNI (JSON-friendly)."""
        return {"cni": self.name, "backend": self.backend, "pod_mtu": self.pod_mtu,
                "enforces_policy": self.enforces_policy}
