"""The DNS server's wire rules, through :class:`Responder` (bytes in, bytes out, no sockets)."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from test_dns_zone import POD_IPS, endpoint_slice, fixture_objects, service

from clusters.local.dns.server import Responder
from clusters.local.dns.zone import NO_UPSTREAM, Zone

BIG = [{"addresses": [f"10.244.3.{i}"], "conditions": {"ready": True}} for i in range(1, 101)]


@pytest.fixture(scope="module")
def zone() -> Zone:
    services, slices, pods = fixture_objects()
    services.append(service("big", clusterIP="None", ports=[{"name": "http", "port": 80}]))
    slices.append(endpoint_slice("big", BIG, [{"name": "http", "port": 80, "protocol": "TCP"}]))
    return Zone.build(services, slices, pods)


def ask(responder: Responder, query: dns.message.Message | bytes, tcp: bool = False) -> dns.message.Message:
    wire = query if isinstance(query, bytes) else query.to_wire()
    reply = responder.respond(wire, tcp=tcp)
    assert reply is not None
    return dns.message.from_wire(reply)


def test_answers_with_aa_and_the_question_copied(zone: Zone) -> None:
    query = dns.message.make_query("S.n.svc.cluster.local.", "A")
    reply = ask(Responder(lambda: zone), query)
    assert reply.id == query.id and reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert reply.question[0].name.to_text() == "S.n.svc.cluster.local."
    assert [r.to_text() for r in reply.answer[0]] == ["10.96.0.20"]


def test_udp_reply_too_big_without_edns_is_truncated_and_tcp_is_not(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    query = dns.message.make_query("big.n.svc.cluster.local.", "A")
    udp = ask(responder, query)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(responder, query, tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
    assert responder.stats.truncated == 1


def test_udp_limit_follows_the_edns_buffer_size(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    small = dns.message.make_query("big.n.svc.cluster.local.", "A", use_edns=0, payload=1232)
    assert ask(responder, small).flags & dns.flags.TC
    large = dns.message.make_query("big.n.svc.cluster.local.", "A", use_edns=0, payload=4096)
    reply = ask(responder, large)
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 100


def test_out_of_cluster_names_carry_an_extended_error_only_with_edns(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    with_edns = ask(responder, dns.message.make_query("example.com.", "A", use_edns=0))
    assert with_edns.rcode() == dns.rcode.SERVFAIL
    [option] = [o for o in with_edns.options if isinstance(o, dns.edns.EDEOption)]
    assert option.code == dns.edns.EDECode.NO_REACHABLE_AUTHORITY and option.text == NO_UPSTREAM
    plain = ask(responder, dns.message.make_query("example.com.", "A"))
    assert plain.rcode() == dns.rcode.SERVFAIL and plain.edns < 0


def test_nxdomain_carries_the_soa(zone: Zone) -> None:
    reply = ask(Responder(lambda: zone), dns.message.make_query("nope.n.svc.cluster.local.", "A"))
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]


@pytest.mark.parametrize("junk", [b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\xff" * 30,
                                  b"\xab\xcd" + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f",
                                  b"\x00\x01" + bytes(10) + b"\xc0\x0c\x00\x01\x00\x01"])
def test_malformed_queries_get_formerr_with_their_id(zone: Zone, junk: bytes) -> None:
    reply = Responder(lambda: zone).respond(junk, tcp=False)
    assert reply is not None and reply[:2] == junk[:2]
    assert reply[2] & 0x80 and reply[3] & 0x0F == dns.rcode.FORMERR


def test_short_datagrams_and_responses_get_no_reply(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    assert responder.respond(b"\x00\x01\x02", tcp=False) is None
    answer = dns.message.make_response(dns.message.make_query("s.n.svc.cluster.local.", "A"))
    assert responder.respond(answer.to_wire(), tcp=False) is None
    assert responder.stats.dropped == 2


def test_other_opcodes_are_not_implemented(zone: Zone) -> None:
    query = dns.message.make_query("s.n.svc.cluster.local.", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    assert ask(Responder(lambda: zone), query).rcode() == dns.rcode.NOTIMP


def test_two_questions_are_formerr(zone: Zone) -> None:
    query = dns.message.make_query("s.n.svc.cluster.local.", "A")
    query.question.append(dns.message.make_query("h.n.svc.cluster.local.", "A").question[0])
    assert ask(Responder(lambda: zone), query).rcode() == dns.rcode.FORMERR


def test_other_classes_are_refused(zone: Zone) -> None:
    query = dns.message.make_query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
    assert ask(Responder(lambda: zone), query).rcode() == dns.rcode.REFUSED


def test_unknown_edns_version_is_badvers(zone: Zone) -> None:
    query = dns.message.make_query("s.n.svc.cluster.local.", "A", use_edns=1)
    assert ask(Responder(lambda: zone), query).rcode() == dns.rcode.BADVERS


def test_cached_replies_carry_each_query_id(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    for qid in (1, 2, 65535):
        query = dns.message.make_query("h.n.svc.cluster.local.", "A", id=qid)
        reply = ask(responder, query)
        assert reply.id == qid
        assert {r.to_text() for r in reply.answer[0]} == {POD_IPS[p] for p in ("p1", "p2", "p3")}
    assert responder.stats.udp_queries == 3 and responder.stats.rcodes["NOERROR"] == 3


def test_a_new_zone_takes_effect_at_once(zone: Zone) -> None:
    current = [zone]
    responder = Responder(lambda: current[0])
    query = dns.message.make_query("s.n.svc.cluster.local.", "A")
    assert [r.to_text() for r in ask(responder, query).answer[0]] == ["10.96.0.20"]
    current[0] = Zone.build([service("s", clusterIP="10.96.0.99")], [], [])
    assert [r.to_text() for r in ask(responder, query).answer[0]] == ["10.96.0.99"]


def test_a_failing_zone_costs_one_servfail_not_the_server(zone: Zone) -> None:
    class Broken(Zone):
        def answer(self, qname: object, qtype: object) -> object:  # type: ignore[override]
            raise RuntimeError("bug")

    broken = Broken.__new__(Broken)
    reply = ask(Responder(lambda: broken), dns.message.make_query("s.n.svc.cluster.local.", "A"))
    assert reply.rcode() == dns.rcode.SERVFAIL


def test_tcp_stats_are_counted_apart(zone: Zone) -> None:
    responder = Responder(lambda: zone)
    wire = dns.message.make_query("s.n.svc.cluster.local.", "A").to_wire()
    responder.respond(wire, tcp=True)
    responder.respond(wire, tcp=False)
    assert (responder.stats.tcp_queries, responder.stats.udp_queries) == (1, 1)
    assert "1 UDP + 1 TCP" in responder.stats.summary()


def test_header_of_a_formerr_keeps_rd_and_opcode(zone: Zone) -> None:
    junk = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x05ab"
    reply = Responder(lambda: zone).respond(junk, tcp=False)
    assert reply is not None
    flags = struct.unpack("!H", reply[2:4])[0]
    assert flags & 0x0100 and flags & 0x8000 and flags & 0x7800 == 0
