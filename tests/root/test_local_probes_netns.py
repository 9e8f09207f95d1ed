"""Probes between two real network namespaces joined by a veth pair.

Namespace ``a`` is the probing pod, ``b`` the server side. iptables rules inside ``b`` make
the outcomes a learner's cluster makes: DROP (TIMEOUT), REJECT in its flavours (REFUSED), and
a missing route gives UNREACHABLE. Everything is named ``knltpr<pid>*`` and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusters.local.netns import socket_in
from clusters.local.probes import run_probe
from clusters.probing import Outcome, ProbeSpec, Source
from clusters.proc import run

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build network namespaces"),
]

TAG = f"knltpr{os.getpid()}"
A_IP, B_IP, B_IP_ICMP_REJECT, B_IP_ICMP_DROP = "10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4"
SRC = Source("lab", "client")


@dataclass
class Pair:
    a: str
    b: str
    resolv: Path


def iptables_b(b: str, *rule: str) -> None:
    run(["ip", "netns", "exec", b, "iptables", "-w", "-A", "INPUT", *rule])


def serve(sock: socket.socket, handle: Callable[[socket.socket], None],
          stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                handle(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def http_handle(conn: socket.socket) -> None:
    conn.settimeout(1)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nserver-b")


def udp_loop(sock: socket.socket, answer: Callable[[bytes], bytes | None],
             stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                continue
            reply = answer(data)
            if reply is not None:
                sock.sendto(reply, addr)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def dns_reply(query: bytes) -> bytes:
    """A for server.lab.svc.cluster.local, NXDOMAIN for everything else."""
    offset, labels = 12, []
    while query[offset]:
        labels.append(query[offset + 1: offset + 1 + query[offset]].decode())
        offset += query[offset] + 1
    question = query[12: offset + 5]
    if ".".join(labels) != "server.lab.svc.cluster.local":
        return query[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(B_IP)
    return query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    a, b = f"{TAG}a", f"{TAG}b"
    resolv_dir = Path("/etc/netns") / a
    stop = threading.Event()
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []
    try:
        run(["ip", "netns", "add", a])
        run(["ip", "netns", "add", b])
        run(["ip", "link", "add", f"{TAG}x", "netns", a, "type", "veth",
             "peer", "name", f"{TAG}y", "netns", b])
        run(["ip", "-n", a, "addr", "add", f"{A_IP}/24", "dev", f"{TAG}x"])
        for ip in (B_IP, B_IP_ICMP_REJECT, B_IP_ICMP_DROP):
            run(["ip", "-n", b, "addr", "add", f"{ip}/24", "dev", f"{TAG}y"])
        for ns, dev in ((a, f"{TAG}x"), (b, f"{TAG}y")):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        iptables_b(b, "-p", "tcp", "--dport", "9101", "-j", "DROP")
        iptables_b(b, "-p", "tcp", "--dport", "9102", "-j", "REJECT")
        iptables_b(b, "-p", "tcp", "--dport", "9103", "-j", "REJECT",
                   "--reject-with", "icmp-host-prohibited")
        iptables_b(b, "-p", "tcp", "--dport", "9104", "-j", "REJECT",
                   "--reject-with", "tcp-reset")
        iptables_b(b, "-p", "udp", "--dport", "9201", "-j", "DROP")
        iptables_b(b, "-d", B_IP_ICMP_REJECT, "-p", "icmp", "-j", "REJECT")
        iptables_b(b, "-d", B_IP_ICMP_DROP, "-p", "icmp", "-j", "DROP")

        listener = socket_in(b, socket.AF_INET, socket.SOCK_STREAM)
        web = socket_in(b, socket.AF_INET, socket.SOCK_STREAM)
        echo = socket_in(b, socket.AF_INET, socket.SOCK_DGRAM)
        dns = socket_in(b, socket.AF_INET, socket.SOCK_DGRAM)
        sockets += [listener, web, echo, dns]
        for sock, port in ((listener, 9100), (web, 8080)):
            sock.bind((B_IP, port))
            sock.listen(8)
        echo.bind((B_IP, 9200))
        dns.bind((B_IP, 53))
        threads.append(serve(web, http_handle, stop))
        threads.append(udp_loop(echo, lambda data: b"server-b:" + data, stop))
        threads.append(udp_loop(dns, dns_reply, stop))

        resolv_dir.mkdir(parents=True)
        yield Pair(a, b, resolv_dir / "resolv.conf")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for sock in sockets:
            sock.close()
        shutil.rmtree(resolv_dir, ignore_errors=True)
        for ns in (a, b):
            run(["ip", "netns", "del", ns], check=False)


def probe(pair: Pair, kind: Any, target: str, port: int | None = None,
          timeout: float = 1.0, **kw: Any) -> Any:
    return run_probe(ProbeSpec(kind, SRC, target, port, timeout=timeout, **kw), pair.a)


def test_tcp_connected(pair: Pair) -> None:
    obs = probe(pair, "tcp", B_IP, 9100)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.peer == f"{B_IP}:9100"


def test_tcp_nothing_listening_is_refused(pair: Pair) -> None:
    obs = probe(pair, "tcp", B_IP, 9999)
    assert (obs.outcome, obs.detail) == (Outcome.REFUSED, "connection refused")


def test_tcp_drop_rule_times_out(pair: Pair) -> None:
    obs = probe(pair, "tcp", B_IP, 9101, timeout=0.5)
    assert obs.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize(
    ("port", "detail"),
    [
        (9102, f"ICMP port-unreachable from {B_IP}"),
        (9103, f"ICMP host-prohibited from {B_IP}"),
        (9104, "connection refused"),
    ],
)
def test_tcp_reject_rules_are_refused(pair: Pair, port: int, detail: str) -> None:
    obs = probe(pair, "tcp", B_IP, port)
    assert (obs.outcome, obs.detail) == (Outcome.REFUSED, detail)


def test_no_route_is_unreachable(pair: Pair) -> None:
    assert probe(pair, "tcp", "10.78.0.1", 80).outcome is Outcome.UNREACHABLE
    assert probe(pair, "ping", "10.78.0.1").outcome is Outcome.UNREACHABLE


def test_udp_reply_and_drop(pair: Pair) -> None:
    obs = probe(pair, "udp", B_IP, 9200)
    assert (obs.outcome, obs.body) == (Outcome.CONNECTED, "server-b:hostname")
    assert probe(pair, "udp", B_IP, 9201, timeout=0.5).outcome is Outcome.TIMEOUT
    refused = probe(pair, "udp", B_IP, 9299)
    assert (refused.outcome, refused.detail) == (Outcome.REFUSED,
                                                 f"ICMP port-unreachable from {B_IP}")


def test_http_across_namespaces(pair: Pair) -> None:
    obs = probe(pair, "http", B_IP, 8080, path="/hostname")
    assert (obs.outcome, obs.status, obs.body) == (Outcome.CONNECTED, 200, "server-b")


def test_ping_outcomes(pair: Pair) -> None:
    assert probe(pair, "ping", B_IP).outcome is Outcome.CONNECTED
    rejected = probe(pair, "ping", B_IP_ICMP_REJECT)
    assert rejected.outcome is Outcome.REFUSED
    assert B_IP_ICMP_REJECT in rejected.detail
    assert probe(pair, "ping", B_IP_ICMP_DROP).outcome is Outcome.TIMEOUT


def test_names_resolve_through_the_pods_resolv_conf(pair: Pair) -> None:
    pair.resolv.write_text(f"search lab.svc.cluster.local svc.cluster.local\n"
                           f"nameserver {B_IP}\noptions ndots:5\n")
    obs = probe(pair, "http", "server", 8080)
    assert (obs.outcome, obs.body, obs.peer) == (Outcome.CONNECTED, "server-b", f"{B_IP}:8080")
    missing = probe(pair, "tcp", "nosuch", 80)
    assert missing.outcome is Outcome.DNS_ERROR
    assert "nosuch did not resolve" in missing.detail


def test_silent_nameserver_is_a_dns_error(pair: Pair) -> None:
    pair.resolv.write_text("search lab.svc.cluster.local\nnameserver 10.77.0.9\n"
                           "options ndots:5\n")
    obs = probe(pair, "tcp", "server", 80, timeout=0.3)
    assert (obs.outcome, obs.detail) == (Outcome.DNS_ERROR, "no DNS answer from 10.77.0.9")
