"""The words of the policy engine: why a rule does or does not admit some traffic.

A learner reads these lines when a cell of a matrix is wrong, so each one names the thing
to change: the selector that did not match and the labels the peer really has, or the
ports a rule opens. The engine decides; this module only phrases (and re-checks a peer
piece by piece to say *which* half of an AND failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address

from clusters.labels import format_labels, matches_selector
from clusters.netpol.model import Endpoint, HostEndpoint, Peer, PodInfo, Policy, PortRule

__all__ = [
    "exempt_sentence",
    "no_rules_sentence",
    "not_isolated_sentence",
    "peer_mismatch",
    "port_mismatch",
]

NamespaceLabels = Callable[[str], Mapping[str, str]]


def exempt_sentence(direction: str, pod: str, reason: str, peer: str) -> str:
    """Say why a direction was not judged at all (``DirectionVerdict.exempt``); ``pod`` is
    the judged side's label (pod or not), ``peer`` the other end."""
    if reason == "the pod's own node":
        if direction == "ingress":
            return (f"{pod} accepts traffic from its own node ({peer}) whatever the policies say: "
                    "NetworkPolicy never blocks a pod's own node")
        return (f"{pod} may always reach its own node ({peer}): NetworkPolicy never blocks a "
                "pod's own node")
    if reason == "hostNetwork pod":
        return (f"{pod} is a hostNetwork pod: it shares its node's network, which NetworkPolicy "
                f"does not isolate, so its {direction} is not judged")
    side = "into" if direction == "ingress" else "out of"
    return (f"{pod or 'the other end'} is not a pod: NetworkPolicy does not judge traffic "
            f"{side} it")


def not_isolated_sentence(direction: str, pod: str) -> str:
    return (f"{pod} is not isolated for {direction}: no NetworkPolicy selects it "
            f"(with policyTypes {direction.capitalize()}), so all {direction} is allowed")


def no_rules_sentence(policy: Policy, direction: str) -> str:
    return (f"{policy.describe_ref()} has no {direction} rules: it isolates the pod and "
            "allows nothing by itself")


def _join(reasons: Sequence[str]) -> str:
    return reasons[0] if len(reasons) == 1 else ", ".join(reasons[:-1]) + " and " + reasons[-1]


def _peer_reason(policy: Policy, peer: Peer, other: Endpoint,
                 ns_labels: NamespaceLabels) -> str:
    """Why ``other`` is not what one peer admits (the peer is known not to match)."""
    if peer.ip_block is not None:
        ip = other.ip
        who = f"{other.label} ({ip})" if isinstance(other, PodInfo) and ip else ip
        if not ip:
            return f"{other.label} has no IP address yet"
        addr = IPv4Address(ip)
        excluded = [e for e in peer.ip_block.excepts if addr in e]
        if excluded:
            return f"{who} falls in the except {excluded[0]}"
        return f"{who} is outside {peer.ip_block.cidr}"
    if isinstance(other, HostEndpoint):
        return (f"{other.label} is not a pod, and pod and namespace selectors only ever "
                "match pods")
    if other.host_network:
        return (f"{other.label} is a hostNetwork pod: its traffic carries its node's address, "
                "so selectors never match it (only an ipBlock can)")
    reasons = []
    if peer.namespace_selector is None:
        if other.namespace != policy.namespace:
            reasons.append(f"{other.label} is in namespace {other.namespace}, not "
                           f"{policy.namespace} (a podSelector alone only looks in the "
                           "policy's own namespace)")
    elif not matches_selector(ns_labels(other.namespace), peer.namespace_selector):
        reasons.append(f"namespace {other.namespace} has labels "
                       f"{format_labels(ns_labels(other.namespace))}")
    if peer.pod_selector is not None and not matches_selector(other.labels, peer.pod_selector):
        reasons.append(f"{other.label} has labels {format_labels(other.labels)}")
    return _join(reasons) if reasons else f"{other.label} does not match"


def peer_mismatch(policy: Policy, peers: Sequence[Peer], other: Endpoint,
                  ns_labels: NamespaceLabels) -> str:
    """``the peer does not match (it admits X, but Y)`` for one or several peers."""
    parts = [f"{p.describe(policy.namespace)}, but {_peer_reason(policy, p, other, ns_labels)}"
             for p in peers]
    if len(parts) == 1:
        return f"the peer does not match (it admits {parts[0]})"
    listed = "; ".join(f"({i}) {part}" for i, part in enumerate(parts, 1))
    return f"none of its {len(parts)} peers matches (it admits {listed})"


def port_mismatch(ports: Sequence[PortRule], dest: Endpoint, direction: str,
                  resolved: Callable[[PortRule], Sequence[int]]) -> str:
    """``the port does not match: it opens only TCP/81, TCP/serve-80-tcp (TCP/80 on x/a)``."""
    shown = []
    for rule in ports:
        text = rule.describe()
        if isinstance(rule.port, str):
            numbers = resolved(rule)
            if not isinstance(dest, PodInfo) or dest.host_network:
                text += f" (a port name only matches pods, and {dest.label} is not one)"
            elif numbers:
                text += f" (= {', '.join(f'{rule.protocol}/{n}' for n in numbers)} on {dest.label})"
            else:
                text += f" ({dest.label} has no {rule.protocol} container port of that name)"
        shown.append(text)
    target = "the pod" if direction == "ingress" else "the destination"
    return f"the port does not match: it opens only {', '.join(shown)} on {target}"
