"""The ``dns`` probe against the real server on loopback (no root: everything in the host netns).

The server runs on its own asyncio loop in a thread, on UDP and TCP sockets bound to
127.0.0.1 on one free port; probes name it with ``dns_server="127.0.0.1:PORT"``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.message
import dns.rcode
import pytest
from test_dns_zone import CLUSTER_IPS, POD_IPS, endpoint_slice, fixture_objects, service

from clusters.local.dns import client
from clusters.local.dns.client import DnsQueryError, dns_probe, parse_server, query
from clusters.local.dns.server import DnsServers, start_dns_servers
from clusters.local.dns.zone import Zone
from clusters.local.stubresolver import ResolvConf
from clusters.probing import Observation, Outcome, ProbeSpec, Source

SRC = Source("n", "client")
BIG = [{"addresses": [f"10.244.3.{i}"], "conditions": {"ready": True}} for i in range(1, 101)]


def build_zone() -> Zone:
    services, slices, pods = fixture_objects()
    services.append(service("big", clusterIP="None", ports=[{"name": "http", "port": 80}]))
    slices.append(endpoint_slice("big", BIG, [{"name": "http", "port": 80, "protocol": "TCP"}]))
    return Zone.build(services, slices, pods)


@dataclass
class Server:
    port: int
    servers: DnsServers
    loop: asyncio.AbstractEventLoop

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def bind_pair() -> tuple[socket.socket, socket.socket]:
    """A listening TCP socket and a UDP socket on the same free loopback port."""
    for _ in range(20):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(tcp.getsockname())
        except OSError:
            tcp.close()
            udp.close()
            continue
        tcp.listen(16)
        return udp, tcp
    raise RuntimeError("no free port pair on loopback")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    zone = build_zone()
    udp, tcp = bind_pair()
    port = udp.getsockname()[1]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers = asyncio.run_coroutine_threadsafe(start_dns_servers(udp, tcp, lambda: zone), loop).result(5)
    try:
        yield Server(port, servers, loop)
    finally:
        asyncio.run_coroutine_threadsafe(servers.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def probe(target: str, server_address: str, **kw: Any) -> Observation:
    kw.setdefault("timeout", 2.0)
    return dns_probe(ProbeSpec("dns", SRC, target, dns_server=server_address, **kw), None)


def datas(obs: Observation, rdtype: str) -> list[Any]:
    return [r["data"] for r in obs.extra["records"] if r["type"] == rdtype]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_record_over_both_transports(server: Server, transport: str) -> None:
    obs = probe("s.n.svc.cluster.local.", server.address, transport=transport)
    assert obs.outcome is Outcome.CONNECTED and obs.peer == server.address
    assert obs.extra["rcode"] == "NOERROR" and obs.extra["qname"] == "s.n.svc.cluster.local."
    assert obs.extra["records"] == [{"name": "s.n.svc.cluster.local.", "type": "A", "ttl": 5,
                                     "data": CLUSTER_IPS["s"]}]
    assert obs.extra["transport"] == transport


def test_record_data_per_type(server: Server) -> None:
    srv = probe("_http._tcp.s.n.svc.cluster.local.", server.address, qtype="SRV")
    assert datas(srv, "SRV") == [{"priority": 0, "weight": 100, "port": 80,
                                  "target": "s.n.svc.cluster.local."}]
    ptr = probe("20.0.96.10.in-addr.arpa.", server.address, qtype="PTR")
    assert datas(ptr, "PTR") == ["s.n.svc.cluster.local."]
    txt = probe("dns-version.cluster.local.", server.address, qtype="TXT")
    assert datas(txt, "TXT") == ["1.1.0"]
    cname = probe("ext.n.svc.cluster.local.", server.address, qtype="A")
    assert datas(cname, "CNAME") == ["www.example.com."] and datas(cname, "A") == []


def test_rcodes_are_reported_with_a_connected_outcome(server: Server) -> None:
    missing = probe("h0.n.svc.cluster.local.", server.address)
    assert (missing.outcome, missing.extra["rcode"], missing.extra["records"]) == (
        Outcome.CONNECTED, "NXDOMAIN", [])
    outside = probe("www.example.com.", server.address)
    assert outside.extra["rcode"] == "SERVFAIL"


def test_truncated_udp_reply_is_asked_again_over_tcp(server: Server) -> None:
    obs = probe("big.n.svc.cluster.local.", server.address)
    assert obs.extra["transport"] == "tcp" and len(datas(obs, "A")) == 100


# -- search list ------------------------------------------------------------------------

POD_CONF = ResolvConf(("10.96.0.10",), ("n.svc.cluster.local", "svc.cluster.local", "cluster.local"), 5)


@pytest.fixture
def pod_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "_resolv_conf", lambda netns: POD_CONF)


@pytest.mark.parametrize("name", ["s", "s.n", "s.n.svc", "S.N"])
def test_search_expands_like_the_pods_resolver(server: Server, pod_conf: None, name: str) -> None:
    obs = probe(name, server.address, search=True)
    assert datas(obs, "A") == [CLUSTER_IPS["s"]]
    assert obs.extra["qname"].lower() == "s.n.svc.cluster.local."


def test_search_result_is_the_last_name_tried_when_nothing_matches(server: Server,
                                                                    pod_conf: None) -> None:
    obs = probe("nope", server.address, search=True)
    assert obs.extra["qname"] == "nope." and obs.extra["rcode"] == "SERVFAIL"


def test_search_with_enough_dots_tries_the_name_first(server: Server, pod_conf: None) -> None:
    obs = probe("p1.h.n.svc.cluster.local", server.address, search=True)
    assert obs.extra["qname"] == "p1.h.n.svc.cluster.local." and datas(obs, "A") == [POD_IPS["p1"]]


def test_search_skips_expansions_without_the_type(server: Server, pod_conf: None) -> None:
    """``svc`` alone: n.svc... does not exist, svc.svc... neither, svc.cluster.local is no data."""
    obs = probe("svc", server.address, search=True)
    assert obs.extra["qname"] == "svc." and obs.extra["rcode"] == "SERVFAIL"


def test_without_search_a_relative_name_is_asked_as_is(server: Server, pod_conf: None) -> None:
    obs = probe("s.n", server.address)
    assert obs.extra["qname"] == "s.n." and obs.extra["rcode"] == "SERVFAIL"


def test_the_server_defaults_to_the_first_nameserver(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []

    def fake_query(qname: str, qtype: object, server: tuple[str, int], **kw: object) -> object:
        seen.append(server)
        raise DnsQueryError(Outcome.TIMEOUT, "no reply")

    monkeypatch.setattr(client, "_resolv_conf", lambda netns: POD_CONF)
    monkeypatch.setattr(client, "query", fake_query)
    obs = dns_probe(ProbeSpec("dns", SRC, "s.n.svc.cluster.local."), None)
    assert obs.outcome is Outcome.TIMEOUT and seen == [("10.96.0.10", 53)]
    monkeypatch.setattr(client, "_resolv_conf", lambda netns: ResolvConf())
    assert dns_probe(ProbeSpec("dns", SRC, "x."), None).outcome is Outcome.ERROR


@pytest.mark.parametrize(("text", "expected"), [("10.96.0.10", ("10.96.0.10", 53)),
                                                ("127.0.0.1:5353", ("127.0.0.1", 5353)),
                                                ("fd00::a", ("fd00::a", 53)),
                                                ("[fd00::a]:54", ("fd00::a", 54))])
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["kube-dns", "10.0.0.1:0", "10.0.0.1:x", "[fd00::a]x"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(("transport", "kind"), [("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)])
def test_nothing_listening_is_refused(transport: str, kind: int) -> None:
    obs = probe("s.n.svc.cluster.local.", f"127.0.0.1:{free_port(kind)}", transport=transport)
    assert obs.outcome is Outcome.REFUSED


def test_silent_udp_server_times_out_after_one_resend() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        obs = probe("s.n.svc.cluster.local.", f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.2)
        silent.setblocking(False)
        received = []
        while True:
            try:
                received.append(silent.recv(512))
            except BlockingIOError:
                break
    assert obs.outcome is Outcome.TIMEOUT
    assert len(received) == 2 and received[0] == received[1]


def test_silent_tcp_server_times_out_after_one_reconnect() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        obs = probe("s.n.svc.cluster.local.", f"127.0.0.1:{silent.getsockname()[1]}",
                    transport="tcp", timeout=0.2)
        silent.settimeout(0.5)
        accepted = [silent.accept()[0], silent.accept()[0]]
        for conn in accepted:
            conn.close()
    assert obs.outcome is Outcome.TIMEOUT


def udp_responder(make_reply: Callable[[bytes], bytes]) -> tuple[socket.socket, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        data, addr = sock.recvfrom(512)
        sock.sendto(make_reply(data), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


@pytest.mark.parametrize("make_reply", [
    lambda q: q[:2] + b"\x81\x80" + b"\xff" * 20,  # a reply to some other question
    lambda q: q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:-11] + b"\xc0\x0c\x00",
], ids=["wrong-question", "truncated-record"])
def test_a_bad_reply_is_an_error(make_reply: Callable[[bytes], bytes]) -> None:
    sock, thread = udp_responder(make_reply)
    with sock:
        obs = probe("s.n.svc.cluster.local.", f"127.0.0.1:{sock.getsockname()[1]}")
        thread.join(2)
    assert obs.outcome is Outcome.ERROR and "reply" in obs.detail


def test_invalid_names_are_errors_not_exceptions(server: Server) -> None:
    assert probe("a" * 64 + ".cluster.local.", server.address).outcome is Outcome.ERROR
    assert probe("a..b", server.address).outcome is Outcome.ERROR


def test_unknown_record_type_is_an_error(server: Server) -> None:
    obs = probe("s.n.svc.cluster.local.", server.address, qtype="BOGUS")
    assert obs.outcome is Outcome.ERROR and "BOGUS" in obs.detail


def test_missing_netns_is_an_error() -> None:
    spec = ProbeSpec("dns", SRC, "s.n.svc.cluster.local.", dns_server="127.0.0.1")
    assert dns_probe(spec, "knlt-no-such-netns").outcome is Outcome.ERROR


# -- the server under abuse -------------------------------------------------------------


def test_server_survives_garbage_and_answers_formerr(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect(("127.0.0.1", server.port))
        sock.send(b"\x00")  # too short: no answer
        sock.send(b"\x42\x42" + b"\x01\x00\x00\x01" + b"\xff" * 40)
        reply = sock.recv(512)
    assert reply[:2] == b"\x42\x42" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert probe("s.n.svc.cluster.local.", server.address).outcome is Outcome.CONNECTED


def test_tcp_connection_carries_several_queries(server: Server) -> None:
    names = ["s.n.svc.cluster.local.", "h.n.svc.cluster.local.", "nope.n.svc.cluster.local."]
    wires = [dns.message.make_query(name, "A").to_wire() for name in names]
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in wires))  # pipelined
        stream = sock.makefile("rb")
        replies = []
        for _ in wires:
            size = struct.unpack("!H", stream.read(2))[0]
            replies.append(dns.message.from_wire(stream.read(size)))
    assert [r.id for r in replies] == [dns.message.from_wire(w).id for w in wires]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


def test_query_exposes_the_extended_error(server: Server) -> None:
    reply = query("www.example.com.", "A", ("127.0.0.1", server.port))
    [option] = [o for o in reply.message.options if isinstance(o, dns.edns.EDEOption)]
    assert "no upstream" in (option.text or "")


def test_server_counts_queries(server: Server) -> None:
    before = server.servers.stats.udp_queries
    for _ in range(3):
        query("s.n.svc.cluster.local.", "A", ("127.0.0.1", server.port))
    assert server.servers.stats.udp_queries == before + 3
    assert server.servers.stats.tcp_connections >= 1  # earlier tests used TCP


def test_closed_server_releases_its_sockets() -> None:
    udp, tcp = bind_pair()
    port = udp.getsockname()[1]
    zone = build_zone()

    async def cycle() -> None:
        servers = await start_dns_servers(udp, tcp, lambda: zone)
        await servers.close()

    asyncio.run(cycle())
    assert udp.fileno() == -1 and tcp.fileno() == -1
    obs = probe("s.n.svc.cluster.local.", f"127.0.0.1:{port}", transport="tcp")
    assert obs.outcome is Outcome.REFUSED
