"""DNS queries from inside a network namespace: the local engine's ``dns`` probe.

A probe asks what a pod's own resolver would ask, from the pod's network namespace, so the
query crosses the same Service VIP, iptables rules and NetworkPolicy as the pod's lookups.
Like ``dig``: recursion desired, EDNS with a 1232-byte buffer, one retry after ``timeout``
(UDP resends, TCP reconnects), a truncated UDP reply is asked again over TCP, and
``search`` walks the search list with ``ndots`` as ``dig +search`` does.

The server is ``ProbeSpec.dns_server`` when given, written ``IP``, ``IP:PORT`` or
``[IPv6]:PORT`` (port 53 by default), else the first ``nameserver`` of the namespace's
``/etc/netns/<netns>/resolv.conf`` (``/etc/resolv.conf`` for the host).

Outcomes: CONNECTED when any reply arrived, whatever its rcode (``Observation.extra`` holds
``rcode``, ``qname``, ``records``, and also ``server`` and ``transport``); REFUSED for a TCP
reset or an ICMP port-unreachable/prohibited; UNREACHABLE for no route; TIMEOUT when the
retry got nothing either; ERROR for a reply that does not parse, or a name or server that is
not valid.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from clusters.local import icmperrors
from clusters.local import netns as nsmod
from clusters.local.stubresolver import ResolvConf, ResolveError
from clusters.probing import Observation, Outcome, ProbeSpec, parse_dns_server

__all__ = ["DnsQueryError", "Reply", "dns_probe", "lookup", "parse_server", "query",
           "record_dicts"]

DEFAULT_PORT = 53
EDNS_PAYLOAD = 1232
Transport = Literal["udp", "tcp"]


class DnsQueryError(Exception):
    """A query got no usable reply; ``outcome`` says how it failed."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


@dataclass(frozen=True)
class Reply:
    """A reply whose ID and question match the query; parsed on first use of ``message``."""

    wire: bytes
    transport: Transport  # the transport that brought the reply (tcp after a truncation)
    peer: str

    @cached_property
    def message(self) -> dns.message.Message:
        """The parsed reply; raises :class:`DnsQueryError` (ERROR) when it is malformed."""
        try:
            return dns.message.from_wire(self.wire)
        except Exception as err:  # dnspython raises many kinds for malformed input
            raise DnsQueryError(Outcome.ERROR, f"malformed reply from {self.peer}: {err}") from err


#: How a probe's ``dns_server`` is read (shared by every engine).
parse_server = parse_dns_server


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _open(ip: str, netns: str | None, kind: int) -> socket.socket:
    family = _family(ip)
    return icmperrors.enable(nsmod.socket_in(netns, family, kind))


def _socket_error(sock: socket.socket, err: OSError, peer: str) -> DnsQueryError:
    """Classify a socket error; the kernel's queued ICMP message tells REJECT from no route."""
    with_icmp = icmperrors.queued(sock)
    if with_icmp is not None:
        return DnsQueryError(*with_icmp)
    if err.errno == errno.ECONNREFUSED:
        return DnsQueryError(Outcome.REFUSED, f"connection refused by {peer}")
    if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return DnsQueryError(Outcome.UNREACHABLE, f"{peer}: {err.strerror}")
    return DnsQueryError(Outcome.ERROR, f"{peer}: {err.strerror or err}")


def _request(name: dns.name.Name, rdtype: int) -> bytes:
    """The query's wire form: RD set, one question, an EDNS OPT record (built by hand: fast)."""
    header = struct.pack("!HHHHHH", int.from_bytes(os.urandom(2), "big"), 0x0100, 1, 0, 0, 1)
    opt = b"\x00" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, 0, 0)
    return header + name.to_wire() + struct.pack("!HH", rdtype, 1) + opt  # type: ignore[operator]


def _matches(data: bytes, request: bytes, question_end: int) -> bool:
    """``data`` is a reply (QR) to ``request``: same ID, opcode and question (case aside).

    An error reply without a question (FORMERR from a server that could not read it) counts.
    """
    if len(data) < 12 or data[:2] != request[:2] or data[2] & 0xF8 != 0x80:
        return False
    if data[4:6] == b"\0\0" and data[3] & 0x0F:
        return True
    return data[12:question_end].lower() == request[12:question_end].lower()
