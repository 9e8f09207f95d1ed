"""Expected reachability under NetworkPolicy, with the reasons, the way cyclonus computes it.

:class:`PolicySet` holds every policy, pod and namespace of a cluster and answers the one
question that matters for a matrix cell: may ``src`` open a connection to ``dst`` on
``port``/``protocol``? Traffic passes when *both* sides agree:

* **egress**, judged on the source pod: allowed when no policy with type Egress selects
  it, or when some egress rule of such a policy admits the destination and port;
* **ingress**, judged on the destination pod (after Service DNAT, so ``dst`` is a pod):
  allowed when no policy with type Ingress selects it, or some ingress rule admits the
  source and port.

A side that is not a pod, a hostNetwork pod, and traffic between a pod and its own node
are not judged (:attr:`DirectionVerdict.exempt`). Named ports are resolved against the
destination pod in both directions. Every verdict keeps the rules that allowed it
(:class:`RuleRef`) or, when isolated and nothing allows it, one line per rule saying why
it does not match, so a wrong cell can be explained without re-deriving anything.

The same set also gives enforcers what they program: :meth:`PolicySet.peer_networks` and
:meth:`PolicySet.port_ranges`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, collapse_addresses
from typing import Any

from clusters.labels import matches_selector
from clusters.netpol import explain
from clusters.netpol.model import (
    Endpoint,
    HostEndpoint,
    NamespaceInfo,
    Peer,
    PodInfo,
    Policy,
    PortRule,
    Rule,
)

__all__ = ["DirectionVerdict", "PolicySet", "PortRange", "RuleRef", "Verdict"]

_ANY_FIRST, _ANY_LAST = 1, 65535


@dataclass(frozen=True)
class PortRange:
    """A protocol and an inclusive port range (1-65535 means every port)."""

    protocol: str
    first: int
    last: int

    @property
    def any_port(self) -> bool:
        return self.first <= _ANY_FIRST and self.last >= _ANY_LAST

    def contains(self, port: int, protocol: str) -> bool:
        return protocol == self.protocol and self.first <= port <= self.last

    def describe(self) -> str:
        if self.any_port:
            return f"{self.protocol} (any port)"
        if self.first == self.last:
            return f"{self.protocol}/{self.first}"
        return f"{self.protocol}/{self.first}-{self.last}"


@dataclass(frozen=True)
class RuleRef:
    """Where a rule lives: policy, direction, index and the file it came from."""

    policy: str
    direction: str
    index: int
    source: str = ""

    def describe(self) -> str:
        """``lab04/allow-api ingress[0] (policies.yaml)``."""
        where = f" ({self.source})" if self.source else ""
        return f"{self.policy} {self.direction}[{self.index}]{where}"


@dataclass(frozen=True)
class DirectionVerdict:
    """The judgement of one side (egress at the source, ingress at the destination)."""

    direction: str
    pod: str
    isolated_by: tuple[str, ...]
    allowed_by: tuple[RuleRef, ...]
    exempt: str = ""
    denied_because: tuple[str, ...] = ()
    peer: str = ""                        # the other end: source for ingress, dest for egress
    traffic: str = ""                     # "TCP/5432"
    isolated_files: tuple[str, ...] = ()  # parallel to isolated_by ("" when unknown)
    endpoint: str = ""                    # label of the judged side, pod or not

    @property
    def allowed(self) -> bool:
        return bool(self.exempt) or not self.isolated_by or bool(self.allowed_by)

    def explain(self) -> str:
        """One sentence when allowed; for a denial, a header and one line per rule."""
        if self.exempt:
            return explain.exempt_sentence(self.direction, self.endpoint or self.pod, self.exempt,
                                           self.peer)
        if not self.isolated_by:
            return explain.not_isolated_sentence(self.direction, self.pod)
        if self.allowed_by:
            return "allowed by " + ", ".join(ref.describe() for ref in self.allowed_by)
        files = self.isolated_files or ("",) * len(self.isolated_by)
        policies = ", ".join(f"{ref} ({src})" if src else ref
                             for ref, src in zip(self.isolated_by, files, strict=True))
        if self.direction == "ingress":
            none = f"no rule admits {self.peer} on {self.traffic}"
        else:
            none = f"no rule lets it reach {self.peer} on {self.traffic}"
        head = f"{self.pod} is isolated for {self.direction} by {policies}; {none}"
        if not self.denied_because:
            return head
        return head + ":\n" + "\n".join(f"   {line}" for line in self.denied_because)


@dataclass(frozen=True)
class Verdict:
    """Both sides of one connection attempt; allowed only when both allow it."""

    source: str
    dest: str
    port: int
    protocol: str
    egress: DirectionVerdict
    ingress: DirectionVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    def deciding(self) -> tuple[DirectionVerdict, DirectionVerdict]:
        """Both sides, the one that decided first: a denying side when blocked, else the
        side whose rules allowed it (more telling than "not isolated")."""
        def weight(side: DirectionVerdict) -> int:
            if not side.allowed:
                return 0
            return 1 if side.allowed_by else 2 if not side.exempt else 3
        first, second = sorted((self.egress, self.ingress), key=weight)
        return first, second

    def explain(self) -> str:
        first, second = self.deciding()
        state = "allowed" if self.allowed else "blocked"
        head = f"{self.source} -> {self.dest} {self.protocol}/{self.port} is {state}:"
        return "\n".join([head, *(f"  {side.direction}: {side.explain()}".replace(
            "\n", "\n  ") for side in (first, second))])


class PolicySet:
    """Every policy, pod and namespace of a cluster, and the verdicts they imply."""

    def __init__(self, policies: Iterable[Policy], pods: Iterable[PodInfo],
                 namespaces: Iterable[NamespaceInfo]) -> None:
        self.policies: tuple[Policy, ...] = tuple(sorted(policies, key=lambda p: p.ref))
        self.pods: tuple[PodInfo, ...] = tuple(sorted(pods, key=lambda p: p.label))
        self.namespaces: dict[str, NamespaceInfo] = {ns.name: ns for ns in namespaces}
        self._by_label = {pod.label: pod for pod in self.pods}
        self._by_namespace: dict[str, list[Policy]] = {}
        for policy in self.policies:
            self._by_namespace.setdefault(policy.namespace, []).append(policy)

    @classmethod
    def from_objects(cls, policies: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                     namespaces: Iterable[Mapping[str, Any]],
                     sources: Mapping[str, str] | None = None) -> PolicySet:
        """Build from manifests; ``sources`` maps ``ns/name`` to the file of each policy.
        Raises ``ValueError`` naming the object and field on a malformed manifest."""
        sources = sources or {}
        parsed = []
        for obj in policies:
            meta = obj.get("metadata") or {}
            ref = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
            parsed.append(Policy.from_object(obj, source=sources.get(ref, "")))
        return cls(parsed, [PodInfo.from_object(p) for p in pods],
                   [NamespaceInfo.from_object(n) for n in namespaces])

    # ------------------------------------------------------------ lookups

    def pod(self, label: str) -> PodInfo | None:
        """The pod called ``ns/name``, if any."""
        return self._by_label.get(label)

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """A namespace's labels; one not in the set has only its automatic name label."""
        info = self.namespaces.get(name)
        return info.labels if info else {"kubernetes.io/metadata.name": name}

    def selecting(self, pod: PodInfo, direction: str) -> list[Policy]:
        """The policies that isolate ``pod`` for ``direction`` ("ingress"/"egress")."""
        if pod.host_network:
            return []
        return [p for p in self._by_namespace.get(pod.namespace, ())
                if p.isolates(direction) and matches_selector(pod.labels, p.pod_selector)]

    # ------------------------------------------------------------ matching

    def peer_matches(self, policy: Policy, peer: Peer, other: Endpoint) -> bool:
        """Does one ``from``/``to`` entry of ``policy`` admit ``other``?

        An ipBlock matches any address in it (pod IPs included); selectors match only
        pods that are not hostNetwork. A podSelector alone looks in the policy's
        namespace; a namespaceSelector (``{}`` = all) widens it; both together are ANDed.
        """
        if peer.ip_block is not None:
            return bool(other.ip) and peer.ip_block.contains(other.ip)
        if not isinstance(other, PodInfo) or other.host_network:
            return False
        if peer.namespace_selector is None:
            if other.namespace != policy.namespace:
                return False
        elif not matches_selector(self.namespace_labels(other.namespace), peer.namespace_selector):
            return False
        return peer.pod_selector is None or matches_selector(other.labels, peer.pod_selector)

    def resolve_port(self, port: PortRule, dest: PodInfo | None) -> list[PortRange]:
        """The ranges one ``ports`` entry stands for; a name is looked up in ``dest``."""
        if port.port is None:
            return [PortRange(port.protocol, _ANY_FIRST, _ANY_LAST)]
        if isinstance(port.port, int):
            last = port.end_port if port.end_port is not None else port.port
            return [PortRange(port.protocol, port.port, last)]
        if dest is None or dest.host_network:
            return []
        return [PortRange(port.protocol, n, n) for n in dest.named_ports(port.port, port.protocol)]

    def port_ranges(self, rule: Rule, dest: PodInfo | None) -> list[PortRange] | None:
        """What a rule opens towards ``dest``: None = every port and protocol. Named ports
        that ``dest`` does not declare (or any name when ``dest`` is None) drop out."""
        if not rule.ports:
            return None
        ranges: list[PortRange] = []
        for port in rule.ports:
            ranges.extend(r for r in self.resolve_port(port, dest) if r not in ranges)
        return ranges

    def rule_allows(self, policy: Policy, rule: Rule, other: Endpoint, dest: Endpoint,
                    port: int, protocol: str) -> bool:
        """Does ``rule`` admit ``other`` (the peer) on ``port``/``protocol`` of ``dest``?"""
        if rule.peers and not any(self.peer_matches(policy, p, other) for p in rule.peers):
            return False
        ranges = self.port_ranges(rule, dest if isinstance(dest, PodInfo) else None)
        return ranges is None or any(r.contains(port, protocol) for r in ranges)

    # ------------------------------------------------------------ verdicts

    def verdict(self, src: Endpoint, dst: Endpoint, port: int, protocol: str) -> Verdict:
        """Is a connection from ``src`` to ``dst`` (a pod after DNAT, or not a pod) on
        ``port``/``protocol`` allowed, and by what?"""
        protocol = protocol.upper()
        return Verdict(source=src.label, dest=dst.label, port=port, protocol=protocol,
                       egress=self._judge("egress", src, dst, dst, port, protocol),
                       ingress=self._judge("ingress", dst, src, dst, port, protocol))

    def _judge(self, direction: str, judged: Endpoint, other: Endpoint, dest: Endpoint,
               port: int, protocol: str) -> DirectionVerdict:
        """Judge one side: ``judged`` is the pod whose policies apply, ``other`` the far end."""
        def exempt(pod: str, why: str) -> DirectionVerdict:
            return DirectionVerdict(direction=direction, pod=pod, isolated_by=(), allowed_by=(),
                                    exempt=why, peer=other.label, traffic=f"{protocol}/{port}",
                                    endpoint=judged.label)

        if not isinstance(judged, PodInfo):
            return exempt("", "not a pod")
        if judged.host_network:
            return exempt(judged.label, "hostNetwork pod")
        if _own_node(judged, other):
            return exempt(judged.label, "the pod's own node")
        policies = self.selecting(judged, direction)
        allowed = tuple(
            RuleRef(policy.ref, direction, rule.index, policy.source)
            for policy in policies for rule in policy.rules(direction)
            if self.rule_allows(policy, rule, other, dest, port, protocol))
        denied: tuple[str, ...] = ()
        if policies and not allowed:
            denied = tuple(line for policy in policies
                           for line in self.why_not(policy, direction, other, dest, port, protocol))
        return DirectionVerdict(
            pod=judged.label, isolated_by=tuple(p.ref for p in policies), allowed_by=allowed,
            denied_because=denied, isolated_files=tuple(p.source for p in policies),
            direction=direction, peer=other.label, traffic=f"{protocol}/{port}",
            endpoint=judged.label)

    def why_not(self, policy: Policy, direction: str, other: Endpoint, dest: Endpoint,
                port: int, protocol: str) -> list[str]:
        """One line per rule of ``policy`` in ``direction`` saying why it does not admit
        ``other`` on ``port``/``protocol`` of ``dest`` (rules that do admit it say so)."""
        rules = policy.rules(direction)
        if not rules:
            return [explain.no_rules_sentence(policy, direction)]
        dest_pod = dest if isinstance(dest, PodInfo) else None
        lines = []
        for rule in rules:
            ref = RuleRef(policy.ref, direction, rule.index, policy.source).describe()
            peer_ok = not rule.peers or any(self.peer_matches(policy, p, other)
                                            for p in rule.peers)
            ranges = self.port_ranges(rule, dest_pod)
            port_ok = ranges is None or any(r.contains(port, protocol) for r in ranges)
            reasons = []
            if not peer_ok:
                reasons.append(explain.peer_mismatch(policy, rule.peers, other,
                                                     self.namespace_labels))
            if not port_ok:
                reasons.append(explain.port_mismatch(
                    rule.ports, dest, direction,
                    lambda p: [r.first for r in self.resolve_port(p, dest_pod)]))
            lines.append(f"{ref}: {'; and '.join(reasons) if reasons else 'it matches'}")
        return lines

    # ------------------------------------------------------------ for enforcers

    def peer_pods(self, policy: Policy, rule: Rule) -> list[PodInfo]:
        """Pods (with an IP, not hostNetwork) that the rule's peers admit, including pods
        whose IP is inside an ipBlock; every such pod when the rule has no peers."""
        return [pod for pod in self.pods if pod.ip and not pod.host_network and (
            not rule.peers or any(self.peer_matches(policy, p, pod) for p in rule.peers))]

    def peer_networks(self, policy: Policy, rule: Rule) -> list[IPv4Network] | None:
        """The rule's peers as collapsed networks (pod IPs as /32 plus ipBlocks minus their
        excepts); None when the rule has no peers (every address)."""
        if not rule.peers:
            return None
        nets: list[IPv4Network] = []
        for peer in rule.peers:
            if peer.ip_block is not None:
                nets.extend(_subtract(peer.ip_block.cidr, peer.ip_block.excepts))
            else:
                nets.extend(IPv4Network(f"{pod.ip}/32") for pod in self.pods
                            if pod.ip and not pod.host_network
                            and self.peer_matches(policy, peer, pod))
        return list(collapse_addresses(nets))


def _own_node(pod: PodInfo, other: Endpoint) -> bool:
    """Is ``other`` the node ``pod`` runs on (its address, or a hostNetwork pod there)?"""
    if not pod.node:
        return False
    if isinstance(other, HostEndpoint):
        return other.node == pod.node
    return other.host_network and other.node == pod.node


def _subtract(cidr: IPv4Network, excepts: Iterable[IPv4Network]) -> list[IPv4Network]:
    """``cidr`` minus every except, as a list of networks."""
    parts = [cidr]
    for exc in excepts:
        rest: list[IPv4Network] = []
        for net in parts:
            if not net.overlaps(exc):
                rest.append(net)
            elif not net.subnet_of(exc):
                rest.extend(net.address_exclude(exc))
        parts = rest
    return parts
