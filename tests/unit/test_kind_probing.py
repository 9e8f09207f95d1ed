"""Probes on kind start where they say: pods through the API, the host from this machine."""

from __future__ import annotations

import socket
import threading

from clusters.kind.probing import KindProber
from clusters.probing import Observation, Outcome, ProbeSpec, Source


def never(spec: ProbeSpec) -> Observation:
    raise AssertionError(f"not this way: {spec.describe()}")


def test_pod_sources_go_to_the_pod_prober() -> None:
    seen: list[ProbeSpec] = []

    def pods(spec: ProbeSpec) -> Observation:
        seen.append(spec)
        return Observation(Outcome.CONNECTED)

    spec = ProbeSpec("tcp", Source("lab01", "client"), "10.244.1.5", 8080)
    assert KindProber(pods, system="Linux", host=never)(spec).connected
    assert seen == [spec]


def test_the_host_source_connects_from_this_machine_on_linux() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = threading.Thread(target=lambda: server.accept()[0].close())
    accepted.start()
    try:
        seen = KindProber(never, system="Linux")(ProbeSpec("tcp", Source(), "127.0.0.1", port))
    finally:
        accepted.join(5)
        server.close()
    assert seen.outcome is Outcome.CONNECTED, seen


def test_host_probes_off_linux_and_node_probes_say_why_they_cannot_run() -> None:
    mac = KindProber(never, system="Darwin", host=never)(
        ProbeSpec("http", Source(), "172.18.0.3", 30080))
    assert mac.outcome is Outcome.UNSUPPORTED and "inside Docker's VM" in mac.detail
    node = KindProber(never, system="Linux", host=never)(
        ProbeSpec("tcp", Source(node="knl-worker"), "10.96.0.10", 53))
    assert node.outcome is Outcome.UNSUPPORTED and "from node knl-worker" in node.detail
