"""NetworkPolicy as one nftables table per node, rendered as ``nft -f`` input. Pure: text only.

What a node's table looks like (``nft list table inet kube-netlab-policy`` in a node)::

    table inet kube-netlab-policy {
        set peers-lab04/allow-api-ingress0 {        # the peers of one rule, collapsed CIDRs
            type ipv4_addr; flags interval; elements = { 10.244.1.5, 10.244.2.7 } }
        chain forward {                             # before iptables' FORWARD (priority 0)
            type filter hook forward priority filter - 10; policy accept;
            ct state established,related accept     # replies of allowed connections
            ip saddr vmap { <pod ip> : jump egress-<ns>/<pod> }    # pods isolated for egress
            ip daddr vmap { <pod ip> : jump ingress-<ns>/<pod> }   # pods isolated for ingress
        }
        chain ingress-lab04/api-7d9f {              # one per isolated pod on this node
            ip saddr @peers-lab04/allow-api-ingress0 tcp dport 8080 counter accept
                comment "lab04/allow-api ingress[0]"
            counter drop comment "isolated for ingress by lab04/default-deny, lab04/allow-api"
        }
    }

Why it is shaped like that:

* the hook runs *before* the iptables FORWARD chain where kube-proxy accepts marked traffic,
  so a ``drop`` here is final; Service DNAT (nat PREROUTING) has already happened, so the
  destination is the pod, as upstream requires;
* every pod packet crosses its node's forward path (ptp wiring), so egress is judged at the
  source pod's node and ingress at the destination pod's node; a pod's traffic to and from
  its own node uses INPUT/OUTPUT and is never judged;
* egress chains ``return`` (the packet still has to pass the destination's ingress chain);
  ingress chains ``accept``; both end in a counted ``drop``;
* egress to a *named* port depends on the destination pod, so those rules match a set of
  ``address . protocol . port`` triples, one per destination pod that declares the name.

Every allowing rule carries a comment ``<ns>/<policy> <direction>[<index>]`` and the final
drop lists the isolating policies, so the table explains itself. The semantics (who is
selected, which peers and ports a rule admits) all come from :class:`clusters.netpol.PolicySet`;
this module only writes them down. Output is deterministic: same input, same text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from clusters.netpol.engine import PolicySet, PortRange
from clusters.netpol.model import PodInfo, Policy, Rule

__all__ = ["FAMILY", "MAX_COMMENT", "MAX_NAME", "PRIORITY", "TABLE", "NodeScript",
           "clear_script", "nft_comment", "nft_name", "render_node", "render_nodes"]

TABLE = "kube-netlab-policy"
FAMILY = "inet"
#: Before iptables' filter FORWARD (priority 0) where kube-proxy accepts marked packets.
PRIORITY = -10
#: nft refuses chain and set names of 256 bytes and more (the kernel's NFT_NAME_MAXLEN).
MAX_NAME = 255
#: nft refuses comments longer than 128 characters.
MAX_COMMENT = 128

# nft's scanner: an identifier starts with a letter, '_' or '.', then letters, digits, '/',
# '-', '_' and '.'. Kubernetes names (DNS labels and subdomains) fit inside that alphabet.
_NAME_OK = re.compile(r"^[A-Za-z_.][A-Za-z0-9/\-_.]*$")
_NAME_BAD_CHAR = re.compile(r"[^A-Za-z0-9/\-_.]")
_PROTO = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def nft_name(text: str) -> str:
    """``text`` as an nft chain or set name: unchanged when nft accepts it, otherwise with
    bad characters replaced by ``_`` and, when too long or changed, cut and suffixed with a
    hash of the original (so two different inputs never share a name)."""
    if _NAME_OK.match(text) and len(text) <= MAX_NAME:
        return text
    clean = _NAME_BAD_CHAR.sub("_", text)
    if not _NAME_OK.match(clean):
        clean = "_" + clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:MAX_NAME - 9]}-{digest}"


def nft_comment(text: str) -> str:
    """``comment "..."`` for a rule: double quotes removed, cut to nft's 128-character limit."""
    clean = "".join(c if c.isprintable() and c != '"' else "'" if c == '"' else " "
                    for c in text)
    if len(clean.encode()) > MAX_COMMENT:
        clean = clean.encode()[:MAX_COMMENT - 3].decode(errors="ignore") + "..."
    return f'comment "{clean}"'


