"""Expectations, findings and the fixtures' helper classes, without pytester."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_grader_plugin import PODS, FakeCluster, pod

from clusters.errors import ObjectNotFound
from clusters.probing import Observation, Outcome, ProbeSpec, Source
from grader import CheckFailed, Finding, Pods, Prober, Workspace, check, expect_blocked, expect_reach
from grader.expectations import GENERIC_HINTS, pick_hint
from grader.fixtures import PodRef, parse_selector
from grader.report import file_hint


def prober(cluster: FakeCluster, namespaces: tuple[str, ...] = ("lab01",)) -> Prober:
    return Prober(cluster, Pods(cluster), settle_seconds=0.2, namespaces=namespaces)


def test_finding_text_reads_source_destination_expected_observed_hint() -> None:
    finding = Finding(source="client", destination="10.244.2.5:8080 (lab01/server)",
                      probe="http /hostname", expected='CONNECTED, body "server"',
                      observed="TIMEOUT after 1.0s", hint="Packets vanish.")
    assert str(finding) == (
        "  client → 10.244.2.5:8080 (lab01/server)   [http /hostname]\n"
        '  expected: CONNECTED, body "server"\n'
        "  observed: TIMEOUT after 1.0s\n"
        "  hint:     Packets vanish."
    )


def test_hint_lookup_order() -> None:
    hints = {"TIMEOUT": "dropped", "default": "something else"}
    assert pick_hint(hints, "TIMEOUT") == ("dropped", False)
    assert pick_hint(hints, "REFUSED") == ("something else", False)
    assert pick_hint(None, "REFUSED") == (GENERIC_HINTS["REFUSED"], True)
    assert pick_hint("always this", "UNSTABLE") == ("always this", False)


def test_hints_file_precedence() -> None:
    hints = {"test_x": {"TIMEOUT": "file timeout", "default": "file default"}}
    keys = ["test_x"]
    assert file_hint(hints, keys, "TIMEOUT", False, "check's own") == "file timeout"
    assert file_hint(hints, keys, "REFUSED", False, "check's own") == "check's own"
    assert file_hint(hints, keys, "REFUSED", True, "generic") == "file default"
    assert file_hint({}, keys, "REFUSED", True, "generic") == "generic"


def test_expect_reach_failure_carries_the_observations() -> None:
    cluster = FakeCluster(PODS, {"10.244.2.5": [Observation(Outcome.REFUSED, "connection "
                                                                             "refused")]})
    server = Pods(cluster).get("lab01/server")
    with pytest.raises(CheckFailed) as failed:
        expect_reach(prober(cluster), "client", server, 8080,
                     hints={"REFUSED": "Nothing listens on 8080."})
    finding = failed.value.finding
    assert finding.source == "client"
    assert finding.destination == "10.244.2.5:8080 (lab01/server)"
    assert finding.observed == "REFUSED: connection refused"
    assert finding.hint == "Nothing listens on 8080."
    assert all(o.outcome is Outcome.REFUSED for o in finding.observations)
    assert isinstance(failed.value, AssertionError)


def test_expect_blocked_passes_on_timeout_and_names_sources_fully_across_namespaces() -> None:
    cluster = FakeCluster(PODS, {"10.244.2.5": [Observation(Outcome.TIMEOUT, elapsed=1.0)]})
    settled = expect_blocked(prober(cluster, ("lab01", "other")), "lab01/client",
                             "10.244.2.5", 5432)
    assert settled.matched and settled.source == "lab01/client"
    assert cluster.probes[0].source == Source("lab01", "client")


def test_host_source_and_http_urls() -> None:
    ok = Observation(Outcome.CONNECTED, status=204, body="")
    cluster = FakeCluster(PODS, {"web.lab01": [ok]})
    settled = prober(cluster).http("host", "http://web.lab01:8080/healthz?x=1", status=204)
    assert settled.matched
    spec = cluster.probes[0]
    assert (spec.source.is_host, spec.target, spec.port, spec.path) == (
        True, "web.lab01", 8080, "/healthz?x=1")
    with pytest.raises(ValueError, match="only http://"):
        prober(cluster).http("host", "https://web.lab01/")


def test_pod_without_ip_fails_the_check() -> None:
    pending = PodRef("lab01", "server", None, None, False, phase="Pending")
    with pytest.raises(CheckFailed, match="no IP yet"):
        prober(FakeCluster(PODS)).tcp("client", pending, 80)


def test_check_raises_only_when_false() -> None:
    check(True, expected="anything")
    with pytest.raises(CheckFailed) as failed:
        check(False, expected="pods on different nodes", observed="both on worker")
    assert str(failed.value) == ("  expected: pods on different nodes\n"
                                 "  observed: both on worker")


def test_pods_lookup_by_label_and_terminating_pods_are_ignored() -> None:
    gone = pod("server-old", "10.244.2.9", "worker2", app="server")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    pods = Pods(FakeCluster([*PODS, gone]))
    assert [p.name for p in pods.by_label("lab01", "app=server")] == ["server"]
    server = pods.one("lab01", {"app": "server"})
    assert (server.ip, server.node, server.ready, server.phase) == (
        "10.244.2.5", "worker2", True, "Running")
    with pytest.raises(CheckFailed, match="a pod labelled app=db in lab01 exists"):
        pods.one("lab01", "app=db")
    with pytest.raises(CheckFailed, match="namespace empty has no pods"):
        pods.get("empty", "x")


def test_parse_selector() -> None:
    assert parse_selector("app=web, tier==front") == {"app": "web", "tier": "front"}
    with pytest.raises(ValueError):
        parse_selector("app")


def test_workspace_documents_are_read_only(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("kind: Service\nmetadata: {name: web}\nspec:\n  ports:\n"
                                    "  - port: 80\n")
    (tmp_path / "a.yaml").write_text("kind: Pod\nmetadata: {name: web, namespace: lab01}\n"
                                     "---\n# empty document\n")
    ws = Workspace.load(tmp_path)
    assert ws.sources == ("a.yaml", "b.yml")
    assert [d["kind"] for d in ws.documents] == ["Pod", "Service"]
    assert ws.find("Pod", namespace="lab01")[0]["metadata"]["name"] == "web"
    assert ws.find("Service", namespace="lab01") == []  # Service is in "default"
    assert ws.find("Service")[0]["spec"]["ports"][0]["port"] == 80
    with pytest.raises(TypeError):
        ws.documents[0]["kind"] = "Deployment"  # type: ignore[index]


class RaisingCluster(FakeCluster):
    """An engine whose probe raises ObjectNotFound for a missing source pod."""

    def probe(self, spec: ProbeSpec) -> Observation:
        if spec.source.pod is not None and not self.get("Pod", spec.source.namespace,
                                                         spec.source.pod):
            raise ObjectNotFound(f"pod {spec.source} not found")
        return super().probe(spec)


def test_missing_source_pod_fails_the_check_whichever_way_the_engine_says_it() -> None:
    for cluster in (FakeCluster(PODS), RaisingCluster(PODS)):
        with pytest.raises(CheckFailed) as failed:
            prober(cluster).tcp("ghost", "10.244.2.5", 80)
        assert failed.value.finding.expected == "pod lab01/ghost exists"
        assert "client (app=client), server (app=server)" in failed.value.finding.observed


def test_public_surface_is_exported() -> None:
    import grader

    assert sorted(grader.__all__) == sorted(
        ["BLOCKED", "GENERIC_HINTS", "CheckFailed", "Enforcement", "ExpectedMatrix", "Finding",
         "MatrixCell", "MatrixPod", "MatrixResult", "NetpolGrader", "PodRef", "Pods",
         "PolicyMatrix", "Prober", "Settled", "Want", "Workspace", "cells", "check",
         "expect_blocked", "expect_dns", "expect_reach", "expect_vs_observe", "probe_matrix",
         "prove_enforcement", "settle"])
    assert all(hasattr(grader, name) for name in grader.__all__)
