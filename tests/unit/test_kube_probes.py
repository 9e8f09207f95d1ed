"""KubeProber: which commands a probe runs in the source pod's probe container, and the
observation it returns (same outcome names and meaning as the local engine)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from clusters.engine import ExecResult
from clusters.errors import CommandError, ObjectNotFound
from clusters.kube.podexec import ContainerUnavailable
from clusters.kube.probes import KubeProber
from clusters.probing import Outcome, ProbeSpec, Source

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
SRC = Source("lab", "client")


class PodApi:
    """One source pod; its probe container runs (or is added and runs at once)."""

    def __init__(self, exists: bool = True, has_probe: bool = True) -> None:
        self.exists = exists
        self.ephemeral: list[dict[str, Any]] = (
            [{"name": "netlab-probe", "image": IMAGE}] if has_probe else [])
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, content_type: str = "application/json",
                timeout: float = 30) -> Any:
        self.calls.append((method, path))
        if not self.exists:
            raise ObjectNotFound("pods client not found")
        if method == "PATCH":
            self.ephemeral += body["spec"]["ephemeralContainers"]
        return {"metadata": {"name": "client", "uid": "u1"},
                "spec": {"containers": [{"name": "app"}], "ephemeralContainers": self.ephemeral},
                "status": {"phase": "Running", "ephemeralContainerStatuses": [
                    {"name": c["name"], "state": {"running": {}}} for c in self.ephemeral]}}


Answer = ExecResult | Exception


class FakeExec:
    """``exec_fn``: answers by the command's first words, in order; records every call."""

    def __init__(self, answers: list[tuple[str, Answer]]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, api: Any, namespace: str, pod: str, argv: list[str], *,
                 container: str | None = None, timeout: float | None = None) -> ExecResult:
        self.calls.append({"ns": namespace, "pod": pod, "argv": argv, "container": container,
                           "timeout": timeout})
        assert self.answers, f"no answer scripted for {argv}"
        prefix, answer = self.answers.pop(0)
        assert " ".join(argv).startswith(prefix), f"{argv} does not start with {prefix!r}"
        if isinstance(answer, Exception):
            raise answer
        return ExecResult(answer.returncode, answer.stdout, answer.stderr, tuple(argv))


def prober(answers: list[tuple[str, Answer]], api: PodApi | None = None) -> tuple[KubeProber,
                                                                                   FakeExec]:
    fake = FakeExec(answers)
    return KubeProber(api or PodApi(), image=IMAGE, ready_timeout=5, exec_fn=fake), fake


def spec(kind: str, **kw: Any) -> ProbeSpec:
    base: dict[str, Any] = {"kind": kind, "source": SRC, "target": "10.244.2.7", "port": 8080,
                            "timeout": 1.0}
    base.update(kw)
    return ProbeSpec(**base)


def ok(stdout: str = "", stderr: str = "", rc: int = 0) -> ExecResult:
    return ExecResult(rc, stdout, stderr)


# ---------------------------------------------------------------- sources this prober refuses


@pytest.mark.parametrize(("source", "words"), [
    (Source(node="kind-worker"), "node kind-worker"), (Source(), "outside the cluster")])
def test_node_and_host_sources_are_for_the_engine(source: Source, words: str) -> None:
    probe, fake = prober([])
    obs = probe(spec("tcp", source=source))
    assert obs.outcome is Outcome.UNSUPPORTED and words in obs.detail
    assert fake.calls == []


def test_a_port_is_needed() -> None:
    probe, _ = prober([])
    with pytest.raises(ValueError, match="needs a port"):
        probe(spec("udp", port=None))


# ---------------------------------------------------------------- tcp


def test_tcp_runs_agnhost_connect_in_the_probe_container() -> None:
    probe, fake = prober([("/agnhost connect", ok())])
    obs = probe(spec("tcp"))
    assert (obs.outcome, obs.peer) == (Outcome.CONNECTED, "10.244.2.7:8080")
    (call,) = fake.calls
    assert call["argv"] == ["/agnhost", "connect", "--timeout=1000ms", "--protocol=tcp",
                            "10.244.2.7:8080"]
    assert (call["ns"], call["pod"], call["container"]) == ("lab", "client", "netlab-probe")
    assert call["timeout"] and call["timeout"] > 2.0
    assert obs.elapsed >= 0


