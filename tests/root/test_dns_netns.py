"""The DNS server in one network namespace, the ``dns`` probe from another, through a veth.

Namespace ``b`` plays the coredns pod: the server listens there on sockets made with
``socket_in``. Namespace ``a`` plays a client pod with a kubelet-style resolv.conf naming
``b``. Extra addresses on ``b`` behind iptables DROP and REJECT rules give the failure
outcomes. Everything is named ``knltdns<pid>*`` and removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusters.local.dns.client import dns_probe
from clusters.local.dns.server import DnsServers, start_dns_servers
from clusters.local.dns.zone import Zone
from clusters.local.netns import socket_in
from clusters.probing import Observation, Outcome, ProbeSpec, Source
from clusters.proc import run

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_dns_zone import CLUSTER_IPS, POD_IPS, fixture_objects

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build network namespaces"),
]

TAG = f"knltdns{os.getpid()}"
A_IP, B_IP, B_DROP, B_REJECT, B_PROHIBIT = "10.78.0.1", "10.78.0.2", "10.78.0.3", "10.78.0.4", "10.78.0.5"
SRC = Source("n", "client")
RESOLV = "search n.svc.cluster.local svc.cluster.local cluster.local\nnameserver {ip}\noptions ndots:5\n"


@dataclass
class Pair:
    a: str
    b: str
    servers: DnsServers


def iptables_b(b: str, *rule: str) -> None:
    run(["ip", "netns", "exec", b, "iptables", "-w", "-A", "INPUT", *rule])


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    a, b = f"{TAG}a", f"{TAG}b"
    resolv_dir = Path("/etc/netns") / a
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    servers: DnsServers | None = None
    try:
        run(["ip", "netns", "add", a])
        run(["ip", "netns", "add", b])
        run(["ip", "link", "add", f"{TAG}x", "netns", a, "type", "veth",
             "peer", "name", f"{TAG}y", "netns", b])
        run(["ip", "-n", a, "addr", "add", f"{A_IP}/24", "dev", f"{TAG}x"])
        for ip in (B_IP, B_DROP, B_REJECT, B_PROHIBIT):
            run(["ip", "-n", b, "addr", "add", f"{ip}/24", "dev", f"{TAG}y"])
        for ns, dev in ((a, f"{TAG}x"), (b, f"{TAG}y")):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        iptables_b(b, "-d", B_DROP, "-j", "DROP")
        iptables_b(b, "-d", B_REJECT, "-p", "udp", "-j", "REJECT")
        iptables_b(b, "-d", B_PROHIBIT, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
        resolv_dir.mkdir(parents=True)
        (resolv_dir / "resolv.conf").write_text(RESOLV.format(ip=B_IP))

        udp = socket_in(b, socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket_in(b, socket.AF_INET, socket.SOCK_STREAM)
        udp.bind(("0.0.0.0", 53))
        tcp.bind(("0.0.0.0", 53))
        tcp.listen(64)
        zone = Zone.build(*fixture_objects())
        thread.start()
        servers = asyncio.run_coroutine_threadsafe(
            start_dns_servers(udp, tcp, lambda: zone), loop).result(5)
        yield Pair(a, b, servers)
    finally:
        if servers is not None:
            asyncio.run_coroutine_threadsafe(servers.close(), loop).result(5)
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        loop.close()
        shutil.rmtree(resolv_dir, ignore_errors=True)
        for ns in (a, b):
            run(["ip", "netns", "del", ns], check=False)


def probe(pair: Pair, target: str, **kw: object) -> Observation:
    return dns_probe(ProbeSpec("dns", SRC, target, timeout=1.0, **kw), pair.a)  # type: ignore[arg-type]


def addresses(obs: Observation) -> set[str]:
    assert obs.outcome is Outcome.CONNECTED, obs.summary()
    return {r["data"] for r in obs.extra["records"] if r["type"] == "A"}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name", ["s", "s.n", "s.n.svc"])
def test_short_names_resolve_through_the_pods_resolv_conf(pair: Pair, transport: str, name: str) -> None:
    obs = probe(pair, name, search=True, transport=transport)
    assert addresses(obs) == {CLUSTER_IPS["s"]}
    assert obs.peer == f"{B_IP}:53" and obs.extra["qname"] == "s.n.svc.cluster.local."


def test_headless_answers_ready_endpoints_across_namespaces(pair: Pair) -> None:
    assert addresses(probe(pair, "h.n.svc.cluster.local.")) == {POD_IPS[p] for p in ("p1", "p2", "p3")}
    assert probe(pair, "h0.n.svc.cluster.local.").extra["rcode"] == "NXDOMAIN"
    assert addresses(probe(pair, "p1.h.n.svc.cluster.local.", transport="tcp")) == {POD_IPS["p1"]}


def test_dropped_queries_time_out(pair: Pair) -> None:
    obs = dns_probe(ProbeSpec("dns", SRC, "s.n.svc.cluster.local.", timeout=0.3,
                              dns_server=B_DROP), pair.a)
    assert obs.outcome is Outcome.TIMEOUT


def test_rejected_queries_are_refused(pair: Pair) -> None:
    obs = dns_probe(ProbeSpec("dns", SRC, "s.n.svc.cluster.local.", dns_server=B_REJECT), pair.a)
    assert obs.outcome is Outcome.REFUSED
    obs = dns_probe(ProbeSpec("dns", SRC, "s.n.svc.cluster.local.", dns_server=B_PROHIBIT,
                              transport="tcp"), pair.a)
    assert (obs.outcome, obs.detail) == (Outcome.REFUSED, f"ICMP admin-prohibited from {B_PROHIBIT}")


def test_no_route_is_unreachable(pair: Pair) -> None:
    obs = dns_probe(ProbeSpec("dns", SRC, "s.", dns_server="10.79.0.1"), pair.a)
    assert obs.outcome is Outcome.UNREACHABLE, obs.detail


def test_the_server_counted_what_it_answered(pair: Pair) -> None:
    probe(pair, "s.n.svc.cluster.local.")
    stats = pair.servers.stats
    assert stats.udp_queries >= 1 and stats.rcodes["NOERROR"] >= 1
