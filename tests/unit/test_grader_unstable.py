"""A flapping probe is reported as unstable, with its observations, never as a pass or a fail.

Driven like ``lab check`` drives the plugin (pytester, ``-p grader.plugin`` and the
``--lab-*`` options) against fake clusters whose probes follow a script: a settled probe
(``expect_reach``) and a NetworkPolicy matrix (``netpol``), each flapping, settling late,
or never matching.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from policy_fakes import PolicyCluster, namespace, policy
from test_grader_plugin import OK_HTTP, PODS, TIMEOUT, FakeCluster, FakeEngine
from test_matrix_fakes import pod

from clusters.probing import Observation, Outcome, ProbeSpec
from grader.expectations import CheckFailed
from grader.policy import NetpolGrader, cells

pytest_plugins = ["pytester"]

REACH = '''
from grader import expect_reach

def test_client_reaches_server(probe, pods):
    """client reaches server"""
    expect_reach(probe, src="lab01/client", dst=pods.get("lab01", "server"), port=8080,
                 protocol="http", path="/hostname", body="server")
'''


def run_lab(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cluster: Any,
            checks: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    from clusters import selection

    monkeypatch.setattr(selection, "get_engine", lambda name: FakeEngine(cluster))
    pytester.makepyfile(test_checks=checks)
    report = pytester.path / "report.json"
    result = pytester.runpytest("-p", "grader.plugin", "--lab-cluster", cluster.name,
                                "--lab-engine", "fake", "--lab-id", "01", "--lab-namespaces",
                                "lab01", "--lab-report", str(report), "-q", *extra)
    return result, json.loads(report.read_text())


def probe_cluster(*steps: Observation) -> FakeCluster:
    return FakeCluster(PODS, {"10.244.2.5": list(steps)})


# ------------------------------------------------------------------ settled probes


def test_a_flapping_probe_is_unstable_with_every_observation(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = probe_cluster(TIMEOUT, OK_HTTP, TIMEOUT, OK_HTTP)
    result, report = run_lab(pytester, monkeypatch, cluster, REACH, "--lab-settle", "5")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "UNSTABLE client reaches server",
        '  observed: UNSTABLE over 2 probes: CONNECTED (HTTP 200), body "server", '
        "TIMEOUT after 1.0s",
        "kube-netlab: 0 of 1 checks passed, 1 unstable*",
    ])
    assert "FAIL " not in result.stdout.str()
    (check,) = report["checks"]
    assert check["outcome"] == "unstable"
    assert check["message"].startswith("expected CONNECTED")
    finding = check["finding"]
    assert finding["unstable"] is True and finding["hint_key"] == "UNSTABLE"
    # every attempt is evidence: the early timeout, the match, the disagreeing confirmation
    assert [o["outcome"] for o in finding["observations"]] == ["TIMEOUT", "CONNECTED",
                                                              "TIMEOUT"]
    assert len(finding["observations"]) == len(cluster.probes)
    assert report["summary"] == {"passed": 0, "failed": 0, "unstable": 1, "errors": 0,
                                 "skipped": 0}
    assert report["passed"] is False


def test_a_probe_that_settles_late_passes(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = probe_cluster(TIMEOUT, TIMEOUT, OK_HTTP)
    result, report = run_lab(pytester, monkeypatch, cluster, REACH, "--lab-settle", "5")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["PASS  client reaches server"])
    assert report["checks"][0]["outcome"] == "passed"
    assert len(cluster.probes) == 2 + 1 + 2  # two timeouts, the match, two confirmations
    assert report["summary"]["unstable"] == 0 and report["passed"] is True


def test_a_probe_that_never_matches_fails(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = probe_cluster(TIMEOUT)
    result, report = run_lab(pytester, monkeypatch, cluster, REACH, "--lab-settle", "0.3")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAIL  client reaches server", "  observed: TIMEOUT after 1.0s"])
    (check,) = report["checks"]
    assert check["outcome"] == "failed" and check["finding"]["unstable"] is False
    assert report["summary"]["failed"] == 1 and report["summary"]["unstable"] == 0


def test_unstable_ranks_between_failed_and_error(pytester: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A teardown error after an unstable call makes the check an error; an unstable call
    after nothing worse stays unstable."""
    checks = REACH + '''
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_unstable_then_error(probe, pods, broken_teardown):
    test_client_reaches_server(probe, pods)
'''
    cluster = probe_cluster(OK_HTTP, TIMEOUT, OK_HTTP, TIMEOUT)
    _, report = run_lab(pytester, monkeypatch, cluster, checks, "--lab-settle", "5")
    outcomes = {c["name"]: c["outcome"] for c in report["checks"]}
    assert outcomes == {"client reaches server": "unstable", "unstable then error": "error"}


