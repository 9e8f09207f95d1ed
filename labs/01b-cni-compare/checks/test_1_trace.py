"""Lab 01b, task 1: trace a packet from the client to the server, across two nodes.

Each test is one check; the first line of its docstring is the name learners see. The
truth is read from the live cluster, so a wrong answer is shown next to what the cluster
really does, with the command that shows it.
"""

from __future__ import annotations

from typing import Any

import pytest
from trace_support import (
    NONE_WORDS,
    NS,
    answer,
    as_int,
    covering_route,
    next_hop_owner,
    pod_mtu,
    route_get,
    vxlan_port,
)

from grader.expectations import check


@pytest.fixture(scope="module")
def path(cluster: Any, pods: Any) -> dict[str, Any]:
    """The client node's route to the server, as the kernel chooses it."""
    client, server = pods.get(NS, "client"), pods.get(NS, "server")
    check(client.node != server.node and client.node and server.ip,
          expected="client and server running on two different nodes",
          observed=f"client on {client.node}, server on {server.node} ({server.ip})",
          hint="The lab's setup places them apart; `lab check 01b` puts it back.")
    route = route_get(cluster, str(client.node), str(server.ip))
    return {"client": client, "server": server, "route": route,
            "cni": cluster.capabilities().cni,
            "see": f"lab node-shell {client.node} -- ip route get {server.ip}"}


def test_leaves_node_via(path: dict[str, Any], lab_options: Any) -> None:
    """the device the packet leaves the client's node through"""
    given = answer(lab_options, path["cni"], "leaves_node_via")
    dev = str(path["route"].get("dev", ""))
    check(given == dev.lower(), expected=f"leaves_node_via: {dev}",
          observed=f"your answer: {given}",
          hint=f"`{path['see']}` names the device after `dev`. On an overlay it is the "
               "tunnel device; with plain routes it is the node's own eth0.")


def test_next_hop(path: dict[str, Any], lab_options: Any, cluster: Any) -> None:
    """what the next hop towards the server's node is"""
    given = answer(lab_options, path["cni"], "next_hop")
    gateway = str(path["route"].get("gateway", ""))
    kind, owner = next_hop_owner(cluster, gateway) if gateway else ("other", "no gateway")
    check(given == kind, expected=f"next_hop: {kind} ({gateway} is {owner})",
          observed=f"your answer: {given}",
          hint=f"`{path['see']}` shows the next hop after `via`. Compare it with the nodes' "
               "INTERNAL-IP (`lab get nodes -o wide`) and with the addresses of the other "
               "node's devices (`lab node-shell <node> -- ip -br addr`).")


def test_overlay_udp_port(path: dict[str, Any], lab_options: Any, cluster: Any) -> None:
    """the UDP port the packet is carried in between the nodes, or none"""
    given = answer(lab_options, path["cni"], "overlay_udp_port")
    dev = str(path["route"].get("dev", ""))
    port = vxlan_port(cluster, path["client"].node, dev)
    right = given in NONE_WORDS if port is None else as_int(given) == port
    check(right, expected=f"overlay_udp_port: {port if port else 'none'} "
                          f"({dev} is {'a VXLAN device' if port else 'not a tunnel'})",
          observed=f"your answer: {given}",
          hint=f"`lab node-shell {path['client'].node} -- ip -d link show {dev}`: a VXLAN "
               "device says `dstport N`; a plain interface has no port, and the packet "
               "crosses with the pods' own addresses (write none).")


def test_pod_mtu(path: dict[str, Any], lab_options: Any, cluster: Any) -> None:
    """the MTU of the client pod's eth0"""
    given = answer(lab_options, path["cni"], "pod_mtu")
    mtu = pod_mtu(cluster, "client")
    check(as_int(given) == mtu, expected=f"pod_mtu: {mtu}", observed=f"your answer: {given}",
          hint="`lab exec -n lab01b client -- ip link show eth0` prints `mtu N`. An overlay "
               "takes 50 bytes of every packet for its own headers, so its pods get less "
               "than the underlay's 1500.")


def test_route_prefix_length(path: dict[str, Any], lab_options: Any, cluster: Any) -> None:
    """the prefix length of the client node's route to the server's pods"""
    given = answer(lab_options, path["cni"], "route_prefix_length")
    net = covering_route(cluster, path["client"].node, path["server"].ip)
    length = net.prefixlen if net else None
    check(as_int(given) == length, expected=f"route_prefix_length: {length} ({net})",
          observed=f"your answer: {given}",
          hint=f"`lab node-shell {path['client'].node} -- ip route`: find the line whose "
               f"range holds {path['server'].ip}. Flannel routes each node's /24; Calico "
               "announces the /26 blocks its IPAM handed to each node.")