def _listing(refs: Sequence[str], budget: int) -> str:
    """``a, b, c`` or ``a, b and 3 more`` so that it fits in ``budget`` characters."""
    for shown in range(len(refs), 0, -1):
        text = ", ".join(refs[:shown])
        if shown < len(refs):
            text += f" and {len(refs) - shown} more"
        if len(text) <= budget:
            return text
    return f"{len(refs)} policies"


def _ports_match(r: PortRange) -> str:
    """``tcp dport 8080``, ``udp dport 8000-8080`` or ``meta l4proto tcp`` (any port)."""
    proto = _PROTO.get(r.protocol.upper(), r.protocol.lower())
    if r.first <= 1 and r.last >= 65535:
        return f"meta l4proto {proto}"
    if r.first == r.last:
        return f"{proto} dport {r.first}"
    return f"{proto} dport {r.first}-{r.last}"


def _unique_ranges(ranges: Iterable[PortRange]) -> list[PortRange]:
    seen: dict[tuple[str, int, int], PortRange] = {}
    for r in ranges:
        seen.setdefault((r.protocol.upper(), r.first, r.last), r)
    return [seen[k] for k in sorted(seen)]


def _element(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


@dataclass(frozen=True)
class NodeScript:
    """One node's script: the text for ``nft -f -`` and the number of rules in it."""

    node: str
    text: str
    rules: int
    isolated: tuple[str, ...] = ()  # "ingress ns/pod", "egress ns/pod" judged on this node


@dataclass(frozen=True)
class _Set:
    name: str
    lines: tuple[str, ...]


class _Renderer:
    """Renders nodes of one PolicySet; peer sets are computed once and shared by the nodes."""

    def __init__(self, policyset: PolicySet, cluster: str) -> None:
        self.ps = policyset
        self.cluster = cluster
        self._peer_sets: dict[tuple[str, str, int], _Set | None] = {}
        self._named_sets: dict[tuple[str, int], _Set | None] = {}

    # ---- sets ------------------------------------------------------------------------------
    def peer_set(self, policy: Policy, rule: Rule) -> _Set | None:
        """The set of a rule's peers (None: the rule admits every address)."""
        key = (policy.ref, rule.direction, rule.index)
        if key not in self._peer_sets:
            nets = self.ps.peer_networks(policy, rule)
            if nets is None:
                self._peer_sets[key] = None
            else:
                name = nft_name(f"peers-{policy.ref}-{rule.direction}{rule.index}")
                # peer_networks are collapsed: nft refuses overlapping interval elements
                elements = [_element(n) for n in sorted(nets)]
                lines = [f"\tset {name} {{",
                         "\t\ttype ipv4_addr; flags interval;",
                         f"\t\t{nft_comment(f'peers of {policy.ref} {rule.direction}[{rule.index}]')}"]
                if elements:
                    lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
                lines.append("\t}")
                self._peer_sets[key] = _Set(name, tuple(lines))
        return self._peer_sets[key]

    def named_set(self, policy: Policy, rule: Rule) -> _Set | None:
        """Egress to named ports: ``pod ip . protocol . port`` of every peer pod declaring one
        of the rule's port names (None when no peer pod declares any)."""
        key = (policy.ref, rule.index)
        if key not in self._named_sets:
            named = tuple(p for p in rule.ports if isinstance(p.port, str))
            triples: set[tuple[tuple[int, ...], str, int]] = set()
            named_rule = replace(rule, ports=named)
            for pod in self.ps.peer_pods(policy, rule):
                packed = tuple(int(x) for x in pod.ip.split("."))
                for r in self.ps.port_ranges(named_rule, pod) or []:
                    triples.update((packed, r.protocol.upper(), port)
                                   for port in range(r.first, r.last + 1))
            if not triples:
                self._named_sets[key] = None
            else:
                name = nft_name(f"namedports-{policy.ref}-egress{rule.index}")
                elements = [f"{'.'.join(map(str, ip))} . {_PROTO.get(p, p.lower())} . {port}"
                            for ip, p, port in sorted(triples)]
                ref = f"{policy.ref} egress[{rule.index}]"
                lines = (f"\tset {name} {{",
                         "\t\ttype ipv4_addr . inet_proto . inet_service;",
                         f"\t\t{nft_comment(f'named ports of the peers of {ref}')}",
                         f"\t\telements = {{ {', '.join(elements)} }}",
                         "\t}")
                self._named_sets[key] = _Set(name, lines)
        return self._named_sets[key]

    # ---- chains ----------------------------------------------------------------------------
    def _chain(self, pod: PodInfo, direction: str, policies: list[Policy],
               sets: dict[str, _Set]) -> tuple[str, list[str]]:
        name = nft_name(f"{direction}-{pod.label}")
        verdict = "accept" if direction == "ingress" else "return"
        field = "saddr" if direction == "ingress" else "daddr"
        rules: list[str] = []
        for policy in policies:
            for rule in policy.rules(direction):
                note = nft_comment(f"{policy.ref} {direction}[{rule.index}]")
                peers = self.peer_set(policy, rule)
                match = ""
                if peers is not None:
                    sets[peers.name] = peers
                    match = f"ip {field} @{peers.name} "
                dest = pod if direction == "ingress" else None
                ranges = self.ps.port_ranges(rule, dest)
                if ranges is None:
                    rules.append(f"{match}counter {verdict} {note}")
                else:
                    rules.extend(f"{match}{_ports_match(r)} counter {verdict} {note}"
                                 for r in _unique_ranges(ranges))
                if direction == "egress" and any(isinstance(p.port, str) for p in rule.ports):
                    named = self.named_set(policy, rule)
                    if named is not None:
                        sets[named.name] = named
                        rules.append(f"ip daddr . meta l4proto . th dport @{named.name} "
                                     f"counter return {note}")
        refs = [p.ref for p in policies]
        head = f"{pod.label} isolated for {direction} by "
        rules.append("counter drop " + nft_comment(head + _listing(refs, MAX_COMMENT - len(head))))
        return name, [f"\tchain {name} {{", *(f"\t\t{r}" for r in rules), "\t}"]

    def node(self, node: str) -> NodeScript:
        local = sorted((p for p in self.ps.pods
                        if p.node == node and p.ip and not p.host_network),
                       key=lambda p: (p.namespace, p.name))
        sets: dict[str, _Set] = {}
        chains: list[list[str]] = []
        jumps: dict[str, dict[str, str]] = {"egress": {}, "ingress": {}}
        isolated: list[str] = []
        for direction in ("egress", "ingress"):
            for pod in local:
                policies = sorted(self.ps.selecting(pod, direction), key=lambda p: p.ref)
                if not policies or pod.ip in jumps[direction]:
                    continue
                name, lines = self._chain(pod, direction, policies, sets)
                jumps[direction][pod.ip] = name
                chains.append(lines)
                isolated.append(f"{direction} {pod.label}")
        forward = ["ct state established,related accept "
                   + nft_comment("replies to allowed connections")]
        for direction, key in (("egress", "saddr"), ("ingress", "daddr")):
            if jumps[direction]:
                vmap = ", ".join(f"{ip} : jump {chain}" for ip, chain in
                                 sorted(jumps[direction].items(),
                                        key=lambda kv: tuple(int(x) for x in kv[0].split("."))))
                forward.append(f"ip {key} vmap {{ {vmap} }} "
                               + nft_comment(f"pods on this node isolated for {direction}"))
        out = [f"table {FAMILY} {TABLE} {{}}",
               f"delete table {FAMILY} {TABLE}",
               f"table {FAMILY} {TABLE} {{",
               "\t" + nft_comment(f"NetworkPolicy of cluster {self.cluster}, node {node}")]
        for s in sorted(sets.values(), key=lambda s: s.name):
            out.extend(s.lines)
        out.append("\tchain forward {")
        out.append(f"\t\ttype filter hook forward priority {PRIORITY}; policy accept;")
        out.extend(f"\t\t{r}" for r in forward)
        out.append("\t}")
        for lines in chains:
            out.extend(lines)
        out.append("}")
        rule_count = len(forward) + sum(len(c) - 2 for c in chains)
        return NodeScript(node, "\n".join(out) + "\n", rule_count, tuple(isolated))


def render_nodes(policyset: PolicySet, nodes: Iterable[str], cluster: str) -> dict[str, NodeScript]:
    """The scripts of several nodes of one cluster (peer sets computed once for all)."""
    renderer = _Renderer(policyset, cluster)
    return {node: renderer.node(node) for node in nodes}


def render_node(policyset: PolicySet, node: str, cluster: str) -> str:
    """The full ``nft -f -`` script for one node: it replaces the node's table atomically."""
    return _Renderer(policyset, cluster).node(node).text


def clear_script() -> str:
    """Removes the table, whether it exists or not (``add`` first makes the delete safe)."""
    return f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n"