# ------------------------------------------------------------------ NetworkPolicy matrices

DENY = policy("lab04", "default-deny", types=["Ingress"])
API = policy("lab04", "api-from-frontend", {"app": "api"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}])
OBJECTS = [namespace("lab04"),
           pod("lab04", "frontend", "10.244.1.10", ports=[8080], app="frontend"),
           pod("lab04", "api", "10.244.1.11", ports=[8080], app="api"),
           pod("lab04", "db", "10.244.2.12", ports=[5432], app="db")]
API_IP, DB_IP = "10.244.1.11", "10.244.2.12"


def flapping(source: str, target: str,
             pattern: tuple[Outcome, ...]) -> Callable[[ProbeSpec], Observation | None]:
    """An ``on_probe`` answering ``source -> target`` with ``pattern`` over and over."""
    calls = {"n": 0}

    def answer(spec: ProbeSpec) -> Observation | None:
        if str(spec.source) != source or f"{spec.target}:{spec.port}" != target:
            return None
        outcome = pattern[calls["n"] % len(pattern)]
        calls["n"] += 1
        return Observation(outcome, "" if outcome is Outcome.CONNECTED else "no answer",
                           elapsed=0.001)

    return answer


#: Connected in the first pass, then three timeouts in the confirmation: a cell that holds
#: for a moment and then drops, again and again.
FLAP = (Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.TIMEOUT, Outcome.TIMEOUT)


def grader_for(cluster: PolicyCluster) -> NetpolGrader:
    grader = NetpolGrader(cluster, settle_seconds=0, canary_timeout=5)
    grader.require_enforcement()
    return grader


def test_a_flapping_matrix_cell_makes_an_unstable_finding_with_its_observations() -> None:
    cluster = PolicyCluster([*OBJECTS, DENY, API])
    grader = grader_for(cluster)
    cluster.on_probe = flapping("lab04/frontend", f"{API_IP}:8080", FLAP)
    m = grader.matrix(["lab04"], [8080, 5432], timeout=0.1)
    (cell,) = m.observed.unstable
    assert (cell.source, cell.dest, cell.port) == ("lab04/frontend", "lab04/api", 8080)
    assert cell.outcome is Outcome.CONNECTED and cell.symbol == "!"
    assert [o.outcome for o in cell.observations] == list(FLAP)
    assert cell.to_dict()["unstable"] is True
    assert "! unstable" in m.observed.render()
    with pytest.raises(CheckFailed) as caught:
        m.expect("frontend -> api on 8080",
                 allowed=cells("lab04/app=frontend", "lab04/app=api", 8080),
                 hint="the check's own hint is about policies, not flapping")
    finding = caught.value.finding
    assert finding.unstable and finding.hint_key == "UNSTABLE"
    assert "1 of 1 cells unstable" in finding.observed
    assert "UNSTABLE: probed twice, answered CONNECTED, TIMEOUT, TIMEOUT, TIMEOUT" \
        in finding.observed
    assert "answered differently when probed again" in finding.hint
    assert [o.outcome for o in finding.observations] == list(FLAP)
    assert {o.extra["cell"] for o in finding.observations} == {
        "lab04/frontend -> lab04/api TCP/8080"}
    # the other cells were confirmed and stay judged
    m.expect("db is closed", blocked=cells("*", "lab04/app=db"))


def test_a_stable_wrong_cell_beside_an_unstable_one_is_a_failure() -> None:
    allow_db = policy("lab04", "db-open", {"app": "db"}, ingress=[{}])
    cluster = PolicyCluster([*OBJECTS, DENY, API, allow_db])
    grader = grader_for(cluster)
    cluster.on_probe = flapping("lab04/api", f"{DB_IP}:5432", (Outcome.TIMEOUT, Outcome.TIMEOUT,
                                                               Outcome.TIMEOUT,
                                                               Outcome.CONNECTED))
    m = grader.matrix(["lab04"], [5432], timeout=0.1)
    with pytest.raises(CheckFailed) as caught:
        m.only("nothing reaches the db", allowed=[], within=cells("*", "lab04/app=db"))
    finding = caught.value.finding
    assert not finding.unstable and finding.hint_key == "OVER_PERMISSIVE"
    assert "2 of 2 cells wrong" in finding.observed
    assert "lab04/api -> lab04/db TCP/5432: expected blocked, observed TIMEOUT (UNSTABLE" \
        in finding.observed
    assert [o.outcome for o in finding.observations] == [Outcome.TIMEOUT] * 3 + [
        Outcome.CONNECTED]


