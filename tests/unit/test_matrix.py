"""grader.matrix: cells, retries, verdicts, Service lookup, rendering and JSON."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_matrix_fakes import ScriptedCluster, pod, service

from clusters.probing import Observation, Outcome, ProbeSpec
from grader.matrix import MatrixCell, MatrixPod, MatrixResult, matrix_pods, probe_matrix

PODS = [pod("lab", "a", "10.244.1.2", app="a"), pod("lab", "b", "10.244.1.3", app="web"),
        pod("lab", "c", "10.244.2.4", app="db")]


def members(cluster: ScriptedCluster, namespaces: tuple[str, ...] = ("lab",)) -> list[MatrixPod]:
    return matrix_pods(cluster, namespaces)


def test_every_pair_is_a_cell_and_self_is_not_probed() -> None:
    cluster = ScriptedCluster(PODS, {("lab/a", "10.244.2.4:80"): [Outcome.TIMEOUT]})
    result = probe_matrix(cluster, members(cluster), ports=[80])
    assert len(result.cells) == 9
    assert result.sources == result.destinations == ["lab/a", "lab/b", "lab/c"]
    blocked = result.cell("lab/a", "lab/c", 80)
    assert blocked.blocked and not blocked.allowed and blocked.outcome is Outcome.TIMEOUT
    assert blocked.attempts == 3 and blocked.target == "10.244.2.4:80"
    assert result.cell("lab/c", "lab/a", 80).allowed
    assert result.cell("lab/b", "lab/c", 80).attempts == 1  # stops at the first CONNECTED
    self_cell = result.cell("lab/b", "lab/b", 80)
    assert self_cell.outcome is None and self_cell.note == "self" and self_cell.attempts == 0
    ips = {f"lab/{p['metadata']['name']}": p["status"]["podIP"] for p in PODS}
    assert all(ips[str(s.source)] != s.target for s in cluster.probes)
    assert len(cluster.probes) == 5 + 3  # five cells connect at once, one takes three tries
    assert result.summary() == {"probed": 6, "allowed": 5, "blocked": 1, "other": 0,
                                "not_probed": 3}


def test_a_cell_connecting_on_the_third_attempt_is_allowed() -> None:
    script = {("lab/a", "10.244.1.3:80"): [Outcome.TIMEOUT, Outcome.REFUSED, Outcome.CONNECTED]}
    cluster = ScriptedCluster(PODS, script)
    cell = probe_matrix(cluster, members(cluster), ports=[80]).cell("lab/a", "lab/b", 80)
    assert cell.allowed and cell.attempts == 3 and cell.detail == ""


def test_fewer_attempts_than_needed_leave_the_cell_blocked() -> None:
    script = {("lab/a", "10.244.1.3:80"): [Outcome.TIMEOUT, Outcome.REFUSED, Outcome.CONNECTED]}
    cluster = ScriptedCluster(PODS, script)
    cell = probe_matrix(cluster, members(cluster), ports=[80], attempts=2).cell(
        "lab/a", "lab/b", 80)
    assert cell.blocked and cell.outcome is Outcome.REFUSED and cell.attempts == 2
    assert cell.detail == "refused"


@pytest.mark.parametrize(("steps", "outcome", "attempts"), [
    ([Outcome.TIMEOUT, Outcome.UNREACHABLE, Outcome.TIMEOUT], Outcome.UNREACHABLE, 3),
    ([Outcome.ERROR], Outcome.ERROR, 3),
    ([Outcome.DNS_ERROR, Outcome.TIMEOUT], Outcome.DNS_ERROR, 3),
    ([Outcome.UNSUPPORTED], Outcome.UNSUPPORTED, 1),  # cannot change: no retries
])
def test_other_outcomes_are_neither_allowed_nor_blocked(
        steps: list[Outcome], outcome: Outcome, attempts: int) -> None:
    cluster = ScriptedCluster(PODS, {("lab/a", "10.244.1.3:80"): steps})
    result = probe_matrix(cluster, members(cluster), ports=[80])
    cell = result.cell("lab/a", "lab/b", 80)
    assert cell.outcome is outcome and cell.attempts == attempts
    assert not cell.allowed and not cell.blocked
    assert result.summary()["other"] == 1


def test_mixed_refused_and_timeout_is_blocked() -> None:
    script = {("lab/a", "10.244.1.3:80"): [Outcome.REFUSED, Outcome.TIMEOUT, Outcome.REFUSED]}
    cluster = ScriptedCluster(PODS, script)
    cell = probe_matrix(cluster, members(cluster), ports=[80]).cell("lab/a", "lab/b", 80)
    assert cell.blocked and cell.outcome is Outcome.REFUSED


def test_cluster_errors_during_a_probe_become_error_cells() -> None:
    from clusters.errors import DaemonError

    class Failing(ScriptedCluster):
        def probe(self, spec: ProbeSpec) -> Observation:
            raise DaemonError("daemon went away")

    cluster = Failing(PODS)
    cell = probe_matrix(cluster, members(cluster), ports=[80]).cell("lab/a", "lab/b", 80)
    assert cell.outcome is Outcome.ERROR and "daemon went away" in cell.detail


def test_protocols_and_ports_make_separate_cells() -> None:
    cluster = ScriptedCluster(PODS, {("lab/a", "10.244.1.3:53"): [Outcome.TIMEOUT]})
    result = probe_matrix(cluster, members(cluster), ports=[80, 53], protocols=["tcp", "udp"])
    assert result.protocols == ["TCP", "UDP"] and result.ports == [80, 53]
    assert len(result.cells) == 9 * 4
    assert result.cell("lab/a", "lab/b", 53, "udp").blocked
    assert result.cell("lab/a", "lab/b", 80, "udp").allowed
    kinds = {s.kind for s in cluster.probes}
    assert kinds == {"tcp", "udp"}


def test_probes_run_in_parallel() -> None:
    """Two probes meet at a barrier: a sequential matrix would break it."""
    barrier = threading.Barrier(2, timeout=10)

    class Meeting(ScriptedCluster):
        def probe(self, spec: ProbeSpec) -> Observation:
            barrier.wait()
            return Observation(Outcome.CONNECTED)

    cluster = Meeting(PODS[:2])
    result = probe_matrix(cluster, members(cluster), ports=[80], workers=2)
    assert all(c.allowed for c in result.cells if c.note != "self")


def test_only_running_pods_with_an_ip_take_part() -> None:
    gone = pod("lab", "d", "10.244.1.9")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cluster = ScriptedCluster([*PODS, pod("lab", "p", None, phase="Pending"),
                               pod("lab", "q", "10.244.1.8", phase="Succeeded"), gone,
                               pod("other", "z", "10.244.2.9")])
    assert [p.label for p in members(cluster)] == ["lab/a", "lab/b", "lab/c"]
    assert [p.label for p in members(cluster, ("other", "lab"))] == [
        "lab/a", "lab/b", "lab/c", "other/z"]


# --------------------------------------------------------------------------- via Services


SERVICES = [
    service("lab", "web", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": 8080}],
            cluster_ip="10.96.0.7"),
    service("lab", "db", {"app": "db"}, [{"port": 5432, "protocol": "TCP"}], cluster_ip="None"),
    service("other", "web", {"app": "a"}, [{"port": 80}], cluster_ip="10.96.0.99"),
    service("lab", "alias", {}, [{"port": 80}], cluster_ip="", type="ExternalName"),
]


def test_service_ip_dials_the_clusterip_of_the_service_selecting_the_pod() -> None:
    cluster = ScriptedCluster([*PODS, *SERVICES])
    result = probe_matrix(cluster, members(cluster), ports=[80], via=["service-ip"])
    to_web = result.cell("lab/a", "lab/b", 80, via="service-ip")
    assert to_web.target == "10.96.0.7:80" and to_web.allowed and to_web.note == "Service web"
    to_a = result.cell("lab/b", "lab/a", 80, via="service-ip")  # only a Service in "other"
    assert to_a.outcome is None and to_a.attempts == 0
    assert to_a.note == "no Service in lab selects lab/a"
    to_db = result.cell("lab/a", "lab/c", 80, via="service-ip")
    assert to_db.outcome is None and "no Service with a ClusterIP" in to_db.note
    assert {s.target for s in cluster.probes} == {"10.96.0.7"}


def test_a_pod_port_finds_the_service_port_forwarding_to_it() -> None:
    cluster = ScriptedCluster([*PODS, *SERVICES])
    result = probe_matrix(cluster, members(cluster), ports=[8080], via=["service-ip"])
    cell = result.cell("lab/c", "lab/b", 8080, via="service-ip")
    assert cell.target == "10.96.0.7:80" and cell.note == "Service web port 80 -> 8080"


def test_service_name_dials_the_dns_name_and_headless_services_count() -> None:
    cluster = ScriptedCluster([*PODS, *SERVICES], {
        ("lab/a", "db.lab.svc.cluster.local:5432"): [Outcome.DNS_ERROR]})
    result = probe_matrix(cluster, members(cluster), ports=[80, 5432], via=["service-name"])
    assert result.cell("lab/a", "lab/b", 80, via="service-name").target == \
        "web.lab.svc.cluster.local:80"
    db = result.cell("lab/a", "lab/c", 5432, via="service-name")
    assert db.outcome is Outcome.DNS_ERROR and db.target == "db.lab.svc.cluster.local:5432"
    udp = probe_matrix(cluster, members(cluster), ports=[80], protocols=["udp"],
                       via=["service-name"]).cell("lab/a", "lab/b", 80, "UDP", "service-name")
    assert udp.outcome is None and "has UDP/80" in udp.note


def test_services_given_by_the_caller_are_used_as_is() -> None:
    cluster = ScriptedCluster(PODS)
    result = probe_matrix(cluster, members(cluster), ports=[80], via=["service-ip"],
                          services={"lab/b": "10.96.1.1"})
    assert result.cell("lab/a", "lab/b", 80, via="service-ip").target == "10.96.1.1:80"
    missing = result.cell("lab/a", "lab/c", 80, via="service-ip")
    assert missing.outcome is None and missing.note == "no Service given for lab/c"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ports": [0]}, "1 to 65535"),
    ({"ports": [70000]}, "1 to 65535"),
    ({"ports": [80], "protocols": ["sctp"]}, "protocol 'sctp'"),
    ({"ports": [80], "via": ["node-ip"]}, "via 'node-ip'"),
    ({"ports": []}, "at least one port"),
    ({"ports": [80], "attempts": 0}, "attempts"),
])
def test_bad_input_is_refused(kwargs: dict[str, object], message: str) -> None:
    cluster = ScriptedCluster(PODS)
    with pytest.raises(ValueError, match=message):
        probe_matrix(cluster, members(cluster), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output


def test_render_is_a_truth_table_with_a_legend_and_a_summary() -> None:
    cluster = ScriptedCluster(PODS, {("lab/a", "10.244.2.4:80"): [Outcome.TIMEOUT],
                                     ("lab/b", "10.244.2.4:80"): [Outcome.REFUSED],
                                     ("lab/c", "10.244.1.2:80"): [Outcome.UNREACHABLE]})
    text = probe_matrix(cluster, members(cluster), ports=[80]).render()
    assert text == (
        "TCP/80 via pod-ip\n"
        "       lab/a  lab/b  lab/c\n"
        "lab/a  -      .      X\n"
        "lab/b  .      -      X\n"
        "lab/c  U      .      -\n"
        ". connected 3   X blocked 2 (REFUSED 1, TIMEOUT 1)   U unreachable 1   - self 3\n"
        "\n"
        "6 probes: 3 allowed, 2 blocked, 1 other; 3 cells not probed\n"
    )


def test_render_details_list_each_cell_that_did_not_connect() -> None:
    cluster = ScriptedCluster([*PODS, *SERVICES], {("lab/a", "10.96.0.7:80"): [Outcome.TIMEOUT]})
    text = probe_matrix(cluster, members(cluster), ports=[80],
                        via=["service-ip"]).render(details=True)
    assert "  lab/a -> lab/b (10.96.0.7:80): TIMEOUT: Service web; timeout" in text
    assert "  lab/b -> lab/a: not probed: no Service in lab selects lab/a" in text
    assert "~ not probed 4" in text


def test_long_names_get_numbered_columns_and_a_key() -> None:
    long_pods = [pod("networking-lab", "frontend-7d9f", "10.244.1.2"),
                 pod("networking-lab", "backend-5c4b", "10.244.1.3")]
    cluster = ScriptedCluster(long_pods)
    text = probe_matrix(cluster, members(cluster, ("networking-lab",)), ports=[80]).render()
    lines = text.splitlines()
    assert lines[1].split() == ["1", "2"]
    assert lines[2].startswith("1 networking-lab/backend-5c4b") and lines[2].split()[-2:] == ["-", "."]
    assert lines[4] == "columns: 1 networking-lab/backend-5c4b, 2 networking-lab/frontend-7d9f"


def test_to_dict_is_json_with_every_cell() -> None:
    cluster = ScriptedCluster([*PODS, *SERVICES], {("lab/a", "10.244.2.4:80"): [Outcome.TIMEOUT]})
    result = probe_matrix(cluster, members(cluster), ports=[80], via=["pod-ip", "service-ip"])
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"ports", "protocols", "via", "sources", "destinations", "cells",
                         "summary"}
    assert data["via"] == ["pod-ip", "service-ip"] and data["protocols"] == ["TCP"]
    assert len(data["cells"]) == 18
    cell = next(c for c in data["cells"] if c["source"] == "lab/a" and c["dest"] == "lab/c"
                and c["via"] == "pod-ip")
    assert cell == {"source": "lab/a", "dest": "lab/c", "port": 80, "protocol": "TCP",
                    "via": "pod-ip", "target": "10.244.2.4:80", "outcome": "TIMEOUT",
                    "attempts": 3, "note": "", "detail": "timeout"}
    assert data["summary"] == result.summary()
    assert data["summary"]["not_probed"] == 3 + 3 + 4  # self cells twice, 4 without a Service


def test_cell_lookup_names_what_is_missing() -> None:
    result = MatrixResult([MatrixCell("a/x", "a/y", 80, "TCP", "pod-ip", "1.2.3.4:80",
                                      Outcome.CONNECTED, 1)])
    assert result.cell("a/x", "a/y", 80, "tcp").allowed
    with pytest.raises(KeyError, match="no cell a/y -> a/x TCP/80 via pod-ip"):
        result.cell("a/y", "a/x", 80)


def test_the_table_in_the_cli_reference_is_what_render_prints() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/reference/cli.md").read_text()
    start = page.index("```text\nTCP/80 via pod-ip\n") + len("```text\n")
    documented = page[start:page.index("```", start)]
    lab02 = [pod("lab02", "client", "10.244.1.2"), pod("lab02", "db", "10.244.2.4"),
             pod("lab02", "web", "10.244.1.3")]
    cluster = ScriptedCluster(lab02, {("lab02/client", "10.244.2.4:80"): [Outcome.TIMEOUT],
                                      ("lab02/web", "10.244.2.4:80"): [Outcome.TIMEOUT]})
    assert probe_matrix(cluster, members(cluster, ("lab02",)), ports=[80]).render() == documented
