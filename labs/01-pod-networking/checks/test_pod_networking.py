"""Lab 01 checks: two pods on two different worker nodes talk by pod IP, without NAT.

Each test is one check; the first line of its docstring is the name learners see. The hint
texts say *why* an outcome happens in networking terms, so a failure teaches something.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from typing import Any

import pytest

from clusters.engine import find
from grader.expectations import check, expect_reach

NS = "lab01"
HOSTNAME_KEY = "kubernetes.io/hostname"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


# --------------------------------------------------------------------------- task 1: placement


def test_server_running(pods: Any) -> None:
    """server pod runs in lab01 with label app=server"""
    server = pods.get(NS, "server")
    check(
        server.labels.get("app") == "server",
        expected="label app=server",
        observed=f"labels {dict(server.labels) or 'none'}",
        hint="Selectors (anti-affinity, later Services and NetworkPolicies) find pods by "
        "label, never by name: give the server the label app=server.",
    )
    check(
        server.ready,
        expected="server Running and Ready",
        observed=f"phase {server.phase}, ready={server.ready}",
        hint="A pod gets its IP only once it is scheduled and its sandbox is created. "
        "A Pending pod usually could not be placed: run `lab get pods -n lab01 -o wide` "
        "and look at its node column.",
    )


def test_client_running(pods: Any) -> None:
    """client pod runs in lab01 with label app=client"""
    client = pods.get(NS, "client")
    check(
        client.labels.get("app") == "client",
        expected="label app=client",
        observed=f"labels {dict(client.labels) or 'none'}",
        hint="Give the client the label app=client, so rules can tell it from the server.",
    )
    check(
        client.ready,
        expected="client Running and Ready",
        observed=f"phase {client.phase}, ready={client.ready}",
        hint="A client that stays Pending could not be scheduled: a required (anti-)affinity "
        "rule that no node satisfies keeps it off every node. With two workers, 'not next "
        "to the server' leaves exactly one worker for it.",
    )


def test_pods_on_different_nodes(pods: Any) -> None:
    """client and server run on different nodes"""
    server = pods.get(NS, "server")
    client = pods.get(NS, "client")
    check(
        server.node is not None and client.node is not None and server.node != client.node,
        expected="two different nodes",
        observed=f"server on {server.node}, client on {client.node}",
        hint="On one node a packet between two pods goes veth -> node -> veth and never "
        "touches the network between nodes, so it proves nothing about the CNI's "
        "cross-node routes. podAffinity pulls pods together; podAntiAffinity on "
        "kubernetes.io/hostname keeps them apart.",
    )


def test_pods_avoid_control_plane(pods: Any, cluster: Any) -> None:
    """neither pod runs on the control-plane node"""
    control_plane = _control_plane_nodes(cluster.get("Node"))
    server = pods.get(NS, "server")
    client = pods.get(NS, "client")
    offenders = [f"{p.name} on {p.node}" for p in (server, client) if p.node in control_plane]
    check(
        not offenders,
        expected=f"both pods on worker nodes (control plane: {', '.join(sorted(control_plane))})",
        observed=", ".join(offenders) or "both on workers",
        hint="The control-plane node carries the taint node-role.kubernetes.io/control-plane"
        ":NoSchedule so that workloads stay off it. A toleration for it, a nodeName or a "
        "nodeSelector brings a pod there: remove them and let the scheduler choose a worker.",
    )


def test_placement_is_declared(cluster: Any, request: pytest.FixtureRequest) -> None:
    """the two pods are kept apart by a rule, not by node names"""
    written = _written_pods(request)
    server_obj = written.get("server") or _pod_object(cluster, "server")
    client_obj = written.get("client") or _pod_object(cluster, "client")
    pinned = [pin for pod in written.values() for pin in _node_name_pins(pod)]
    pinned += _hostname_pins(server_obj) + _hostname_pins(client_obj)
    check(
        not pinned,
        expected="no node names in the manifests",
        observed="; ".join(pinned),
        hint="A node name ties the pod to one machine: when that node is gone or renamed "
        "(another cluster, another engine) the pod cannot run. Describe the relation "
        "between the pods instead and let the scheduler pick the nodes.",
    )
    rules = _separation_rules(server_obj, client_obj) + _separation_rules(client_obj, server_obj)
    check(
        bool(rules),
        expected="a required podAntiAffinity, or a topologySpreadConstraint with maxSkew 1 "
        "and DoNotSchedule, on kubernetes.io/hostname, whose selector matches the other pod",
        observed=_describe_affinity(client_obj) + "; " + _describe_affinity(server_obj),
        hint="Without a rule the pods land on different nodes only by luck. podAffinity "
        "means 'same node as', which is the opposite of what this lab needs; "
        "podAntiAffinity with requiredDuringSchedulingIgnoredDuringExecution, topologyKey "
        "kubernetes.io/hostname and a labelSelector for app=server (on the client) "
        "makes 'never on the same node' a hard rule.",
    )


# --------------------------------------------------------------------------- task 2: reach


def test_client_reaches_server(probe: Any, pods: Any) -> None:
    """client reaches the server's pod IP on TCP 8080 across nodes"""
    server = pods.get(NS, "server")
    expect_reach(
        probe,
        src=f"{NS}/client",
        dst=server,
        port=8080,
        protocol="http",
        path="/hostname",
        expect="CONNECTED",
        body="server",
        hints={
            # The SYN crossed both nodes and the server's node answered with a RST:
            # routing works, but no socket listens on that port inside the pod.
            "REFUSED": "The packet reached the server pod (a RST came back), but nothing "
            "listens on 8080 there. containerPort only documents a port; the process opens "
            "it: check the --http-port flag in the server's args.",
            # Nothing came back: the SYN or its answer was lost between the nodes.
            "TIMEOUT": "No answer at all: the packet or its reply was lost on the way. "
            "Compare the routes with `lab node-shell <node> -- ip route`: each node needs a "
            "route to the other node's pod /24 via that node's IP.",
            "BODY": "Something answered on that address, but not the pod named server: "
            "check that you probe the server's current IP (pods get a new one when they are "
            "re-created) and that the pod is named server.",
            "UNREACHABLE": "The client's node has no route to the server's pod IP. Look at "
            "`lab node-shell <client node> -- ip route` for the server node's /24.",
            "default": "The client must get the answer 'server' from "
            "http://<server pod IP>:8080/hostname. Try it yourself: "
            "`lab exec -n lab01 client -- curl -s http://<server IP>:8080/hostname`.",
        },
    )


