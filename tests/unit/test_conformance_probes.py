"""Judging the http, read_file, ingress_status and dns probes against their expectations."""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_conformance_fake import FakeCluster

from clusters.engine import Capabilities
from clusters.probing import Observation, Outcome, ProbeSpec
from grader.conformance import probes
from grader.conformance.placeholders import openssl_pair
from grader.conformance.probes import Context, backend_of
from grader.conformance.report import Status


class Scripted(FakeCluster):
    """A fake whose probes answer with one given observation."""

    def __init__(self, answer: Observation) -> None:
        super().__init__()
        self.answer = answer

    def probe(self, spec: ProbeSpec) -> Observation:
        self.probes.append(spec)
        return self.answer


def ctx(cluster: FakeCluster) -> Context:
    return Context(cluster, cluster.capabilities(), ())


def test_backend_is_the_pod_name_without_hash_and_suffix() -> None:
    assert backend_of("foo-exact-7d9c5b6f4-x2x8q\n") == "foo-exact"
    assert backend_of("solo") == ""


def test_http_status_backend_and_client_ip() -> None:
    ok = Scripted(Observation(Outcome.CONNECTED, status=200, body="aaa-prefix-5f7-abcde\n"))
    verdict = probes.run(ctx(ok), "http", {"from": "host", "url": "http://10.0.0.1/aaa",
                                           "host_header": "p.com"},
                         {"status": 200, "backend": "aaa-prefix"})
    assert verdict.status is Status.PASS
    spec = ok.probes[0]
    assert (spec.target, spec.port, spec.path, spec.host_header) == ("10.0.0.1", 80, "/aaa", "p.com")
    wrong = probes.run(ctx(ok), "http", {"from": "host", "url": "http://10.0.0.1/aaa"},
                       {"status": 404, "backend": "aaa-slash-bbb-prefix"})
    assert wrong.status is Status.FAIL
    assert [c.observed for c in wrong.checks] == [
        'CONNECTED (HTTP 200), body "aaa-prefix-5f7-abcde"', "served by aaa-prefix"]
    client = Scripted(Observation(Outcome.CONNECTED, status=200, body="10.244.1.7:43512"))
    assert probes.run(ctx(client), "http", {"from": "x/a", "url": "http://1.2.3.4:8080/clientip"},
                      {"client_ip": "10.244.1.7"}).status is Status.PASS
    timeout = Scripted(Observation(Outcome.TIMEOUT, elapsed=5.0))
    failed = probes.run(ctx(timeout), "http", {"from": "host", "url": "http://1.2.3.4/"},
                        {"status": 200})
    assert failed.status is Status.FAIL and "TIMEOUT" in failed.checks[0].observed


