"""Lab 02, task 2: the ``web`` Service answers inside the cluster, and as a NodePort on
port 30080 of every node's address, from the host outside the cluster.
"""

from __future__ import annotations

from typing import Any

from services_support import CLIENT, describe_ports, node_addresses, service

from grader.expectations import CheckFailed, Finding, check, expect_reach, pick_hint

NODE_PORT = 30080
PAGE = "Welcome to nginx"

#: Why each outcome of a request to a NodePort happens (used in cluster and from the host).
WEB_HINTS = {
    # The node's kernel answered with a reset: no rule took the packet to a pod, or the
    # rule sent it to a pod port where nginx does not listen.
    "REFUSED": "The connection was refused. Either no rule picked the packet up (is the "
    "Service of type NodePort with nodePort 30080?), or the rule sent it to a port of an "
    "nginx pod where nothing listens: nginx listens on 80, and the Service's targetPort "
    "says where packets go. `lab get endpointslices -n lab02 -l "
    "kubernetes.io/service-name=web -o yaml` shows the port the endpoints use.",
    "TIMEOUT": "No answer: the packet was translated to a pod but its reply never came "
    "back, or nothing forwarded it. Look at the nat table of that node: "
    "`lab node-shell <node> -- iptables-save -t nat | grep -e NODEPORTS -e web`.",
    "DNS_ERROR": "The name web did not resolve from the client: the Service must be called "
    "web, in namespace lab02.",
    "BODY": "Something answered, but not nginx: the Service selects other pods than the "
    "web pods (app=web).",
    "default": "nginx's welcome page must come back from port 30080 of every node.",
}


def test_web_is_nodeport(cluster: Any) -> None:
    """Service web is a NodePort Service on node port 30080"""
    spec = service(cluster, "web").get("spec") or {}
    ports = spec.get("ports") or []
    check(
        spec.get("type") == "NodePort"
        and any(p.get("port") == 80 and p.get("nodePort") == NODE_PORT for p in ports),
        expected=f"type NodePort, port 80 with nodePort {NODE_PORT}",
        observed=f"type {spec.get('type', 'ClusterIP')}, ports: {describe_ports(ports)}",
        hint="A ClusterIP exists only inside the cluster. type: NodePort keeps the ClusterIP "
        "and opens one more port, the same on every node (30000-32767); nodePort chooses "
        "it instead of letting the cluster pick one.",
    )


def test_web_answers_in_cluster(probe: Any) -> None:
    """the client gets nginx's page from http://web/"""
    expect_reach(probe, src=CLIENT, dst="http://web/", protocol="http", body=PAGE,
                 hints=WEB_HINTS)


def test_web_reachable_from_host_on_every_node(probe: Any, cluster: Any) -> None:
    """from the host, port 30080 of every node's IP answers with nginx's page"""
    nodes = node_addresses(cluster)
    check(bool(nodes), expected="nodes with an InternalIP address", observed="none found")
    results = [(name, ip, probe.http("host", f"http://{ip}:{NODE_PORT}/", body=PAGE))
               for name, ip in nodes]
    failed = [(name, ip, settled) for name, ip, settled in results if not settled.matched]
    if not failed:
        return
    hint, generic = pick_hint(WEB_HINTS, failed[0][2].hint_key or "default")
    if len(failed) < len(results):
        hint = ("Some nodes answer and others do not. A NodePort opens the port on every "
                "node, whether or not a web pod runs there: the node forwards the packet "
                "to an endpoint on another node. Does the Service set "
                "externalTrafficPolicy: Local? That answers only on nodes with a local "
                "endpoint.")
        generic = False
    raise CheckFailed(Finding(
        source="host", destination=f"every node IP, port {NODE_PORT}", probe="http /",
        expected=f'CONNECTED, body "{PAGE}" from all {len(results)} nodes',
        observed="; ".join(f"{name} ({ip}): {settled.summary()}"
                           for name, ip, settled in failed),
        hint=hint, hint_is_generic=generic,
        observations=tuple(o for _, _, s in failed for o in s.observations),
    ))