# --------------------------------------------------------------------------- task 3: no NAT


def test_server_sees_client_pod_ip(probe: Any, pods: Any) -> None:
    """the server sees the client's own pod IP (no NAT between pods)"""
    server = pods.get(NS, "server")
    client = pods.get(NS, "client")
    settled = expect_reach(
        probe,
        src=f"{NS}/client",
        dst=server,
        port=8080,
        protocol="http",
        path="/clientip",
        expect="CONNECTED",
        hints={
            "REFUSED": "The server must answer HTTP on 8080 before it can say who called: "
            "finish the previous task first.",
            "TIMEOUT": "No answer from the server on 8080: finish the previous task first.",
            "default": "The server's /clientip page says which address the request came "
            "from; it needs an HTTP server on 8080.",
        },
    )
    seen = _address_of(settled.body)
    check(
        seen == client.ip,
        expected=f"the server sees {client.ip} (the client's pod IP)",
        observed=f"the server sees {seen or 'nothing'}",
        hint="In the Kubernetes network model pods talk to pods without NAT: the source "
        "address that arrives is the sender's own pod IP. Another address means something "
        "rewrote it on the way, such as a masquerade rule that should only apply to "
        "traffic leaving the pod network.",
    )


# --------------------------------------------------------------------------- task 4: UDP


def test_server_answers_udp(probe: Any, pods: Any) -> None:
    """the server answers a UDP datagram on 8081 with its name"""
    server = pods.get(NS, "server")
    expect_reach(
        probe,
        src=f"{NS}/client",
        dst=server,
        port=8081,
        protocol="udp",
        expect="CONNECTED",
        body="server",
        hints={
            # A datagram to a port without a socket makes the kernel answer with ICMP
            # port-unreachable: the route is fine, the listener is missing.
            "REFUSED": "The datagram reached the server pod, whose kernel answered 'port "
            "unreachable' (ICMP): no UDP socket is open on 8081. Check --udp-port.",
            # UDP has no handshake: silence can mean the datagram or the reply was lost,
            # or that the application read it and chose not to answer.
            "TIMEOUT": "No reply datagram came back. UDP has no handshake, so silence is all "
            "you get when something drops the packet; check that the server listens on "
            "UDP 8081.",
            "BODY": "A reply came, but not 'server': another process answers on that port, "
            "or the pod is not named server.",
            "default": "Send the datagram 'hostname' to <server IP>:8081; netexec answers "
            "with its pod name.",
        },
    )