@pytest.mark.parametrize(("stderr", "outcome"), [
    ("REFUSED\n", Outcome.REFUSED), ("TIMEOUT\n", Outcome.TIMEOUT),
    ("DNS: lookup db on 10.96.0.10:53: no such host\n", Outcome.DNS_ERROR),
    ("OTHER: dial tcp 10.244.2.7:8080: connect: no route to host\n", Outcome.UNREACHABLE),
])
def test_tcp_failures(stderr: str, outcome: Outcome) -> None:
    probe, _ = prober([("/agnhost connect", ok(stderr=stderr, rc=1))])
    assert probe(spec("tcp")).outcome is outcome


def test_tcp_to_a_name_has_no_guessed_peer() -> None:
    probe, _ = prober([("/agnhost connect --timeout=1000ms --protocol=tcp db:5432", ok())])
    obs = probe(spec("tcp", target="db", port=5432))
    assert obs.connected and obs.peer is None


# ---------------------------------------------------------------- udp


def test_udp_reply_text_comes_from_nc() -> None:
    probe, fake = prober([("/bin/sh -c", ok("server"))])
    obs = probe(spec("udp", port=8081))
    assert (obs.outcome, obs.body) == (Outcome.CONNECTED, "server")
    assert fake.calls[0]["argv"][4:] == ["hostname", "1", "10.244.2.7", "8081"]


@pytest.mark.parametrize(("stderr", "outcome"), [
    ("REFUSED: read udp 10.244.1.5:3->10.244.2.7:8081: read: connection refused\n",
     Outcome.REFUSED),
    ("TIMEOUT: read udp 10.244.1.5:3->10.244.2.7:8081: i/o timeout\n", Outcome.TIMEOUT),
])
def test_udp_silence_is_classified_by_agnhost(stderr: str, outcome: Outcome) -> None:
    probe, fake = prober([("/bin/sh -c", ok()), ("/agnhost connect", ok(stderr=stderr, rc=1))])
    assert probe(spec("udp", port=8081, payload="echo hi")).outcome is outcome
    assert fake.calls[1]["argv"] == ["/agnhost", "connect", "--timeout=1000ms", "--protocol=udp",
                                     "--udp-data=echo hi", "10.244.2.7:8081"]


def test_udp_second_datagram_answered_is_connected_and_says_so() -> None:
    probe, _ = prober([("/bin/sh -c", ok()), ("/agnhost connect", ok())])
    obs = probe(spec("udp", port=8081))
    assert obs.outcome is Outcome.CONNECTED and obs.body is None
    assert "second one did" in obs.detail


def test_udp_without_nc_still_classifies() -> None:
    probe, _ = prober([("/bin/sh -c", ok(stderr="/bin/sh: nc: not found\n", rc=127)),
                       ("/agnhost connect", ok())])
    obs = probe(spec("udp", port=8081))
    assert obs.connected and "nc is missing" in obs.detail


# ---------------------------------------------------------------- http


def test_http_status_and_body() -> None:
    out = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\napi-1a\n@@netlab-curl@@ 200 10.96.3.4 80"
    probe, fake = prober([("curl --silent", ok(out))])
    obs = probe(spec("http", target="10.96.3.4", port=80, path="/hostname"))
    assert (obs.outcome, obs.status, obs.body, obs.peer) == (
        Outcome.CONNECTED, 200, "api-1a", "10.96.3.4:80")
    assert obs.summary() == "CONNECTED (HTTP 200)"
    assert fake.calls[0]["argv"][-1] == "http://10.96.3.4:80/hostname"


def test_http_connect_failure_without_errno_asks_agnhost() -> None:
    said = "curl: (7) Failed to connect to 10.96.3.4 port 80 after 1 ms: Couldn't connect to server"
    probe, fake = prober([("curl", ok("\n@@netlab-curl@@ 000  0", said, 7)),
                          ("/agnhost connect", ok(stderr="REFUSED\n", rc=1))])
    obs = probe(spec("http", target="10.96.3.4", port=80))
    assert obs.outcome is Outcome.REFUSED and "Couldn't connect" in obs.detail
    assert fake.calls[1]["argv"][-1] == "10.96.3.4:80"


def test_http_tries_that_disagree_are_an_error_not_a_pass() -> None:
    said = "curl: (7) Failed to connect to 10.96.3.4 port 80 after 1 ms: Couldn't connect to server"
    probe, _ = prober([("curl", ok("\n@@netlab-curl@@ 000  0", said, 7)),
                       ("/agnhost connect", ok())])
    obs = probe(spec("http", target="10.96.3.4", port=80))
    assert obs.outcome is Outcome.ERROR and "changed between the two tries" in obs.detail


# ---------------------------------------------------------------- dns and ping