def test_an_unsupported_probe_is_not_applicable_never_passed() -> None:
    cluster = Scripted(Observation(Outcome.UNSUPPORTED, "no SCTP here"))
    verdict = probes.run(ctx(cluster), "dns", {"from": "n/c", "name": "x."}, {"answers": []})
    assert verdict.status is Status.NA and "no SCTP here" in verdict.reason
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
                   {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c", "namespace": "n"},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}])
    node = probes.run(ctx(cluster), "http", {"from": "node-of n/c", "url": "http://1.2.3.4/"},
                      {"status": 200})
    assert node.status is Status.NA


def test_node_of_probes_start_in_the_node_that_runs_the_pod() -> None:
    cluster = Scripted(Observation(Outcome.CONNECTED, status=200, body="x"))
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
                   {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c", "namespace": "n"},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}])
    node = cluster.get("Pod", "n", "c")[0]["spec"]["nodeName"]
    verdict = probes.run(ctx(cluster), "http", {"from": "node-of n/c", "url": "http://1.2.3.4/"},
                         {"status": 200})
    assert verdict.status is Status.PASS
    assert cluster.probes[-1].source.node == node and not cluster.probes[-1].source.is_host


def test_dns_answers_compare_as_sets_and_srv_ignores_unstated_fields() -> None:
    records = [{"name": "_http._tcp.s.n.svc.cluster.local.", "type": "SRV", "ttl": 5,
                "data": {"priority": 0, "weight": 100, "port": 80,
                         "target": "S.N.svc.cluster.local."}},
               {"name": "s.n.svc.cluster.local.", "type": "CNAME", "ttl": 5, "data": "x."}]
    cluster = Scripted(Observation(Outcome.CONNECTED, extra={"rcode": "NOERROR",
                                                             "records": records}))
    body = {"from": "n/client", "name": "_http._tcp.s.n.svc.cluster.local.", "type": "SRV"}
    assert probes.run(ctx(cluster), "dns", body, {"answers": [
        {"port": 80, "target": "s.n.svc.cluster.local."}]}).status is Status.PASS
    assert probes.run(ctx(cluster), "dns", body, {"answers": [
        {"port": 80, "target": "s.n.svc.cluster.local.", "weight": 1}]}).status is Status.FAIL
    assert probes.run(ctx(cluster), "dns", body, {"answers": []}).status is Status.FAIL
    assert probes.run(ctx(cluster), "dns", body, {"rcode": "NXDOMAIN"}).status is Status.FAIL
    assert cluster.probes[0].qtype == "SRV" and cluster.probes[0].timeout == 2.0


def test_read_file_lines() -> None:
    cluster = FakeCluster()
    cluster.files[("n", "p", "/etc/resolv.conf")] = (
        "# made by the kubelet\nnameserver 10.96.0.10\nsearch  n.svc.cluster.local svc.cluster.local"
        " cluster.local\n\noptions ndots:5\n")
    body = {"pod": "n/p", "path": "/etc/resolv.conf"}
    lines = ["nameserver 10.96.0.10", "search n.svc.cluster.local svc.cluster.local cluster.local",
             "options ndots:5"]
    assert probes.run(ctx(cluster), "read_file", body,
                      {"lines_include": lines, "no_other_lines": True}).status is Status.PASS
    extra = probes.run(ctx(cluster), "read_file", body,
                       {"lines_include": lines[:1], "no_other_lines": True})
    assert extra.status is Status.FAIL and "options ndots:5" in extra.checks[1].observed
    missing = probes.run(ctx(cluster), "read_file", {"pod": "n/p", "path": "/etc/hosts"},
                         {"equals": ""})
    assert missing.status is Status.FAIL and "No such file" in missing.reason


def test_ingress_status_waits_out_the_observation_window(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster(caps=Capabilities(ingress=True))
    cluster.apply([{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "i", "namespace": "ing"}, "spec": {}}])
    calls: list[float] = []
    monkeypatch.setattr(probes.time, "sleep", calls.append)
    clock = iter(range(0, 100))
    monkeypatch.setattr(probes.time, "monotonic", lambda: float(next(clock)))
    body = {"namespace": "ing", "name": "i", "observe_seconds": 3}
    assert probes.run(ctx(cluster), "ingress_status", body,
                      {"address_assigned": False}).status is Status.PASS
    assert calls and all(c <= 0.5 for c in calls)
    assert probes.run(ctx(cluster), "ingress_status", body,
                      {"address_assigned": True}).status is Status.FAIL


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """An HTTPS server on 127.0.0.1 with a certificate for secure.example (its PEM given)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    cert, key = openssl_pair("secure.example")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\nConnection: close\r\n"
                                b"\r\nsecure-app-6b-xyz\n")
            except (ssl.SSLError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, cert
    listener.close()


def _secret(cluster: FakeCluster, cert: bytes) -> None:
    cluster.objects[("Secret", "ing", "tls")] = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "ing"},
        "data": {"tls.crt": base64.b64encode(cert).decode()}}


def test_https_verifies_the_certificate_against_the_secret(tls_server: tuple[int, bytes]) -> None:
    port, cert = tls_server
    cluster = FakeCluster()
    _secret(cluster, cert)
    body: dict[str, Any] = {"from": "host", "url": f"https://127.0.0.1:{port}/",
                            "tls": {"sni": "secure.example", "verify_against": "secret ing/tls"}}
    good = probes.run(ctx(cluster), "http", body, {"status": 200, "backend": "secure-app"})
    assert good.status is Status.PASS, good.checks
    other, _ = openssl_pair("secure.example")
    _secret(cluster, other)
    bad = probes.run(ctx(cluster), "http", body, {"status": 200})
    assert bad.status is Status.FAIL and bad.checks[0].key == "tls"
    _secret(cluster, cert)
    wrong_name = dict(body, tls={"sni": "other.example", "verify_against": "secret ing/tls"})
    failed = probes.run(ctx(cluster), "http", wrong_name, {"status": 200})
    assert failed.status is Status.FAIL and "TLS failed" in failed.checks[0].observed
    from_pod = probes.run(ctx(cluster), "http", dict(body, **{"from": "ing/client"}),
                          {"status": 200})
    assert from_pod.status is Status.NA
