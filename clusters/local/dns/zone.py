"""The cluster's DNS data: Kubernetes objects in, DNS answers out (pure, no I/O).

:meth:`Zone.build` turns the Services, EndpointSlices and Pods the engine stores into a
table of names, rebuilt whenever the store changes; :meth:`Zone.answer` answers one
question from that table. What exists follows the Kubernetes DNS-Based Service Discovery
specification, filled in where it is silent the way CoreDNS's ``kubernetes`` plugin does in
a kubeadm/kind cluster (``kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure;
fallthrough in-addr.arpa ip6.arpa }`` followed by ``forward . /etc/resolv.conf``):

- ``<svc>.<ns>.svc.<zone>``: A/AAAA ClusterIP(s); for a headless Service one record per
  *ready* endpoint address (an endpoint whose ``conditions.ready`` is true or absent). A
  headless Service with no ready endpoint has no name at all: NXDOMAIN.
- ``<host>.<svc>.<ns>.svc.<zone>``: A/AAAA of each ready endpoint of any Service, where
  ``<host>`` is the endpoint's ``hostname`` or, without one, its address with dashes
  (``10-244-1-5``), as CoreDNS names endpoints.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV for each *named* port: a ClusterIP Service
  points at its own name and Service port; a headless one has one record per ready endpoint
  (target ``<host>.<svc>...``, the endpoint's port). The targets' addresses go in the
  additional section. Unnamed ports have no SRV.
- PTR: a ClusterIP names its Service; a ready endpoint address names ``<host>.<svc>...``
  (for every Service selecting it, as CoreDNS answers).
- ExternalName: a CNAME at the Service name, for every query type. A target inside the
  cluster domain is followed; one outside is left for the client (there is no internet).
- ``dns-version.<zone>`` TXT ``1.1.0``; SOA and NS at the zone apex (``ns.dns.<zone>`` is
  the kube-dns ClusterIP when that Service exists).
- ``a-b-c-d.<ns>.pod.<zone>`` A ``a.b.c.d`` for any address in a namespace that exists
  (``pods insecure``: the pod is not looked up).
- A name that exists without the asked type (AAAA for an IPv4 Service, a namespace's
  ``<ns>.svc.<zone>``, an empty non-terminal) is NOERROR with no answer; a name in the zone
  that does not exist is NXDOMAIN. Both carry the zone's SOA in the authority section, whose
  minimum (negative-caching TTL) equals the record TTL, 5 s.

Names outside the cluster domain, and reverse names outside the Service and pod ranges,
are what CoreDNS forwards upstream. The local engine has no upstream, and a CoreDNS whose
upstreams all fail answers SERVFAIL; we answer SERVFAIL at once instead of after a
timeout, and attach an Extended DNS Error (RFC 8914, code 22 "No Reachable Authority") that
says why, when the query carries EDNS. Reverse names inside the Service and pod ranges with
no record are NXDOMAIN, which is what a real cluster's upstream answers for private
addresses. Lookups ignore case; answers keep the question's spelling. CoreDNS's deprecated
wildcard queries (``*.<ns>.svc.<zone>``) are not served: such names are NXDOMAIN.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.edns
import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

log = logging.getLogger(__name__)

__all__ = ["DNS_SCHEMA_VERSION", "NO_UPSTREAM", "TTL", "Answer", "Zone"]

TTL = 5
DNS_SCHEMA_VERSION = "1.1.0"
DEFAULT_REVERSE_NETS = ("10.96.0.0/16", "10.244.0.0/16")
NO_UPSTREAM = "the kube-netlab local engine has no upstream DNS (no internet)"
MAX_CNAME_HOPS = 8
_IN = dns.rdataclass.IN
_A, _AAAA, _CNAME, _PTR = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.PTR
_SRV, _TXT, _SOA, _NS = dns.rdatatype.SRV, dns.rdatatype.TXT, dns.rdatatype.SOA, dns.rdatatype.NS
_ANY = dns.rdatatype.ANY
_REVERSE = "in-addr.arpa."

Rdatas = dict[int, list[dns.rdata.Rdata]]
RRsets = tuple[dns.rrset.RRset, ...]


@dataclass(frozen=True)
class Answer:
    """The sections of a reply: what :class:`~clusters.local.dns.server` puts on the wire."""

    rcode: int
    answer_rrs: RRsets = ()
    authority_rrs: RRsets = ()
    additional_rrs: RRsets = ()
    authoritative: bool = True
    ede: tuple[int, str] | None = None  # Extended DNS Error to attach when the query has EDNS


def _abs(name: str) -> str:
    return name.lower().rstrip(".") + "."


# Rebuilding the zone on every store change mostly recreates the same records; dnspython's
# rdata and names are immutable, so the constructors are memoised across rebuilds.
_memo = functools.lru_cache(maxsize=65536)


@_memo
def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@_memo
def _ptr(text: str) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.PTR.PTR(_IN, _PTR, _name(text))


@_memo
def _srv_rdata(weight: int, port: int, target: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdtypes.IN.SRV.SRV(_IN, _SRV, 0, weight, port, target)


@_memo
def _reverse_name(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return addr.reverse_pointer.lower() + "."


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-").lower()


@_memo
def _address_rdata(ip: str) -> dns.rdata.Rdata | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4:
        return dns.rdtypes.IN.A.A(_IN, _A, str(addr))
    return dns.rdtypes.IN.AAAA.AAAA(_IN, _AAAA, str(addr))


def _ready(endpoint: Mapping[str, Any]) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is not False


@dataclass
class _Builder:
    domain: str  # "cluster.local."
    records: dict[str, Rdatas] = field(default_factory=dict)
    # Duplicates are found by text: comparing Rdata objects renders both to wire form, and
    # a pod behind 100 Services would make that quadratic (seconds per rebuild).
    _seen: set[tuple[str, int, str]] = field(default_factory=set)

    def add(self, name: str, rdata: dns.rdata.Rdata) -> None:
        key = (name, int(rdata.rdtype), rdata.to_text())
        if key in self._seen:
            return
        self._seen.add(key)
        self.records.setdefault(name, {}).setdefault(rdata.rdtype, []).append(rdata)

    def service(self, svc: Mapping[str, Any], slices: list[Mapping[str, Any]]) -> None:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        name, ns = meta.get("name"), meta.get("namespace") or "default"
        if not name:
            return
        fqdn = f"{name}.{ns}.svc.{self.domain}".lower()
        ports = [p for p in spec.get("ports") or [] if p.get("name")]
        if spec.get("type") == "ExternalName":
            target = spec.get("externalName") or ""
            try:
                target_name = _name(_abs(target))
            except dns.exception.DNSException:
                return  # not a DNS name: the Service has no record (the API rejects it anyway)
            self.add(fqdn, dns.rdtypes.ANY.CNAME.CNAME(_IN, _CNAME, target_name))
            for p in ports:
                self._srv(p, fqdn, int(p.get("port", 0)), target_name)
            return
        endpoints = [(s, e) for s in slices for e in s.get("endpoints") or [] if _ready(e)]
        for _, ep in endpoints:  # <host>.<svc>: every Service's ready endpoints
            for ip in ep.get("addresses") or []:
                rdata = _address_rdata(ip)
                if rdata is None:
                    continue
                host = f"{(ep.get('hostname') or _dashed(ip)).lower()}.{fqdn}"
                self.add(host, rdata)
                reverse = _reverse_name(ip)
                if reverse:
                    self.add(reverse, _ptr(host))
        if spec.get("clusterIP") == "None":
            self._headless(fqdn, endpoints)
            return
        ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
        for ip in ips:
            rdata = _address_rdata(ip or "")
            if rdata is None:
                continue
            self.add(fqdn, rdata)
            reverse = _reverse_name(ip)
            if reverse:
                self.add(reverse, _ptr(fqdn))
        if fqdn in self.records:
            for p in ports:
                self._srv(p, fqdn, int(p.get("port", 0)), _name(fqdn))

    def _headless(self, fqdn: str, endpoints: list[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> None:
        for slc, ep in endpoints:
            addresses = [ip for ip in ep.get("addresses") or [] if _address_rdata(ip) is not None]
            for ip in addresses:
                self.add(fqdn, _address_rdata(ip))  # type: ignore[arg-type]
            if not addresses:
                continue
            target = _name(f"{(ep.get('hostname') or _dashed(addresses[0])).lower()}.{fqdn}")
            for p in slc.get("ports") or []:
                if p.get("name") and p.get("port") is not None:
                    self._srv(p, fqdn, int(p["port"]), target)

    def _srv(self, port: Mapping[str, Any], fqdn: str, number: int, target: dns.name.Name) -> None:
        proto = str(port.get("protocol") or "TCP").lower()
        if not 0 <= number <= 65535:
            return
        owner = f"_{str(port['name']).lower()}._{proto}.{fqdn}"
        self.add(owner, _srv_rdata(100, number, target))

    def finish_srv_weights(self) -> None:
        """Spread the weight evenly, as CoreDNS does (the spec does not prescribe it)."""
        for rdatas in self.records.values():
            srvs = rdatas.get(_SRV)
            if srvs and len(srvs) > 1:
                weight = max(1, 100 // len(srvs))
                rdatas[_SRV] = [_srv_rdata(weight, s.port, s.target) for s in srvs]  # type: ignore[attr-defined]


def _ancestors(name: str, apex: str) -> Iterable[str]:
    while name != apex and name.endswith("." + apex):
        yield name
        name = name.split(".", 1)[1]
    yield apex


class Zone:
    """An immutable snapshot of the cluster's names; cheap to rebuild, fast to query."""

    def __init__(self, domain: str, records: dict[str, Rdatas], names: frozenset[str],
                 namespaces: frozenset[str], reverse_nets: tuple[ipaddress.IPv4Network, ...]):
        self.domain = domain
        self._records = records
        self._names = names
        self._namespaces = namespaces
        self._reverse_nets = reverse_nets
        self._soa = {z: self._soa_rrset(z) for z in (domain, _REVERSE)}
        for z, rrset in self._soa.items():
            records.setdefault(z, {})[_SOA] = list(rrset)

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, services: Iterable[Mapping[str, Any]], endpointslices: Iterable[Mapping[str, Any]],
              pods: Iterable[Mapping[str, Any]], *, domain: str = "cluster.local",
              namespaces: Iterable[str] = (),
              reverse_nets: Iterable[str] = DEFAULT_REVERSE_NETS) -> Zone:
        """The zone for these objects (plain dicts, as the engine stores them).

        ``namespaces`` adds namespaces that hold no Service or Pod (their ``<ns>.svc`` and
        ``<ns>.pod`` names exist); ``reverse_nets`` are the ranges whose reverse names we
        answer NXDOMAIN for (the Service and pod CIDRs) rather than SERVFAIL.
        """
        apex = _abs(domain)
        services, pods = list(services), list(pods)
        known = {ns.lower() for ns in namespaces}
        by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for slc in endpointslices:
            meta = slc.get("metadata") or {}
            owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
            if owner and slc.get("addressType", "IPv4") in ("IPv4", "IPv6"):
                by_service.setdefault((meta.get("namespace") or "default", owner), []).append(slc)
        b = _Builder(apex)
        for svc in services:
            meta = svc.get("metadata") or {}
            ns = meta.get("namespace") or "default"
            known.add(ns.lower())
            try:
                b.service(svc, by_service.get((ns, meta.get("name", "")), []))
            except (ValueError, TypeError, KeyError, AttributeError, dns.exception.DNSException):
                # The API server validates objects; one that slipped through loses its
                # records, never the whole zone.
                log.warning("DNS: Service %s/%s skipped: malformed", ns, meta.get("name"))
        known.update(((p.get("metadata") or {}).get("namespace") or "default").lower() for p in pods)
        b.finish_srv_weights()
        b.add(f"dns-version.{apex}", dns.rdtypes.ANY.TXT.TXT(_IN, _TXT, [DNS_SCHEMA_VERSION]))
        ns_host = f"ns.dns.{apex}"
        b.add(apex, dns.rdtypes.ANY.NS.NS(_IN, _NS, dns.name.from_text(ns_host)))
        for rdata in b.records.get(f"kube-dns.kube-system.svc.{apex}", {}).get(_A, []):
            b.add(ns_host, rdata)
        names = {f"svc.{apex}", f"pod.{apex}", _REVERSE}
        names.update(f"{ns}.{kind}.{apex}" for ns in known for kind in ("svc", "pod"))
        for owner in b.records:
            names.update(_ancestors(owner, _REVERSE if owner.endswith(_REVERSE) else apex))
        nets = tuple(ipaddress.IPv4Network(n) for n in reverse_nets)
        return cls(apex, b.records, frozenset(names), frozenset(known), nets)

    def _soa_rrset(self, apex: str) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(dns.name.from_text(apex), _IN, _SOA)
        rrset.update_ttl(TTL)
        rrset.add(dns.rdtypes.ANY.SOA.SOA(
            _IN, _SOA, dns.name.from_text(f"ns.dns.{self.domain}"),
            dns.name.from_text(f"hostmaster.{self.domain}"), 1, 7200, 1800, 86400, TTL))
        return rrset

    @property
    def record_count(self) -> int:
        return sum(len(v) for rdatas in self._records.values() for v in rdatas.values())

    # ------------------------------------------------------------------ answering

    def answer(self, qname: str | dns.name.Name, qtype: int | str) -> Answer:
        """The reply to one question (class IN). Never raises for any name or type."""
        try:
            name = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)
            rdtype = dns.rdatatype.RdataType.make(qtype)
        except (dns.exception.DNSException, ValueError):
            return Answer(dns.rcode.FORMERR, authoritative=False)
        answers: list[dns.rrset.RRset] = []
        additional: list[dns.rrset.RRset] = []
        for _ in range(MAX_CNAME_HOPS):
            key = name.to_text().lower()
            apex = self._apex_of(key)
            if apex is None:
                return self._no_upstream(answers)
            rdatas = self._records.get(key) or self._pod_record(key)
            if rdatas is None:
                if key in self._names:
                    return Answer(dns.rcode.NOERROR, tuple(answers), (self._soa[apex],))
                if apex == _REVERSE and not self._in_reverse_nets(key):
                    return self._no_upstream(answers)
                return Answer(dns.rcode.NXDOMAIN, tuple(answers), (self._soa[apex],))
            cname = rdatas.get(_CNAME)
            if cname and rdtype not in (_CNAME, _ANY):
                answers.append(self._rrset(name, _CNAME, cname))
                name = cname[0].target  # type: ignore[attr-defined]
                continue
            found = [t for t in rdatas if rdtype == _ANY or t == rdtype]
            if not found:
                return Answer(dns.rcode.NOERROR, tuple(answers), (self._soa[apex],))
            for t in found:
                answers.append(self._rrset(name, t, rdatas[t]))
                if t == _SRV:
                    additional.extend(self._targets(rdatas[t]))
            return Answer(dns.rcode.NOERROR, tuple(answers), (), tuple(additional))
        return Answer(dns.rcode.SERVFAIL, tuple(answers), authoritative=False)

    def _apex_of(self, key: str) -> str | None:
        if key == self.domain or key.endswith("." + self.domain):
            return self.domain
        if key == _REVERSE or key.endswith("." + _REVERSE):
            return _REVERSE
        return None

    def _no_upstream(self, answers: list[dns.rrset.RRset]) -> Answer:
        """Out of the cluster's zones: what CoreDNS would forward, and we cannot."""
        ede = (int(dns.edns.EDECode.NO_REACHABLE_AUTHORITY), NO_UPSTREAM)
        if answers:  # a CNAME leaving the cluster: give what we know, like a stub would get
            return Answer(dns.rcode.NOERROR, tuple(answers), ede=ede)
        return Answer(dns.rcode.SERVFAIL, authoritative=False, ede=ede)

    def _pod_record(self, key: str) -> Rdatas | None:
        labels = key.split(".")
        if len(labels) < 4 or ".".join(labels[2:]) != f"pod.{self.domain}":
            return None
        if labels[1] not in self._namespaces:
            return None
        parts = labels[0].split("-")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
            return None
        ip = ".".join(str(int(p)) for p in parts)
        return {_A: [dns.rdtypes.IN.A.A(_IN, _A, ip)]}

    def _in_reverse_nets(self, key: str) -> bool:
        octets = key[: -len(_REVERSE)].rstrip(".").split(".")[::-1] if key != _REVERSE else []
        if not 0 < len(octets) <= 4 or not all(o.isdigit() and int(o) <= 255 for o in octets):
            return False
        prefix = ipaddress.IPv4Network(
            (".".join(octets + ["0"] * (4 - len(octets))), 8 * len(octets)), strict=False)
        return any(prefix.subnet_of(net) for net in self._reverse_nets)

    def _targets(self, srvs: list[dns.rdata.Rdata]) -> list[dns.rrset.RRset]:
        extra: list[dns.rrset.RRset] = []
        for target in dict.fromkeys(srv.target for srv in srvs):  # type: ignore[attr-defined]
            rdatas = self._records.get(target.to_text().lower(), {})
            extra.extend(self._rrset(target, t, rdatas[t]) for t in (_A, _AAAA) if t in rdatas)
        return extra

    @staticmethod
    def _rrset(name: dns.name.Name, rdtype: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, _IN, dns.rdatatype.RdataType.make(rdtype))
        rrset.update_ttl(TTL)
        for rdata in rdatas:
            rrset.add(rdata)
        return rrset