def test_dns_probe_through_dig() -> None:
    out = (";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; QUESTION SECTION:\n"
           ";api.lab.svc.cluster.local.\tIN\tA\n\n;; ANSWER SECTION:\n"
           "api.lab.svc.cluster.local. 30\tIN\tA\t10.96.3.4\n\n"
           ";; SERVER: 10.96.0.10#53(10.96.0.10) (UDP)\n")
    probe, fake = prober([("dig", ok(out))])
    obs = probe(spec("dns", target="api", port=None, search=True))
    assert obs.outcome is Outcome.CONNECTED
    assert obs.extra["records"] == [{"name": "api.lab.svc.cluster.local.", "type": "A", "ttl": 30,
                                     "data": "10.96.3.4"}]
    assert "+search" in fake.calls[0]["argv"]


def test_dns_bad_server_is_an_error_without_exec() -> None:
    probe, fake = prober([])
    obs = probe(spec("dns", target="api", port=None, dns_server="kube-dns"))
    assert obs.outcome is Outcome.ERROR and "no usable DNS server" in obs.detail
    assert fake.calls == []


def test_ping_reply() -> None:
    probe, fake = prober([("ping -c 1", ok("64 bytes from 10.244.2.7: seq=0 ttl=63 time=0.1 ms\n"
                                           "1 packets transmitted, 1 packets received\n"))])
    assert probe(spec("ping", port=None)).outcome is Outcome.CONNECTED
    assert fake.calls[0]["argv"] == ["ping", "-c", "1", "-W", "1", "10.244.2.7"]


# ---------------------------------------------------------------- exec failures


def test_a_tool_missing_from_the_image_is_unsupported() -> None:
    missing = CommandError(["dig"], None, reason='OCI runtime exec failed: exec failed: unable to '
                           'start container process: exec: "dig": executable file not found in '
                           "$PATH: unknown")
    probe, _ = prober([("dig", missing)])
    obs = probe(spec("dns", target="api", port=None))
    assert obs.outcome is Outcome.UNSUPPORTED and "has no dig" in obs.detail


def test_ping_missing_is_unsupported() -> None:
    probe, _ = prober([("ping", ok(stderr="sh: ping: not found\n", rc=127))])
    assert probe(spec("ping", port=None)).outcome is Outcome.UNSUPPORTED


def test_exec_that_does_not_finish_is_an_error() -> None:
    stuck = CommandError(["/agnhost"], None, reason="no answer within 17s")
    probe, _ = prober([("/agnhost", stuck)])
    obs = probe(spec("tcp"))
    assert obs.outcome is Outcome.ERROR and "no answer within 17s" in obs.detail


def test_vanished_probe_container_is_added_again_once() -> None:
    api = PodApi()
    probe, fake = prober([("/agnhost", ok())], api)
    assert probe(spec("tcp")).connected  # the container is now cached
    gets = [c for c in api.calls if c[0] == "GET"]
    fake.answers = [("/agnhost", ContainerUnavailable("container netlab-probe is not running")),
                    ("/agnhost", ok(stderr="REFUSED\n", rc=1))]
    assert probe(spec("tcp")).outcome is Outcome.REFUSED
    assert len([c for c in api.calls if c[0] == "GET"]) > len(gets)


def test_container_that_stays_unavailable_is_an_error() -> None:
    gone = ContainerUnavailable("container netlab-probe of pod lab/client is not running")
    probe, _ = prober([("/agnhost", gone), ("/agnhost", gone)])
    obs = probe(spec("tcp"))
    assert obs.outcome is Outcome.ERROR and "not running" in obs.detail


def test_missing_source_pod_is_an_error() -> None:
    probe, fake = prober([], PodApi(exists=False))
    obs = probe(spec("tcp"))
    assert obs.outcome is Outcome.ERROR and obs.detail == "source lab/client: pod lab/client not found"
    assert fake.calls == []


def test_first_probe_adds_the_container() -> None:
    api = PodApi(has_probe=False)
    probe, _ = prober([("/agnhost", ok())], api)
    assert probe(spec("tcp")).connected
    assert ("PATCH", "/api/v1/namespaces/lab/pods/client/ephemeralcontainers") in api.calls


def test_observations_serialise() -> None:
    probe, _ = prober([("/agnhost", ok(stderr="TIMEOUT\n", rc=1))])
    data: Callable[[], dict[str, Any]] = probe(spec("tcp")).to_dict
    assert json.loads(json.dumps(data()))["outcome"] == "TIMEOUT"
