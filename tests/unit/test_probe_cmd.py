"""``lab probe``: parsing, output, JSON and exit codes, against a scripted cluster.

The command group is invoked directly with click's CliRunner; ``Session.cluster`` is
replaced by the scripted cluster (the seam every cluster command goes through).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_matrix_fakes import ScriptedCluster, pod, service

from clusters.probing import Observation, Outcome
from labs.cli.probe_cmd import probe, split_host_port, split_url
from labs.progress import Progress
from labs.session import Session

PODS = [pod("lab01", "client", "10.244.1.4", app="client"),
        pod("lab01", "server", "10.244.2.5", ports=[8080, (5353, "UDP")], app="server"),
        pod("kube-system", "coredns-1", "10.244.0.3", ports=[53], app="kube-dns"),
        pod("team", "x", "10.244.2.9")]
WEB = "web.lab01.svc.cluster.local"


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Install a scripted cluster as the one every ``lab probe`` command connects to."""
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("LAB_ENGINE", raising=False)

    def install(script: dict[tuple[str, str], list[Any]] | None = None,
                objects: list[dict[str, Any]] | None = None,
                default: Any = Outcome.CONNECTED) -> ScriptedCluster:
        cluster = ScriptedCluster(PODS if objects is None else objects, script, default)
        monkeypatch.setattr(Session, "cluster", lambda self: cluster)
        return cluster

    return install


def run(*args: str) -> Result:
    return CliRunner().invoke(probe, list(args))


def test_tcp_connected_exits_zero_with_one_line(use: Any) -> None:
    cluster = use({("lab01/client", "10.244.2.5:8080"): [
        Observation(Outcome.CONNECTED, peer="10.244.2.5:8080", elapsed=0.003)]})
    ran = run("tcp", "--from", "lab01/client", "10.244.2.5:8080")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout == "CONNECTED  tcp lab01/client -> 10.244.2.5:8080  (3 ms)\n"
    assert cluster.probes[0].timeout == 2.0


def test_tcp_to_a_pod_reference_dials_its_ip_and_failure_exits_one(use: Any) -> None:
    cluster = use({("lab01/client", "10.244.2.5:8080"): [
        Observation(Outcome.TIMEOUT, "no answer", elapsed=0.5)]})
    ran = run("tcp", "--from", "lab01/client", "lab01/server:8080", "--timeout", "0.5")
    assert ran.exit_code == 1
    assert ran.stdout.startswith("TIMEOUT  tcp lab01/client -> 10.244.2.5:8080  (no answer; 500 ms)")
    assert cluster.probes[0].timeout == 0.5


def test_names_are_passed_to_the_engine_to_resolve_and_the_peer_is_shown(use: Any) -> None:
    use({("lab01/client", f"{WEB}:80"): [Observation(Outcome.CONNECTED, peer="10.96.0.7:80")]})
    ran = run("tcp", "--from", "lab01/client", f"{WEB}:80")
    assert ran.exit_code == 0
    assert "peer 10.96.0.7:80" in ran.stdout


def test_udp_json_carries_the_probe_and_the_observation(use: Any) -> None:
    use({("host", "10.244.2.5:5353"): [Observation(Outcome.CONNECTED, body="server",
                                                   peer="10.244.2.5:5353")]})
    ran = run("udp", "--from", "host", "10.244.2.5:5353", "--payload", "hi", "--json")
    assert ran.exit_code == 0
    data = json.loads(ran.stdout)
    assert data["ok"] is True
    assert data["probe"] == {"kind": "udp", "source": "host", "target": "10.244.2.5",
                             "port": 5353, "timeout": 2.0, "payload": "hi"}
    assert data["observation"]["outcome"] == "CONNECTED"
    assert data["observation"]["body"] == "server"


def test_http_shows_status_and_the_body_trimmed(use: Any) -> None:
    body = "".join(f"line {i}\n" for i in range(30))
    cluster = use({("lab01/client", "10.244.2.5:8080"): [
        Observation(Outcome.CONNECTED, status=404, body=body, elapsed=0.01)]})
    ran = run("http", "--from", "lab01/client", "10.244.2.5:8080/hostname?x=1",
              "--host-header", "web.example", "--method", "head")
    assert ran.exit_code == 0
    lines = ran.stdout.splitlines()
    assert lines[0] == ("CONNECTED HTTP 404  http lab01/client -> "
                        "http://10.244.2.5:8080/hostname?x=1  (10 ms)")
    assert lines[1] == "  | line 0" and lines[20] == "  | line 19"
    assert lines[21] == f"  | ... ({len(body)} characters in all)"
    spec = cluster.probes[0]
    assert (spec.path, spec.host_header, spec.method) == ("/hostname?x=1", "web.example", "HEAD")


