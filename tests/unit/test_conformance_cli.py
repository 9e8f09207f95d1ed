"""``lab conformance``: flags, output, exit codes (on the in-memory cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_conformance_fake import FakeClock, FakeCluster

from clusters import ClusterNotFound, ClusterProfile
from grader.conformance import runner as runner_mod
from labs.cli import conformance_cmd

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"
SERVICES = str(ACCEPTANCE / "services.yaml")
DNS = str(ACCEPTANCE / "dns.yaml")


class FakeEngine:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.created: list[tuple[str, ClusterProfile]] = []

    def create(self, name: str, profile: ClusterProfile, report: Any = None) -> FakeCluster:
        self.created.append((name, profile))
        return self.cluster


class Harness:
    """Sessions handing out one fake cluster (or none running, then created on demand)."""

    def __init__(self, cluster: FakeCluster, running: bool = True) -> None:
        self.engine = FakeEngine(cluster)
        self.running = running
        harness = self

        class FakeSession:
            def __init__(self, engine: str | None = None, cluster: str | None = None) -> None:
                self.cluster_name = cluster or "netlab"

            def cluster(self) -> FakeCluster:
                if not harness.running:
                    raise ClusterNotFound("cluster netlab is not running")
                return harness.engine.cluster

            def choice(self) -> Any:
                from clusters.selection import Choice
                return Choice("fake", "chosen by a test")

            def engine(self) -> FakeEngine:
                return harness.engine

        self.session = FakeSession


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake_clock = FakeClock()
    monkeypatch.setattr(runner_mod, "time", fake_clock)
    return fake_clock


def lab(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster, *args: str,
        running: bool = True) -> tuple[Result, Harness]:
    harness = Harness(cluster, running)
    monkeypatch.setattr(conformance_cmd, "Session", harness.session)
    result = CliRunner().invoke(conformance_cmd.conformance_cmd, list(args))
    return result, harness


def test_passing_cases_exit_0_with_a_line_per_case_and_step(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    result, _ = lab(monkeypatch, FakeCluster(clock=clock), SERVICES, "--cases", "S2,S6")
    assert result.exit_code == 0, result.output
    assert "PASS S2  a Service without endpoints rejects connections" in result.stdout
    assert "PASS step 2: requests" in result.stdout
    assert "2 passed, 0 failed, 0 not applicable, of 2 case(s)" in result.stdout


def test_a_failing_case_exits_1_and_says_expected_vs_observed(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    result, _ = lab(monkeypatch, FakeCluster(["no-reject"], clock=clock), SERVICES,
                    "--cases", "S2")
    assert result.exit_code == 1
    assert "FAIL S2" in result.stdout
    assert "outcome: expected every request refused" in result.stdout
    assert "observed 3x connected" in result.stdout


def test_json_report_shape(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    cluster = FakeCluster(["dns-not-ready"], clock=clock)
    result, _ = lab(monkeypatch, cluster, SERVICES, DNS, "--cases", "S2,D4", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["summary"] == {"total": 2, "passed": 1, "failed": 1, "not_applicable": 0}
    assert data["passed"] is False
    assert [f["suite"] for f in data["files"]] == ["services", "dns"]
    d4 = data["files"][1]["cases"][0]
    assert (d4["id"], d4["status"]) == ("D4", "fail")
    check = d4["steps"][0]["runs"][0]["checks"][0]
    assert set(check) == {"key", "ok", "expected", "observed"} and check["ok"] is False
    assert d4["steps"][0]["runs"][0]["data"]["observation"]["outcome"] == "CONNECTED"


def test_not_applicable_cases_do_not_fail_the_run(monkeypatch: pytest.MonkeyPatch,
                                                 clock: FakeClock) -> None:
    from clusters.engine import Capabilities

    cluster = FakeCluster(caps=Capabilities(services=True, dns=False), clock=clock)
    result, _ = lab(monkeypatch, cluster, DNS, "--cases", "D1")
    assert result.exit_code == 0
    assert "N/A  D1" in result.stdout and "no cluster DNS" in result.stdout


def test_bad_files_and_unknown_cases_exit_2(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SERVICES).read_text().replace("requests: {from: svc/client-far, to: "
                                                      "'{{clusterIP svc/no-endpoints",
                                                      "requets: {from: svc/client-far, to: "
                                                      "'{{clusterIP svc/no-endpoints"))
    cluster = FakeCluster()
    result, _ = lab(monkeypatch, cluster, str(bad))
    assert result.exit_code == 2
    assert "bad.yaml:157: cases[1].steps[0].probe: unknown probe kind 'requets'" in result.stderr
    result, _ = lab(monkeypatch, cluster, SERVICES, "--cases", "S9")
    assert result.exit_code == 2 and "no case S9" in result.stderr
    assert not cluster.applied


def test_a_taken_namespace_exits_2_and_says_how_to_proceed(monkeypatch: pytest.MonkeyPatch,
                                                          clock: FakeClock) -> None:
    cluster = FakeCluster(clock=clock)
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "svc"}}])
    result, _ = lab(monkeypatch, cluster, SERVICES)
    assert result.exit_code == 2
    assert "svc already exist" in result.stderr and "--cluster" in result.stderr


def test_without_a_running_cluster_the_default_one_is_started(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    result, harness = lab(monkeypatch, FakeCluster(clock=clock), SERVICES, "--cases", "S2",
                          running=False)
    assert result.exit_code == 0
    assert harness.engine.created == [("netlab", ClusterProfile())]


def test_keep_fixture_leaves_the_namespaces(monkeypatch: pytest.MonkeyPatch,
                                           clock: FakeClock) -> None:
    cluster = FakeCluster(clock=clock)
    result, _ = lab(monkeypatch, cluster, SERVICES, "--cases", "S2", "--keep-fixture")
    assert result.exit_code == 0
    assert cluster.has("Namespace", None, "svc")


def test_help_documents_the_contract() -> None:
    text = CliRunner().invoke(conformance_cmd.conformance_cmd, ["--help"]).output
    for words in ("--cases", "--json", "--keep-fixture", "--engine", "--cluster",
                  "N/A cases do not fail the run", "Ctrl-C", "not made by `lab conformance`"):
        assert words in text
