"""Placeholders resolve from the cluster as it is now."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest
from test_conformance_fake import FakeCluster

from grader.conformance.placeholders import (
    NoHostSource,
    PlaceholderError,
    Resolver,
    TlsPairs,
    openssl_pair,
    uses_fanout,
)


@pytest.fixture
def fake() -> FakeCluster:
    cluster = FakeCluster()
    cluster.apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "n",
                                                        "labels": {"app": "web"}},
         "spec": {"containers": [{"name": "c"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "n",
                                                        "labels": {"app": "web"}},
         "spec": {"containers": [{"name": "c", "readinessProbe": {}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
         "spec": {"type": "NodePort", "selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
    ])
    return cluster


def test_every_value_placeholder(fake: FakeCluster) -> None:
    r = Resolver(fake, host_ip="172.30.0.1")
    pod_a = fake.get("Pod", "n", "a")[0]
    ip = pod_a["status"]["podIP"]
    svc = fake.get("Service", "n", "s")[0]["spec"]
    assert r.text("{{podIP n/a}}") == ip
    assert r.text("{{podIPDashed n/a}}") == ip.replace(".", "-")
    assert r.text("{{podNet n/a 16}}") == "10.244.0.0/16"
    assert r.text("http://{{clusterIP n/s}}:80/") == f"http://{svc['clusterIP']}:80/"
    last = svc["clusterIP"].split(".")[-1]
    assert r.text("{{clusterIPArpa n/s}}") == f"{last}.0.96.10.in-addr.arpa."
    assert r.text("{{nodePort n/s http}}") == str(svc["ports"][0]["nodePort"])
    node_ip = {"kind-worker": "172.30.0.3", "kind-worker2": "172.30.0.4"}[pod_a["spec"]["nodeName"]]
    assert r.text("{{nodeIP n/a}}") == node_ip
    assert r.text("{{hostIP}}") == "172.30.0.1"


def test_pod_ips_expand_in_lists_to_ready_pods_only(fake: FakeCluster) -> None:
    r = Resolver(fake)
    ip_a = fake.get("Pod", "n", "a")[0]["status"]["podIP"]
    assert r.resolve({"answers": ["1.2.3.4", "{{podIPs n app=web}}"]}) == {
        "answers": ["1.2.3.4", ip_a]}  # b is not Ready
    with pytest.raises(PlaceholderError, match="whole list item"):
        r.text("x {{podIPs n app=web}}")


def test_node_ip_star_fans_out_over_ready_nodes(fake: FakeCluster) -> None:
    r = Resolver(fake)
    probe = {"to": "{{nodeIP *}}:{{nodePort n/s http}}"}
    assert uses_fanout([probe]) and not uses_fanout({"to": "{{nodeIP n/a}}"})
    assert r.fanout() == ["172.30.0.2", "172.30.0.3", "172.30.0.4"]
    assert r.resolve(probe, star="172.30.0.3")["to"].startswith("172.30.0.3:30")
    with pytest.raises(PlaceholderError):
        r.text("{{nodeIP *}}")


def test_missing_objects_and_sources_say_what_is_missing(fake: FakeCluster) -> None:
    r = Resolver(fake)
    with pytest.raises(PlaceholderError, match="Service n/nope does not exist"):
        r.text("{{clusterIP n/nope}}")
    with pytest.raises(PlaceholderError, match="no port named 'web'"):
        r.text("{{nodePort n/s web}}")
    with pytest.raises(NoHostSource):
        r.text("{{hostIP}}")


def test_tls_pairs_are_made_once_per_name(fake: FakeCluster) -> None:
    made: list[str] = []

    def maker(name: str) -> tuple[bytes, bytes]:
        made.append(name)
        return f"CERT {name}".encode(), f"KEY {name}".encode()

    r = Resolver(fake, TlsPairs(maker))
    cert = r.text("{{tlsCertB64 a.example}}")
    assert base64.b64decode(cert) == b"CERT a.example"
    assert base64.b64decode(r.text("{{tlsKeyB64 a.example}}")) == b"KEY a.example"
    assert r.text("{{tlsCertB64 a.example}}") == cert
    assert made == ["a.example"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl here")
def test_openssl_makes_a_self_signed_certificate_for_the_name(tmp_path: object) -> None:
    cert, key = openssl_pair("secure.example.com")
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE KEY" in key
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=cert,
                          capture_output=True, check=True).stdout.decode()
    assert "DNS:secure.example.com" in text and "CN = secure.example.com" in text