def test_dns_prints_the_answer_section_like_dig(use: Any) -> None:
    srv = {"priority": 0, "weight": 100, "port": 80, "target": WEB + "."}
    cluster = use({("lab01/client", "_http._tcp." + WEB): [Observation(
        Outcome.CONNECTED, elapsed=0.002, extra={
            "rcode": "NOERROR", "qname": "_http._tcp." + WEB + ".",
            "records": [{"name": "_http._tcp." + WEB + ".", "type": "SRV", "ttl": 5,
                         "data": srv}]})]})
    ran = run("dns", "--from", "lab01/client", "_http._tcp." + WEB, "--type", "srv", "--tcp",
              "--search", "--server", "10.96.0.10")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.splitlines() == [
        f"NOERROR  dns lab01/client -> _http._tcp.{WEB} SRV/tcp @10.96.0.10  (2 ms)",
        f";; ANSWER SECTION (_http._tcp.{WEB}.):",
        f"_http._tcp.{WEB}.      5  IN  SRV    0 100 80 {WEB}.",
    ]
    spec = cluster.probes[0]
    assert (spec.qtype, spec.transport, spec.search, spec.dns_server) == (
        "SRV", "tcp", True, "10.96.0.10")


@pytest.mark.parametrize(("extra", "first"), [
    ({"rcode": "NXDOMAIN", "qname": WEB + ".", "records": []}, "NXDOMAIN"),
    ({"rcode": "NOERROR", "qname": WEB + ".", "records": []}, "NOERROR"),
])
def test_dns_without_answers_exits_one(use: Any, extra: dict[str, Any], first: str) -> None:
    use({("lab01/client", WEB): [Observation(Outcome.CONNECTED, extra=extra)]})
    ran = run("dns", "--from", "lab01/client", WEB)
    assert ran.exit_code == 1
    assert ran.stdout.split()[0] == first
    assert f";; no answer records for {WEB}." in ran.stdout
    data = json.loads(run("dns", "--from", "lab01/client", WEB, "--json").stdout)
    assert data["ok"] is False and data["observation"]["extra"]["rcode"] == first


def test_dns_timeout_exits_one(use: Any) -> None:
    use({("lab01/client", WEB): [Observation(Outcome.TIMEOUT, elapsed=2.0)]})
    ran = run("dns", "--from", "lab01/client", WEB)
    assert ran.exit_code == 1 and ran.stdout.startswith("TIMEOUT  dns lab01/client")


@pytest.mark.parametrize(("args", "message"), [
    (["tcp", "--from", "lab01/ghost", "10.0.0.1:80"],
     "no pod lab01/ghost (pods there: client, server)"),
    (["tcp", "--from", "nowhere/x", "10.0.0.1:80"], "namespace nowhere has no pods"),
    (["tcp", "--from", "lab01/client", "10.0.0.1"], "give the target as HOST:PORT"),
    (["tcp", "--from", "lab01/client", "10.0.0.1:0"], "from 1 to 65535"),
    (["udp", "--from", "lab01/client", "10.0.0.1:http"], "from 1 to 65535"),
    (["tcp", "--from", "lab01/client", "lab01/ghost:80"], "target lab01/ghost: no pod"),
    (["http", "--from", "host", "https://10.0.0.1/"], "only http://"),
    (["http", "--from", "host", "10.0.0.1:99999/"], "from 1 to 65535"),
    (["dns", "--from", "host", WEB, "--server", "kube-dns"], "give an IP address"),
    (["dns", "--from", "host", "a..b"], "is not a DNS name"),
    (["dns", "--from", "host", WEB, "--type", "MX"], "'MX' is not one of"),
    (["tcp", "10.0.0.1:80"], "Missing option '--from'"),
])
def test_bad_input_exits_two_with_a_clear_message(use: Any, args: list[str], message: str) -> None:
    cluster = use()
    ran = run(*args)
    assert ran.exit_code == 2, ran.output
    assert message in ran.output
    assert cluster.probes == []


