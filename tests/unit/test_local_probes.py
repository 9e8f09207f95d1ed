"""The local engine's probes against servers on 127.0.0.1 (host namespace, no root needed)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from clusters.local.probes import (
    ResolvConf,
    ResolveError,
    lookup,
    parse_http_response,
    run_probe,
)
from clusters.probing import Outcome, ProbeSpec, Source

HOST = Source()


def spec(kind: Any, port: int | None, target: str = "127.0.0.1", **kw: Any) -> ProbeSpec:
    return ProbeSpec(kind=kind, source=HOST, target=target, port=port, **kw)


@contextmanager
def tcp_server(handle: Callable[[socket.socket], object] | None = None) -> Iterator[int]:
    """A listening TCP socket on 127.0.0.1; ``handle`` serves each accepted connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                if handle is not None:
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()


@contextmanager
def udp_server(reply: Callable[[bytes], bytes | None]) -> Iterator[int]:
    """A UDP socket on 127.0.0.1 answering each datagram with ``reply(data)`` (None: silent)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = srv.recvfrom(4096)
            except OSError:
                continue
            answer = reply(data)
            if answer is not None:
                srv.sendto(answer, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# ------------------------------------------------------------------- tcp


def test_tcp_connected_reports_peer_and_no_banner() -> None:
    with tcp_server() as port:
        obs = run_probe(spec("tcp", port), None)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.peer == f"127.0.0.1:{port}"
    assert obs.body is None


def test_tcp_reads_a_banner() -> None:
    with tcp_server(lambda c: c.sendall(b"SSH-2.0-test\r\n")) as port:
        obs = run_probe(spec("tcp", port), None)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.body == "SSH-2.0-test\r\n"


def test_tcp_closed_port_is_refused() -> None:
    obs = run_probe(spec("tcp", closed_port()), None)
    assert obs.outcome is Outcome.REFUSED
    assert obs.summary().startswith("REFUSED")


def test_a_probe_needs_a_port() -> None:
    with pytest.raises(ValueError, match="needs a port"):
        run_probe(spec("tcp", None), None)


def test_unknown_kind_is_unsupported_not_an_error() -> None:
    obs = run_probe(spec("sctp", 5000), None)
    assert obs.outcome is Outcome.UNSUPPORTED
    assert "sctp" in obs.detail


def test_missing_namespace_is_an_error_observation() -> None:
    obs = run_probe(spec("tcp", 80), "knlt-does-not-exist-xyz")
    assert obs.outcome is Outcome.ERROR
    assert "knlt-does-not-exist-xyz" in obs.detail


# ------------------------------------------------------------------- udp


def test_udp_reply_is_connected_with_body() -> None:
    with udp_server(lambda data: b"pod-a" if data == b"hostname" else b"?") as port:
        obs = run_probe(spec("udp", port, timeout=2.0), None)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.body == "pod-a"


def test_udp_without_reply_times_out() -> None:
    with udp_server(lambda data: None) as port:
        obs = run_probe(spec("udp", port, timeout=0.3), None)
    assert obs.outcome is Outcome.TIMEOUT
    assert obs.elapsed > 0


def test_udp_to_closed_port_is_refused_by_icmp() -> None:
    obs = run_probe(spec("udp", closed_port(socket.SOCK_DGRAM), timeout=2.0), None)
    assert obs.outcome is Outcome.REFUSED
    assert "port-unreachable" in obs.detail


# ------------------------------------------------------------------- http


def http_reply(raw: bytes, seen: list[bytes] | None = None) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        request = read_request(conn)
        if seen is not None:
            seen.append(request)
        conn.sendall(raw)

    return handle


def test_http_status_body_and_request_line() -> None:
    seen: list[bytes] = []
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Pod: a\r\n\r\nserverEXTRA"
    with tcp_server(http_reply(raw, seen)) as port:
        obs = run_probe(spec("http", port, path="/hostname", host_header="web.example"), None)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.status == 200
    assert obs.body == "server"
    assert obs.extra["headers"]["x-pod"] == "a"
    request = seen[0].decode()
    assert request.startswith("GET /hostname HTTP/1.1\r\n")
    assert "Host: web.example\r\n" in request
    assert "Connection: close\r\n" in request


def test_http_default_host_header_carries_the_port() -> None:
    seen: list[bytes] = []
    raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    with tcp_server(http_reply(raw, seen)) as port:
        obs = run_probe(spec("http", port), None)
    assert (obs.outcome, obs.status, obs.body) == (Outcome.CONNECTED, 404, "")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in seen[0]


def test_http_chunked_and_read_until_close() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    with tcp_server(http_reply(chunked)) as port:
        assert run_probe(spec("http", port), None).body == "abcde"
    until_close = b"HTTP/1.0 503 Service Unavailable\r\n\r\nno endpoints"
    with tcp_server(http_reply(until_close)) as port:
        obs = run_probe(spec("http", port), None)
    assert (obs.status, obs.body) == (503, "no endpoints")


def test_http_silent_server_times_out_after_connecting() -> None:
    release = threading.Event()
    with tcp_server(lambda conn: release.wait(2)) as port:
        obs = run_probe(spec("http", port, timeout=0.3), None)
        release.set()
    assert obs.outcome is Outcome.TIMEOUT
    assert "connected, but" in obs.detail


def test_http_garbage_is_an_error() -> None:
    with tcp_server(http_reply(b"SSH-2.0-OpenSSH\r\n\r\n")) as port:
        obs = run_probe(spec("http", port), None)
    assert obs.outcome is Outcome.ERROR
    assert "not an HTTP response" in obs.detail


def test_http_to_closed_port_is_refused() -> None:
    assert run_probe(spec("http", closed_port()), None).outcome is Outcome.REFUSED


def test_parse_http_response_caps_the_body() -> None:
    big = b"x" * (70 * 1024)
    status, headers, body = parse_http_response(b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\n" + big)
    assert status == 200
    assert headers == {"server": "t"}
    assert len(body) == 64 * 1024
    assert parse_http_response(b"hello\r\n\r\n")[0] is None


# ------------------------------------------------------------------- names


def test_resolv_conf_parsing_and_search_order() -> None:
    conf = ResolvConf.parse(
        "# pod resolv.conf\nsearch lab01.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5 timeout:1\n"
    )
    assert conf.nameservers == ("10.96.0.10",)
    assert conf.ndots == 5
    assert conf.candidates("server") == [
        "server.lab01.svc.cluster.local", "server.svc.cluster.local",
        "server.cluster.local", "server",
    ]
    many_dots = "a.b.c.d.e.f"
    assert conf.candidates(many_dots)[0] == many_dots
    assert conf.candidates("server.lab01.svc.cluster.local.") == ["server.lab01.svc.cluster.local"]
    assert ResolvConf.parse("nameserver 1.1.1.1\n").ndots == 1


def dns_answer(records: dict[str, str]) -> Callable[[bytes], bytes]:
    """A tiny authoritative server: A records for ``records``, NXDOMAIN for other names."""

    def reply(query: bytes) -> bytes:
        qid = query[:2]
        offset, labels = 12, []
        while query[offset]:
            size = query[offset]
            labels.append(query[offset + 1: offset + 1 + size].decode())
            offset += size + 1
        question = query[12: offset + 5]
        name = ".".join(labels)
        if name not in records:
            return qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(records[name])
        return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer

    return reply


POD_CONF = ResolvConf(("127.0.0.1",), ("lab01.svc.cluster.local", "svc.cluster.local"), 5)


def test_lookup_walks_the_search_list() -> None:
    records = {"server.lab01.svc.cluster.local": "10.96.0.42", "db.other.svc.cluster.local":
               "10.96.0.43"}
    with udp_server(dns_answer(records)) as port:
        assert lookup("server", POD_CONF, None, 1.0, port=port) == "10.96.0.42"
        assert lookup("db.other", POD_CONF, None, 1.0, port=port) == "10.96.0.43"
        with pytest.raises(ResolveError, match=r"nothere did not resolve; tried "
                                               r"nothere\.lab01\.svc\.cluster\.local \(NXDOMAIN\)"):
            lookup("nothere", POD_CONF, None, 1.0, port=port)


def test_lookup_without_a_server_says_who_did_not_answer() -> None:
    with udp_server(lambda q: None) as port, pytest.raises(ResolveError) as silent:
        lookup("server", POD_CONF, None, 0.2, port=port)
    assert str(silent.value) == "no DNS answer from 127.0.0.1"
    with pytest.raises(ResolveError, match=r"no DNS answer from 127\.0\.0\.1 .*refused"):
        lookup("server", POD_CONF, None, 1.0, port=closed_port(socket.SOCK_DGRAM))


def test_host_source_uses_the_host_resolver() -> None:
    with tcp_server() as port:
        obs = run_probe(spec("tcp", port, target="localhost"), None)
    assert obs.outcome is Outcome.CONNECTED
    assert obs.peer == f"127.0.0.1:{port}"