def _peer(server: tuple[str, int]) -> str:
    ip, port = server
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _udp(wire: bytes, qend: int, server: tuple[str, int], netns: str | None,
         timeout: float, tries: int) -> bytes | None:
    """The UDP reply, or None when it was truncated (ask again over TCP)."""
    peer = _peer(server)
    with _open(server[0], netns, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(server)
            for _ in range(tries):
                sock.send(wire)
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        data = sock.recv(65535)
                    except TimeoutError:
                        break
                    if data[:2] != wire[:2]:
                        continue  # a late reply to an earlier try, or not ours
                    if not _matches(data, wire, qend):
                        raise DnsQueryError(Outcome.ERROR, f"bad reply from {peer}: "
                                            "not a reply to the question asked")
                    return None if data[2] & 0x02 else data
        except OSError as err:
            raise _socket_error(sock, err, peer) from err
    raise DnsQueryError(Outcome.TIMEOUT, f"no reply from {peer} over UDP after {tries} tries")


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "connection closed before the reply")
        data += chunk
    return data


def _tcp(wire: bytes, qend: int, server: tuple[str, int], netns: str | None,
         timeout: float, tries: int) -> bytes:
    peer = _peer(server)
    last = "no reply"
    for _ in range(tries):
        deadline = time.monotonic() + timeout
        with _open(server[0], netns, socket.SOCK_STREAM) as sock:
            try:
                sock.settimeout(timeout)
                sock.connect(server)
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                size = struct.unpack("!H", _recv_exactly(sock, 2, deadline))[0]
                data = _recv_exactly(sock, size, deadline)
            except TimeoutError:
                last = "no reply"
                continue
            except ConnectionResetError as err:
                last = str(err.strerror or err)
                continue
            except OSError as err:
                raise _socket_error(sock, err, peer) from err
        if not _matches(data, wire, qend):
            raise DnsQueryError(Outcome.ERROR, f"bad reply from {peer} over TCP: "
                                "not a reply to the question asked")
        return data
    outcome = Outcome.TIMEOUT if last == "no reply" else Outcome.ERROR
    raise DnsQueryError(outcome, f"{last} from {peer} over TCP after {tries} tries")


def query(qname: str | dns.name.Name, qtype: str | int, server: tuple[str, int], *,
          transport: Transport = "udp", netns: str | None = None, timeout: float = 2.0,
          retries: int = 1) -> Reply:
    """One question to ``server`` from ``netns``; raises :class:`DnsQueryError` on failure."""
    try:
        name = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname or ".")
        wire = _request(name, dns.rdatatype.RdataType.make(qtype))
    except (dns.exception.DNSException, ValueError) as err:
        raise DnsQueryError(Outcome.ERROR, f"cannot ask {qname!r} {qtype}: {err}") from err
    qend = len(wire) - 11  # the question ends where the 11-byte OPT record starts
    tries, peer = 1 + max(0, retries), _peer(server)
    if transport == "udp":
        data = _udp(wire, qend, server, netns, timeout, tries)
        if data is not None:
            return Reply(data, "udp", peer)
    return Reply(_tcp(wire, qend, server, netns, timeout, tries), "tcp", peer)


def lookup(name: str, conf: ResolvConf, netns: str | None, timeout: float,
           port: int = DEFAULT_PORT) -> str:
    """Resolve ``name`` to its first A record the way the pod's stub resolver would: each
    name of the search list in turn (``conf.candidates``), each nameserver until one
    answers. Raises :class:`ResolveError` saying who did not answer or what was tried."""
    if not conf.nameservers:
        raise ResolveError(f"{name}: no nameserver in resolv.conf")
    tried: list[str] = []
    for candidate in conf.candidates(name):
        try:
            qname = dns.name.from_text(candidate + ".")
        except dns.exception.DNSException as err:
            raise ResolveError(f"{name!r} is not a valid DNS name ({err})") from err
        message: dns.message.Message | None = None
        silent: list[str] = []
        for server in conf.nameservers:
            try:
                message = query(qname, dns.rdatatype.A, (server, port), netns=netns,
                                timeout=timeout, retries=0).message
                break
            except DnsQueryError as err:
                silent.append(server if err.outcome is Outcome.TIMEOUT
                              else f"{server} ({err.outcome.value.lower()}: {err.detail})")
        if message is None:
            raise ResolveError(f"no DNS answer from {', '.join(silent)}")
        addresses = [_data(r) for rrset in message.answer
                     if rrset.rdtype == dns.rdatatype.A for r in rrset]
        if addresses:
            return str(addresses[0])
        rcode = message.rcode()
        tried.append(f"{candidate} ({dns.rcode.to_text(rcode) if rcode else 'no A record'})")
    raise ResolveError(f"{name} did not resolve; tried {', '.join(tried)}")


