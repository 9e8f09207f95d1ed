"""kube-proxy's iptables rules for one node, rendered as ``iptables-restore`` input. Pure.

The layout is kube-proxy's own (iptables mode), so ``iptables-save -t nat`` in a node of
the local engine reads like one of a real cluster:

* nat ``KUBE-SERVICES`` matches each ClusterIP:port (then LoadBalancer and external IPs)
  and jumps to ``KUBE-SVC-<hash>`` (or ``KUBE-SVL-`` for internalTrafficPolicy Local); its
  last rule sends traffic for the node's own addresses to ``KUBE-NODEPORTS``;
* ``KUBE-SVC-`` marks off-cluster clients for masquerade, keeps ClientIP affinity with the
  ``recent`` match, then picks an endpoint with ``statistic`` rules of probability
  1/(n-i); ``KUBE-SEP-<hash>`` marks hairpin traffic and DNATs to ``pod-ip:port``;
* ``KUBE-EXT-`` is the entry for "external" traffic (NodePort, LoadBalancer): masquerade for
  Cluster policy, or source-preserving ``KUBE-SVL-`` (local endpoints only) for Local;
* filter ``KUBE-SERVICES`` / ``KUBE-EXTERNAL-SERVICES`` REJECT traffic to Services with no
  endpoints (the client sees "connection refused") and DROP traffic that Local policy has
  nowhere to send on this node.

Chain names hash like kube-proxy's: base32 of sha256 over ``ns/name:port`` + protocol (+
``ip:port`` for an endpoint), first 16 characters, so the names match a real cluster's.
Rules are written in ``iptables-save``'s argument order, with kube-proxy's probability
format (``%0.10f``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from clusters.local.services.serviceports import Endpoint, ServicePort, categorize, service_ports

__all__ = ["BASE_JUMPS", "MASQ_MARK", "SERVICE_CHAIN_PREFIXES", "TOP_LEVEL", "FragmentCache",
           "RuleSet",
           "chain_name", "endpoint_chain_name", "probability", "render", "render_ports",
           "restore_input"]

MASQ_MARK = "0x4000"
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")

#: Chains rewritten on every sync, per table, in kube-proxy's declaration order.
TOP_LEVEL: Mapping[str, tuple[str, ...]] = {
    "filter": ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
               "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"),
    "nat": ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"),
}

_NEW = '-m conntrack --ctstate NEW '
#: The jumps from built-in chains, (table, rule) in the order they appear on a real node.
BASE_JUMPS: tuple[tuple[str, str], ...] = (
    ("filter", f'-A INPUT {_NEW}-m comment --comment "kubernetes load balancer firewall" '
               "-j KUBE-PROXY-FIREWALL"),
    ("filter", '-A INPUT -m comment --comment "kubernetes health check service ports" '
               "-j KUBE-NODEPORTS"),
    ("filter", f'-A INPUT {_NEW}-m comment --comment "kubernetes externally-visible service '
               'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "-A INPUT -j KUBE-FIREWALL"),
    ("filter", f'-A FORWARD {_NEW}-m comment --comment "kubernetes load balancer firewall" '
               "-j KUBE-PROXY-FIREWALL"),
    ("filter", '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", f'-A FORWARD {_NEW}-m comment --comment "kubernetes service portals" '
               "-j KUBE-SERVICES"),
    ("filter", f'-A FORWARD {_NEW}-m comment --comment "kubernetes externally-visible service '
               'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", f'-A OUTPUT {_NEW}-m comment --comment "kubernetes load balancer firewall" '
               "-j KUBE-PROXY-FIREWALL"),
    ("filter", f'-A OUTPUT {_NEW}-m comment --comment "kubernetes service portals" '
               "-j KUBE-SERVICES"),
    ("filter", "-A OUTPUT -j KUBE-FIREWALL"),
    ("nat", '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" '
            "-j KUBE-POSTROUTING"),
)


@functools.lru_cache(maxsize=1 << 16)
def _hash16(text: str) -> str:
    # 16 base32 characters are the first 80 bits: encoding 10 bytes gives exactly those.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def chain_name(prefix: str, port_key: str, protocol: str) -> str:
    """``KUBE-SVC-``/``SVL-``/``EXT-``/``FW-`` + hash of ``ns/name:port`` + protocol."""
    return prefix + _hash16(port_key + protocol.lower())


def endpoint_chain_name(port_key: str, protocol: str, endpoint: str) -> str:
    """``KUBE-SEP-`` + hash of ``ns/name:port`` + protocol + ``ip:port``."""
    return "KUBE-SEP-" + _hash16(port_key + protocol.lower() + endpoint)


def probability(n: int) -> str:
    """The chance the first of ``n`` remaining endpoints is picked, as kube-proxy writes it."""
    return f"{1.0 / n:0.10f}"


@dataclass
class RuleSet:
    """Rules per table and chain (each rule a full ``-A CHAIN ...`` line), in order."""

    tables: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {t: {c: [] for c in TOP_LEVEL[t]} for t in ("filter", "nat")})

    def add(self, table: str, rule: str) -> None:
        chain = rule.split(" ", 2)[1]
        self.tables[table].setdefault(chain, []).append(rule)

    def declare(self, table: str, chain: str) -> None:
        self.tables[table].setdefault(chain, [])

    def chains(self, table: str) -> list[str]:
        return list(self.tables[table])

    def rules(self, table: str | None = None) -> list[str]:
        tables = [table] if table else list(self.tables)
        return [r for t in tables for rules in self.tables[t].values() for r in rules]

    def text(self) -> str:
        """The whole rule set as ``iptables-restore --noflush`` input."""
        return restore_input(self, None)


def restore_input(new: RuleSet, old: RuleSet | None, stale: Iterable[str] = (),
                  jumps: Sequence[tuple[str, str]] = ()) -> str:
    """``iptables-restore --noflush`` input that turns ``old`` into ``new``.

    Declaring a chain flushes it, so only chains whose rules changed (and the top-level
    ones, always) are declared and refilled; chains of ``old`` that are gone, and ``stale``
    service chains found on the node, are flushed and deleted (``-X``). ``old=None`` writes
    everything. ``jumps`` are base-jump rules (``-A BUILTIN ...``) missing on the node; they
    are inserted at the top of their built-in chain, keeping the given order.
    """
    out: list[str] = []
    for table in ("filter", "nat"):
        chains = new.tables[table]
        before = old.tables.get(table, {}) if old is not None else None
        write = [c for c in chains
                 if before is None or c in TOP_LEVEL[table] or before.get(c) != chains[c]]
        gone = [c for c in (before or {}) if c not in chains]
        if table == "nat":
            gone += [c for c in stale if c not in chains and c not in gone
                     and c.startswith(SERVICE_CHAIN_PREFIXES)]
        out.append(f"*{table}")
        out.extend(f":{c} - [0:0]" for c in write + gone)
        for c in write:
            out.extend(chains[c])
        table_jumps = [rule for t, rule in jumps if t == table]
        position: dict[str, int] = {}
        for rule in table_jumps:
            builtin = rule.split(" ", 2)[1]
            position[builtin] = position.get(builtin, 0) + 1
            out.append(f"-I {builtin} {position[builtin]} {rule.split(' ', 2)[2]}")
        out.extend(f"-X {c}" for c in gone)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- rendering


def _base(rs: RuleSet) -> None:
    rs.add("nat", f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    rs.add("nat", f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}")
    rs.add("nat", '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic '
                  'requiring SNAT" -j MASQUERADE --random-fully')
    rs.add("nat", f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}")
    rs.add("filter", '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment '
                     '"block incoming localnet connections" -m conntrack ! --ctstate '
                     "RELATED,ESTABLISHED,DNAT -j DROP")
    rs.add("filter", "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    rs.add("filter", '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
                     f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT")
    rs.add("filter", '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack '
                     'rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')


def _target(verdict: str) -> str:
    return "REJECT --reject-with icmp-port-unreachable" if verdict == "REJECT" else verdict


def _endpoint_rules(rs: _Sink, sp: ServicePort, chain: str,
                    endpoints: Sequence[Endpoint]) -> None:
    key = sp.port_key
    if sp.affinity_seconds:
        for ep in endpoints:
            sep = endpoint_chain_name(key, sp.protocol, str(ep))
            rs.add("nat", f'-A {chain} -m comment --comment "{key} -> {ep}" -m recent --rcheck '
                          f"--seconds {sp.affinity_seconds} --reap --name {sep} "
                          f"--mask 255.255.255.255 --rsource -j {sep}")
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        sep = endpoint_chain_name(key, sp.protocol, str(ep))
        pick = (f"-m statistic --mode random --probability {probability(n - i)} "
                if i < n - 1 else "")
        rs.add("nat", f'-A {chain} -m comment --comment "{key} -> {ep}" {pick}-j {sep}')


class _Sink(Protocol):
    def add(self, table: str, rule: str) -> None: ...
    def declare(self, table: str, chain: str) -> None: ...


class _Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[bool, str, str]] = []  # (is a rule, table, rule or chain)

    def add(self, table: str, rule: str) -> None:
        self.ops.append((True, table, rule))

    def declare(self, table: str, chain: str) -> None:
        self.ops.append((False, table, chain))


Fragment = tuple[tuple[bool, str, str], ...]


class FragmentCache:
    """Rendered rules per (Service port, node), so a sync re-renders only what changed.

    Entries not used between two :meth:`rotate` calls are dropped at the second one.
    """

    def __init__(self) -> None:
        self._old: dict[tuple[Any, ...], Fragment] = {}
        self._new: dict[tuple[Any, ...], Fragment] = {}

    def lookup(self, key: tuple[Any, ...]) -> Fragment | None:
        ops = self._new.get(key) or self._old.get(key)
        if ops is not None:
            self._new[key] = ops
        return ops

    def store(self, key: tuple[Any, ...], ops: Fragment) -> None:
        self._new[key] = ops

    def rotate(self) -> None:
        self._old, self._new = self._new, {}


def _service_port(rs: _Sink, sp: ServicePort, node: str, node_ip: IPv4Address,
                  cluster_cidr: str) -> None:
    key, proto = sp.port_key, sp.proto
    cat = categorize(sp, node)
    svc, svl = chain_name("KUBE-SVC-", key, proto), chain_name("KUBE-SVL-", key, proto)
    ext, fw = chain_name("KUBE-EXT-", key, proto), chain_name("KUBE-FW-", key, proto)
    internal_chain = svl if sp.itp_local else svc
    external_chain = svl if sp.external_policy_local else svc
    has = cat.has_endpoints
    has_internal = has and (not sp.itp_local or bool(cat.local))
    has_external = has and (not sp.external_policy_local or bool(cat.local))
    uses_ext = has and sp.externally_accessible
    uses_fw = has and bool(sp.lb_ips) and bool(sp.source_ranges)
    lb_chain = fw if uses_fw else ext
    internal_verdict = "REJECT" if not has else "DROP"
    internal_why = f"{key} has no endpoints" if not has else f"{key} has no local endpoints"
    external_verdict, external_why = internal_verdict, internal_why
    dst = f"-p {proto} -m comment --comment"
    dport = f"-m {proto} --dport {sp.port}"

    if has_internal:
        rs.add("nat", f'-A KUBE-SERVICES -d {sp.cluster_ip}/32 {dst} "{key} cluster IP" {dport} '
                      f"-j {internal_chain}")
    else:
        rs.add("filter", f'-A KUBE-SERVICES -d {sp.cluster_ip}/32 {dst} "{internal_why}" '
                         f"{dport} -j {_target(internal_verdict)}")
    for ip in sp.external_ips:
        if has:
            rs.add("nat", f'-A KUBE-SERVICES -d {ip}/32 {dst} "{key} external IP" {dport} '
                          f"-j {ext}")
        if not has_external:
            rs.add("filter", f'-A KUBE-EXTERNAL-SERVICES -d {ip}/32 {dst} "{external_why}" '
                             f"{dport} -j {_target(external_verdict)}")
    for ip in sp.lb_ips:
        if has:
            rs.add("nat", f'-A KUBE-SERVICES -d {ip}/32 {dst} "{key} loadbalancer IP" {dport} '
                          f"-j {lb_chain}")
        if uses_fw:
            rs.add("filter", f'-A KUBE-PROXY-FIREWALL -d {ip}/32 {dst} "{key} traffic not '
                             f'accepted by {fw}" {dport} -j DROP')
        if not has_external:
            rs.add("filter", f'-A KUBE-EXTERNAL-SERVICES -d {ip}/32 {dst} "{external_why}" '
                             f"{dport} -j {_target(external_verdict)}")
    if sp.node_port:
        if has:
            rs.add("nat", f'-A KUBE-NODEPORTS {dst} "{key}" -m {proto} --dport {sp.node_port} '
                          f"-j {ext}")
        if not has_external:
            rs.add("filter", f'-A KUBE-EXTERNAL-SERVICES {dst} "{external_why}" -m addrtype '
                             f"--dst-type LOCAL -m {proto} --dport {sp.node_port} "
                             f"-j {_target(external_verdict)}")
    if sp.health_check_node_port:
        rs.add("filter", f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{key} health check '
                         f'node port" -m tcp --dport {sp.health_check_node_port} -j ACCEPT')

    uses_cluster = bool(cat.cluster) and sp.uses_cluster_endpoints
    uses_local = bool(cat.local) and sp.uses_local_endpoints
    if uses_ext:  # declared before the SVC chain, as kube-proxy orders them
        rs.declare("nat", ext)
    if uses_cluster:
        rs.declare("nat", svc)
    if uses_local:
        rs.declare("nat", svl)
    if has_internal:
        rs.add("nat", f"-A {internal_chain} ! -s {cluster_cidr} -d {sp.cluster_ip}/32 {dst} "
                      f'"{key} cluster IP" {dport} -j KUBE-MARK-MASQ')
    if uses_ext:
        if not sp.external_policy_local:
            rs.add("nat", f'-A {ext} -m comment --comment "masquerade traffic for {key} '
                          'external destinations" -j KUBE-MARK-MASQ')
        else:
            rs.add("nat", f'-A {ext} -s {cluster_cidr} -m comment --comment "pod traffic for '
                          f'{key} external destinations" -j {svc}')
            rs.add("nat", f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {key} '
                          'external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
            rs.add("nat", f'-A {ext} -m comment --comment "route LOCAL traffic for {key} '
                          f'external destinations" -m addrtype --src-type LOCAL -j {svc}')
        if has_external:
            rs.add("nat", f"-A {ext} -j {external_chain}")
    if uses_fw:
        rs.declare("nat", fw)
        allow_node = False
        for src in sp.source_ranges:
            rs.add("nat", f'-A {fw} -s {src} -m comment --comment "{key} loadbalancer IP" '
                          f"-j {ext}")
            try:
                allow_node = allow_node or node_ip in IPv4Network(src, strict=False)
            except ValueError:
                continue
        if allow_node:
            for ip in sp.lb_ips:
                rs.add("nat", f'-A {fw} -s {ip}/32 -m comment --comment "{key} loadbalancer IP" '
                              f"-j {ext}")
        rs.add("nat", f'-A {fw} -m comment --comment "other traffic to {key} will be dropped by '
                      'KUBE-PROXY-FIREWALL"')
    if uses_cluster:
        _endpoint_rules(rs, sp, svc, cat.cluster)
    if uses_local:
        _endpoint_rules(rs, sp, svl, cat.local)
    for ep in cat.reachable:
        sep = endpoint_chain_name(key, sp.protocol, str(ep))
        rs.declare("nat", sep)
        rs.add("nat", f'-A {sep} -s {ep.ip}/32 -m comment --comment "{key}" -j KUBE-MARK-MASQ')
        sticky = (f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource "
                  if sp.affinity_seconds else "")
        rs.add("nat", f'-A {sep} -p {proto} -m comment --comment "{key}" {sticky}-m {proto} '
                      f"-j DNAT --to-destination {ep}")


def render_ports(ports: Iterable[ServicePort], *, node_name: str, node_ip: str,
                 cluster_cidr: str, cache: FragmentCache | None = None) -> RuleSet:
    """Rules for ``node_name`` from already-indexed Service ports (see :func:`render`).

    With a ``cache``, a Service port rendered before for this node is not rendered again.
    """
    rs = RuleSet()
    _base(rs)
    ip = IPv4Address(node_ip)
    for sp in ports:
        key = (sp, node_name, node_ip, cluster_cidr)
        ops = cache.lookup(key) if cache is not None else None
        if ops is None:
            rec = _Recorder()
            _service_port(rec, sp, node_name, ip, cluster_cidr)
            ops = tuple(rec.ops)
            if cache is not None:
                cache.store(key, ops)
        for is_rule, table, text in ops:
            if is_rule:
                rs.add(table, text)
            else:
                rs.declare(table, text)
    rs.add("nat", '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                  'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                  "-j KUBE-NODEPORTS")
    return rs


def render(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]], *,
           node_name: str, node_ip: str, cluster_cidr: str) -> RuleSet:
    """kube-proxy's rules for one node, from stored Services and EndpointSlices.

    ``node_name`` decides which endpoints are local (Local traffic policies), ``node_ip``
    is the node's InternalIP, ``cluster_cidr`` the pod range (traffic from outside it to a
    ClusterIP is masqueraded).
    """
    return render_ports(service_ports(services, slices), node_name=node_name,
                        node_ip=node_ip, cluster_cidr=cluster_cidr)