# --------------------------------------------------------------------------- helpers


def _control_plane_nodes(nodes: Sequence[Mapping[str, Any]]) -> set[str]:
    names = set()
    for node in nodes:
        meta = node.get("metadata", {})
        if CONTROL_PLANE_LABEL in (meta.get("labels") or {}):
            names.add(str(meta.get("name")))
    return names


def _pod_object(cluster: Any, name: str) -> dict[str, Any]:
    found = find(cluster, "Pod", NS, name)
    check(
        bool(found),
        expected=f"pod {NS}/{name}",
        observed="no such pod",
        hint=f"Write the {name} pod in your workspace's pods.yaml (namespace lab01).",
    )
    return dict(found[0])


def _written_pods(request: pytest.FixtureRequest) -> dict[str, Mapping[str, Any]]:
    """The server and client pods as the learner wrote them, when the run has a workspace.

    Only the written manifest can show a hard-coded ``nodeName``: in the cluster every
    scheduled pod has one.
    """
    if request.getfixturevalue("lab_options").workspace is None:
        return {}
    workspace = request.getfixturevalue("workspace")
    found = {}
    for name in ("server", "client"):
        docs = workspace.find("Pod", name, NS)
        if docs:
            found[name] = docs[0]
    return found


def _node_name_pins(pod: Mapping[str, Any]) -> list[str]:
    name = pod.get("metadata", {}).get("name", "?")
    node = (pod.get("spec") or {}).get("nodeName")
    return [f"{name}: nodeName {node}"] if node else []


def _hostname_pins(pod: Mapping[str, Any]) -> list[str]:
    """Places where a manifest names a node: nodeSelector or nodeAffinity on the hostname."""
    name = pod.get("metadata", {}).get("name", "?")
    spec = pod.get("spec") or {}
    pins = []
    if HOSTNAME_KEY in (spec.get("nodeSelector") or {}):
        pins.append(f"{name}: nodeSelector {HOSTNAME_KEY}")
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in ("matchExpressions", "matchFields"):
            for expr in term.get(field) or []:
                if expr.get("key") in (HOSTNAME_KEY, "metadata.name"):
                    pins.append(f"{name}: nodeAffinity on {expr.get('key')}")
    return pins


def _separation_rules(owner: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """Rules in ``owner`` that forbid sharing a node with ``other``."""
    spec = owner.get("spec") or {}
    other_labels = other.get("metadata", {}).get("labels") or {}
    own_labels = owner.get("metadata", {}).get("labels") or {}
    rules = []
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        if term.get("topologyKey") == HOSTNAME_KEY and _selects(
            term.get("labelSelector"), other_labels
        ):
            rules.append("podAntiAffinity")
    for tsc in spec.get("topologySpreadConstraints") or []:
        selector = tsc.get("labelSelector")
        if (
            tsc.get("topologyKey") == HOSTNAME_KEY
            and int(tsc.get("maxSkew", 0)) == 1
            and tsc.get("whenUnsatisfiable") == "DoNotSchedule"
            and _selects(selector, other_labels)
            and _selects(selector, own_labels)
        ):
            rules.append("topologySpreadConstraints")
    return rules


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Label-selector semantics (matchLabels AND matchExpressions); None selects nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _describe_affinity(pod: Mapping[str, Any]) -> str:
    name = pod.get("metadata", {}).get("name", "?")
    spec = pod.get("spec") or {}
    parts = sorted((spec.get("affinity") or {}).keys())
    if spec.get("topologySpreadConstraints"):
        parts.append("topologySpreadConstraints")
    return f"{name}: {', '.join(parts) if parts else 'no placement rules'}"


def _address_of(body: str | None) -> str | None:
    """The IP in agnhost's ``/clientip`` answer, which has the form ``IP:port``."""
    if not body:
        return None
    host = body.strip().rsplit(":", 1)[0].strip("[]")
    try:
        return str(ip_address(host))
    except ValueError:
        return body.strip()[:60]