def test_a_matrix_that_settles_late_is_not_unstable() -> None:
    """Lagging rules (a deny not yet in place) are probed again until they hold; only a
    confirmation that disagrees with the settled matrix is unstable."""
    cluster = PolicyCluster([*OBJECTS, DENY, API], propagation=5)
    grader = NetpolGrader(cluster, canary_timeout=5)
    grader.require_enforcement()
    cluster.on_probe = flapping("lab04/frontend", f"{DB_IP}:5432",
                                (Outcome.CONNECTED,) + (Outcome.TIMEOUT,) * 1000)
    m = grader.matrix(["lab04"], [5432], timeout=0.1)
    assert not m.observed.unstable and m.expected.matches
    m.expect("db is closed", blocked=cells("*", "lab04/app=db"))


def test_without_confirmations_a_matrix_is_probed_once() -> None:
    cluster = PolicyCluster([*OBJECTS, DENY, API])
    grader = NetpolGrader(cluster, settle_seconds=0, canary_timeout=5, confirmations=0)
    grader.require_enforcement()
    before = len(cluster.probes)
    grader.matrix(["lab04"], [8080], timeout=0.1)
    once = len(cluster.probes) - before
    confirming = grader_for(PolicyCluster([*OBJECTS, DENY, API]))
    before = len(confirming.cluster.probes)  # type: ignore[attr-defined]
    confirming.matrix(["lab04"], [8080], timeout=0.1)
    assert len(confirming.cluster.probes) - before > once  # type: ignore[attr-defined]


MATRIX_CHECK = '''
from grader.policy import cells

def test_frontend_reaches_api(netpol):
    """frontend reaches api on 8080"""
    netpol.matrix(["lab04"], [8080]).expect(
        "frontend -> api on 8080", allowed=cells("lab04/app=frontend", "lab04/app=api", 8080))

def test_db_is_closed(netpol):
    """db accepts nothing"""
    netpol.matrix(["lab04"], [8080]).expect("db is closed", blocked=cells("*", "lab04/app=db"))
'''


def test_the_plugin_reports_an_unstable_matrix_check_with_its_observations(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = PolicyCluster([*OBJECTS, DENY, API])
    cluster.name = "fake"
    cluster.on_probe = flapping("lab04/frontend", f"{API_IP}:8080", FLAP)
    folder = pytester.path / "ws"
    folder.mkdir()
    (folder / "policies.yaml").write_text(yaml.safe_dump_all([DENY, API]))
    result, report = run_lab(pytester, monkeypatch, cluster, MATRIX_CHECK,
                             "--lab-workspace", str(folder), "--lab-settle", "0",
                             "--lab-namespaces", "lab04")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["UNSTABLE frontend reaches api on 8080", "PASS  db accepts nothing"])
    outcomes = {c["name"]: c for c in report["checks"]}
    flapped = outcomes["frontend reaches api on 8080"]
    assert flapped["outcome"] == "unstable"
    assert [o["outcome"] for o in flapped["finding"]["observations"]] == [o.value for o in FLAP]
    assert outcomes["db accepts nothing"]["outcome"] == "passed"
    assert report["summary"]["unstable"] == 1 and report["passed"] is False
    assert Path(report["checks"][0]["id"]).name.startswith("test_checks.py")


def test_an_unstable_cell_says_why_its_probes_errored() -> None:
    """ERROR is the probe's own failure; an unstable cell names each reason once."""
    from grader.matrix import MatrixCell, seen_text

    why = "source lab04/api-new: pod has no network namespace yet"
    seen = (Observation(Outcome.ERROR, why), Observation(Outcome.ERROR, why),
            Observation(Outcome.TIMEOUT, "no answer"), Observation(Outcome.CONNECTED))
    cell = MatrixCell("lab04/api-new", "lab04/db", 5432, "TCP", "pod-ip", "10.244.2.12:5432",
                      Outcome.CONNECTED, 4, observations=seen, unstable=True)
    assert seen_text(cell) == f"ERROR ({why}), ERROR, TIMEOUT, CONNECTED"