def _data(rdata: dns.rdata.Rdata) -> Any:
    rdtype = rdata.rdtype
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS):
        return rdata.target.to_text()  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.SRV:
        return {"priority": rdata.priority, "weight": rdata.weight,  # type: ignore[attr-defined]
                "port": rdata.port, "target": rdata.target.to_text()}  # type: ignore[attr-defined]
    return rdata.to_text()


def record_dicts(rrsets: list[dns.rrset.RRset]) -> list[dict[str, Any]]:
    """The answer section as the probe contract's ``records`` (see clusters.probing)."""
    return [{"name": rrset.name.to_text(), "type": dns.rdatatype.to_text(rrset.rdtype),
             "ttl": rrset.ttl, "data": _data(rdata)} for rrset in rrsets for rdata in rrset]


def _resolv_conf(netns: str | None) -> ResolvConf:
    if netns is None:
        return ResolvConf.parse(Path("/etc/resolv.conf").read_text())
    return ResolvConf.for_netns(netns)


def dns_probe(spec: ProbeSpec, netns: str | None) -> Observation:
    """Run the ``dns`` probe ``spec`` from network namespace ``netns`` (None: the host's)."""
    started = time.monotonic()

    def done(outcome: Outcome, detail: str, peer: str | None = None,
             extra: dict[str, Any] | None = None) -> Observation:
        return Observation(outcome, detail, peer=peer, elapsed=time.monotonic() - started,
                           extra=extra or {})

    if netns is not None and not nsmod.exists(netns):
        return done(Outcome.ERROR, f"network namespace {netns} does not exist")
    try:
        conf = _resolv_conf(netns)
        server_text = spec.dns_server or (conf.nameservers[0] if conf.nameservers else "")
        if not server_text:
            return done(Outcome.ERROR, "no nameserver in resolv.conf and no server given")
        server = parse_server(server_text)
    except (OSError, ValueError) as err:
        return done(Outcome.ERROR, f"no usable DNS server: {err}")
    peer = _peer(server)
    names = conf.candidates(spec.target) if spec.search else [spec.target.rstrip(".")]
    try:
        qtype = dns.rdatatype.RdataType.make(spec.qtype or "A")
    except (dns.exception.DNSException, ValueError):
        return done(Outcome.ERROR, f"unknown DNS record type {spec.qtype!r}", peer)
    result: tuple[str, Reply] | None = None
    for candidate in names:
        qname = candidate + "."
        try:
            reply = query(qname, qtype, server, transport=spec.transport, netns=netns,
                          timeout=spec.timeout)
            message = reply.message
        except DnsQueryError as err:
            return done(err.outcome, err.detail, peer, {"qname": qname, "server": peer})
        result = (qname, reply)
        if any(rrset.rdtype == qtype for rrset in message.answer):
            break
    assert result is not None  # candidates() always yields at least one name
    qname, reply = result
    rcode = dns.rcode.to_text(reply.message.rcode())
    records = record_dicts(reply.message.answer)
    extra = {"rcode": rcode, "qname": qname, "records": records, "server": peer,
             "transport": reply.transport}
    wanted = sum(1 for r in records if r["type"] == dns.rdatatype.to_text(qtype))
    detail = f"{rcode}, {wanted} {dns.rdatatype.to_text(qtype)} record{'s' if wanted != 1 else ''}"
    return done(Outcome.CONNECTED, detail, peer, extra)