def test_parsers() -> None:
    assert split_host_port("[fd00::1]:53") == ("fd00::1", 53)
    assert split_host_port("lab01/server:8080") == ("lab01/server", 8080)
    assert split_url("http://web:8080") == ("web", 8080, "/")
    assert split_url("web/a/b") == ("web", 80, "/a/b")


# --------------------------------------------------------------------------- matrix


def test_matrix_prints_a_table_per_port_protocol_and_via(use: Any) -> None:
    use({("lab01/client", "10.244.2.5:8080"): [Outcome.TIMEOUT]})
    ran = run("matrix", "-n", "lab01", "--ports", "8080", "--attempts", "1")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout == (
        "TCP/8080 via pod-ip\n"
        "              lab01/client  lab01/server\n"
        "lab01/client  -             X\n"
        "lab01/server  .             -\n"
        ". connected 1   X blocked 1 (TIMEOUT 1)   - self 2\n"
        "\n"
        "2 probes: 1 allowed, 1 blocked, 0 other; 2 cells not probed\n")
    assert "2 pods in lab01 (as asked); ports 8080; TCP; via pod-ip" in ran.stderr


def test_matrix_json_and_comma_lists(use: Any) -> None:
    objects = [*PODS, service("lab01", "web", {"app": "server"}, [{"port": 80, "targetPort": 8080}],
                              cluster_ip="10.96.0.7")]
    cluster = use(objects=objects)
    ran = run("matrix", "--namespaces", "lab01", "-p", "8080", "--via", "pod-ip,service-ip",
              "--via", "service-name", "--protocols", "tcp", "--json")
    assert ran.exit_code == 0, ran.output
    data = json.loads(ran.stdout)
    assert data["via"] == ["pod-ip", "service-ip", "service-name"]
    targets = {c["target"] for c in data["cells"] if c["source"] == "lab01/client"
               and c["dest"] == "lab01/server"}
    assert targets == {"10.244.2.5:8080", "10.96.0.7:80", f"{WEB}:80"}
    assert data["summary"]["allowed"] == 4 and data["summary"]["not_probed"] == 2 * 3 + 2
    assert {s.target for s in cluster.probes} >= {"10.96.0.7", WEB}


def test_matrix_defaults_ports_to_the_declared_container_ports(use: Any) -> None:
    cluster = use()
    ran = run("matrix", "-n", "lab01", "--protocols", "tcp,udp", "--json")
    data = json.loads(ran.stdout)
    assert data["ports"] == [5353, 8080] and data["protocols"] == ["TCP", "UDP"]
    assert {(s.kind, s.port) for s in cluster.probes} == {
        ("tcp", 5353), ("tcp", 8080), ("udp", 5353), ("udp", 8080)}


def test_matrix_default_namespaces_are_the_started_labs(use: Any, tmp_path: Path) -> None:
    use(objects=[*PODS, pod("lab01", "other", "10.244.1.7")])
    Progress(tmp_path / "ws" / ".progress.json").mark_started("01", "local", "netlab")
    data = json.loads(run("matrix", "-p", "80", "--json").stdout)
    assert data["sources"] == ["lab01/client", "lab01/other", "lab01/server"]


def test_matrix_default_namespaces_leave_system_ones_out(use: Any) -> None:
    use()
    ran = run("matrix", "-p", "80")
    assert ran.exit_code == 0
    assert "3 pods in lab01, team (every namespace with pods)" in ran.stderr
    assert "kube-system" not in ran.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--protocols", "sctp"], "protocol 'sctp'"),
    (["--ports", "80,x"], "port 'x'"),
    (["--ports", "0"], "from 1 to 65535"),
    (["--via", "node-ip"], "via 'node-ip'"),
    (["-n", "empty", "-p", "80"], "no running pods with an IP in empty"),
])
def test_matrix_bad_input_exits_two(use: Any, args: list[str], message: str) -> None:
    cluster = use()
    ran = run("matrix", *args)
    assert ran.exit_code == 2, ran.output
    assert message in ran.output and cluster.probes == []


def test_matrix_without_ports_anywhere_asks_for_them(use: Any) -> None:
    use(objects=[pod("lab01", "a", "10.244.1.2"), pod("lab01", "b", "10.244.1.3")])
    ran = run("matrix", "-n", "lab01")
    assert ran.exit_code == 2 and "declare no container ports: give --ports" in ran.output
