"""The cluster DNS server: UDP and TCP on sockets the caller made in a DNS pod's netns.

The daemon creates and binds the sockets inside each coredns pod's network namespace (the
TCP one listening), so queries reach the server through the kube-dns Service VIP, the
node's iptables rules and any NetworkPolicy exactly as they would reach CoreDNS. The
server itself never switches namespaces; every query is answered from the current
:class:`~clusters.local.dns.zone.Zone`, fetched from ``zone_provider`` per query so a
rebuilt zone takes effect at once.

Wire rules, as a standard DNS server applies them:

- UDP replies larger than 512 bytes (or the client's EDNS buffer size) are sent empty with
  TC set, so the client retries over TCP; TCP messages are length-prefixed, a connection may
  carry several queries, and it is closed after :data:`TCP_IDLE_TIMEOUT` s of silence.
- A query that does not parse gets FORMERR (when at least its header is readable); other
  opcodes NOTIMP; EDNS versions above 0 BADVERS; classes other than IN REFUSED. Datagrams
  shorter than a header, and responses (QR set), get no reply. Nothing a client sends can
  end the server.

Replies depend only on the zone and the query's bytes (the ID aside), so each zone keeps a
small cache of rendered replies: a repeated question costs a dict lookup, not a parse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from clusters.local.dns.zone import Answer, Zone
from clusters.local.serving import Served

__all__ = ["DnsServers", "DnsStats", "Responder", "serve_dns_stream", "start_dns_servers"]

log = logging.getLogger(__name__)

OUR_PAYLOAD = 1232  # the EDNS buffer size we advertise (the DNS flag day 2020 value)
TCP_IDLE_TIMEOUT = 8.0
TCP_READ_TIMEOUT = 2.0  # once a length prefix arrived, the message must follow this fast
CACHE_MAX = 4096  # rendered replies kept per zone
CACHE_QUERY_MAX = 512  # longer queries are answered but not cached


@dataclass
class DnsStats:
    """What the server did, for the daemon's log and ``lab`` diagnostics."""

    udp_queries: int = 0
    tcp_queries: int = 0
    tcp_connections: int = 0
    truncated: int = 0
    dropped: int = 0  # datagrams too short to answer, or responses sent to us
    rcodes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.rcodes.items()))
        return (f"{self.udp_queries} UDP + {self.tcp_queries} TCP queries"
                f" ({codes or 'none'}), {self.truncated} truncated, {self.dropped} dropped")


def _header_only(wire: bytes, rcode: int) -> bytes:
    """A reply made from the query's header alone: for queries that do not parse."""
    flags = int.from_bytes(wire[2:4], "big")
    flags = (flags & 0x7900) | 0x8000 | rcode  # keep opcode and RD, set QR, drop the rest
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


class Responder:
    """Turns query bytes into reply bytes (no I/O; the transports call it)."""

    def __init__(self, zone_provider: Callable[[], Zone], stats: DnsStats | None = None) -> None:
        self._zone_provider = zone_provider
        self.stats = stats or DnsStats()
        self._zone: Zone | None = None
        self._cache: dict[tuple[bool, bytes], bytes] = {}

    def respond(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to ``wire``, or None when it deserves none."""
        if len(wire) < 12 or wire[2] & 0x80:
            self.stats.dropped += 1
            return None
        zone = self._zone_provider()
        if zone is not self._zone:
            self._zone, self._cache = zone, {}
        key = (tcp, wire[2:])
        cached = self._cache.get(key)
        if cached is not None:
            reply = wire[:2] + cached
        else:
            reply = self._render(wire, zone, tcp)
            if len(wire) <= CACHE_QUERY_MAX:
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[key] = reply[2:]
        self._count(reply, tcp)
        return reply

    def _count(self, reply: bytes, tcp: bool) -> None:
        if tcp:
            self.stats.tcp_queries += 1
        else:
            self.stats.udp_queries += 1
        if reply[2] & 0x02:
            self.stats.truncated += 1
        self.stats.rcodes[dns.rcode.to_text(dns.rcode.Rcode.make(reply[3] & 0x0F))] += 1

    def _render(self, wire: bytes, zone: Zone, tcp: bool) -> bytes:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # any malformed input: dnspython raises many kinds; never crash
            return _header_only(wire, dns.rcode.FORMERR)
        try:
            response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        except Exception:
            return _header_only(wire, dns.rcode.FORMERR)
        answer = self._answer(query, zone)
        response.set_rcode(dns.rcode.Rcode.make(answer.rcode))
        if answer.authoritative:
            response.flags |= dns.flags.AA
        response.answer = list(answer.answer_rrs)
        response.authority = list(answer.authority_rrs)
        response.additional = list(answer.additional_rrs)
        if answer.ede is not None and query.edns >= 0:
            option = dns.edns.EDEOption(dns.edns.EDECode.make(answer.ede[0]), answer.ede[1])
            response.use_edns(0, 0, OUR_PAYLOAD, options=[option])
        limit = 65535 if tcp else (512 if query.edns < 0 else max(512, min(query.payload, 65535)))
        return response.to_wire(max_size=limit, prefer_truncation=True)

    @staticmethod
    def _answer(query: dns.message.Message, zone: Zone) -> Answer:
        if query.opcode() != dns.opcode.QUERY:
            return Answer(dns.rcode.NOTIMP, authoritative=False)
        if query.edns > 0:
            return Answer(dns.rcode.BADVERS, authoritative=False)
        if len(query.question) != 1:
            return Answer(dns.rcode.FORMERR, authoritative=False)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return Answer(dns.rcode.REFUSED, authoritative=False)
        try:
            return zone.answer(question.name, question.rdtype)
        except Exception:  # a bug in the zone must cost one answer, not the server
            log.exception("DNS: answering %s failed", question)
            return Answer(dns.rcode.SERVFAIL, authoritative=False)


async def serve_dns_stream(responder: Responder, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    """One DNS-over-TCP connection: length-prefixed queries until the client closes, stalls
    for :data:`TCP_IDLE_TIMEOUT` s or sends something that is not a query. Read errors end
    it (the caller, :meth:`~clusters.local.serving.Served.serve_tcp`, closes the socket)."""
    responder.stats.tcp_connections += 1
    while True:
        head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
        body = await asyncio.wait_for(
            reader.readexactly(int.from_bytes(head, "big")), TCP_READ_TIMEOUT)
        reply = responder.respond(body, tcp=True)
        if reply is None:
            return  # not a query: a TCP client that sends junk gets the door
        writer.write(len(reply).to_bytes(2, "big") + reply)
        await writer.drain()


class DnsServers(Served):
    """A UDP and a TCP server sharing one :class:`Responder` (and its statistics)."""

    def __init__(self, responder: Responder) -> None:
        super().__init__()
        self.responder = responder

    @property
    def stats(self) -> DnsStats:
        return self.responder.stats


async def start_dns_servers(udp_sock: socket.socket | None, tcp_sock: socket.socket | None,
                            zone_provider: Callable[[], Zone]) -> DnsServers:
    """Serve DNS on ``udp_sock`` (bound) and ``tcp_sock`` (bound and listening).

    The sockets are taken over and closed by :meth:`DnsServers.close`; either may be None.
    """
    servers = DnsServers(Responder(zone_provider))
    responder = servers.responder
    if udp_sock is not None:
        await servers.serve_udp(udp_sock, lambda data, addr: responder.respond(data, tcp=False))
    if tcp_sock is not None:
        await servers.serve_tcp(tcp_sock, lambda r, w: serve_dns_stream(responder, r, w))
    return servers
