"""``lab conformance`` on the acceptance files (``acceptance/`` in this repository) against
the real local engine, exactly as a user runs it: every Services and DNS case must pass on
every CNI mode, and every NetworkPolicy case on the modes whose CNI enforces policy.

This is CI's measure of the local engine's fidelity. A case reported N/A here means the
engine does not claim the feature; that fails this test too, except for NetworkPolicy on
Flannel, where "not applicable: the cluster does not enforce NetworkPolicy" is the truth a
learner must see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cnimodes import ALL_MODES, mode_id
from labcli import lab

from clusters.local.engine import LocalCluster
from grader.conformance import load

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"

pytestmark = pytest.mark.root


@ALL_MODES
def test_services_and_dns_cases_all_pass(mode: tuple[str, str], make_cluster: Callable[...,
                                         LocalCluster]) -> None:
    local_cluster = make_cluster(*mode)
    files = [ACCEPTANCE / "services.yaml", ACCEPTANCE / "dns.yaml"]
    ran = lab("conformance", *map(str, files), "--engine", "local", "--cluster",
              local_cluster.name, "--json", timeout=600)
    report = json.loads(ran.stdout)
    statuses = {c["id"]: c["status"] for f in report["files"] for c in f["cases"]}
    expected_ids = {c.id for f in files for c in load(f).cases}
    failing = {k: v for k, v in statuses.items() if v != "pass"}
    assert set(statuses) == expected_ids and not failing, json.dumps(
        [c for f in report["files"] for c in f["cases"] if c["status"] != "pass"], indent=1)
    assert ran.returncode == 0, ran.stderr
    assert report["summary"] == {"total": len(expected_ids), "passed": len(expected_ids),
                                 "failed": 0, "not_applicable": 0}
    # The fixtures are removed at the end.
    namespaces = {n["metadata"]["name"] for n in local_cluster.get("Namespace")}
    assert not namespaces & {"svc", "n", "other"}


def test_one_case_can_be_chosen_and_read_by_people(local_cluster: LocalCluster) -> None:
    ran = lab("conformance", str(ACCEPTANCE / "services.yaml"), "--cases", "S2",
              "--engine", "local", "--cluster", local_cluster.name, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "S2" in ran.stdout and "PASS" in ran.stdout and "S1 " not in ran.stdout


ENFORCING = [("kindnet", ""), ("calico", "bgp"), ("calico", "vxlan")]


@pytest.mark.parametrize("mode", ENFORCING, ids=[mode_id(m) for m in ENFORCING])
def test_network_policy_cases_all_pass(mode: tuple[str, str],
                                       make_cluster: Callable[..., LocalCluster]) -> None:
    """Every NetworkPolicy case (N1-N14), via pod IP and Service IP, on each CNI that
    enforces policy."""
    local_cluster = make_cluster(*mode)
    path = ACCEPTANCE / "netpol.yaml"
    ran = lab("conformance", str(path), "--engine", "local", "--cluster", local_cluster.name,
              "--json", timeout=900)
    report = json.loads(ran.stdout)
    statuses = {c["id"]: c["status"] for f in report["files"] for c in f["cases"]}
    assert set(statuses) == {c.id for c in load(path).cases} and not _failures(report), \
        "\n".join(_failures(report))
    assert ran.returncode == 0, ran.stderr
    # The fixture and every policy are gone afterwards.
    namespaces = {n["metadata"]["name"] for n in local_cluster.get("Namespace")}
    assert not namespaces & {"x", "y", "z"}
    assert local_cluster.get("NetworkPolicy") == []


def test_network_policy_cases_are_not_applicable_on_flannel(
        make_cluster: Callable[..., LocalCluster]) -> None:
    """Flannel does not enforce NetworkPolicy: conformance says so for every case instead of
    pretending to pass or fail them, and the exit code does not count them as failures."""
    local_cluster = make_cluster("flannel", "vxlan")
    path = ACCEPTANCE / "netpol.yaml"
    ran = lab("conformance", str(path), "--engine", "local", "--cluster", local_cluster.name,
              "--json", timeout=300)
    report = json.loads(ran.stdout)
    cases = [c for f in report["files"] for c in f["cases"]]
    assert {c["id"] for c in cases} == {c.id for c in load(path).cases}
    assert {c["status"] for c in cases} == {"n/a"}, _failures(report)
    assert all("does not enforce NetworkPolicy" in c.get("reason", "") for c in cases), cases
    assert report["summary"]["not_applicable"] == len(cases)
    assert ran.returncode == 0, ran.stderr


def _failures(report: dict) -> list[str]:
    """One line per failed check (what was expected, what was seen), without the raw cells."""
    lines = []
    for f in report["files"]:
        for case in f["cases"]:
            if case["status"] == "pass":
                continue
            lines.append(f"{case['id']} {case['status']}: {case.get('reason', '')}")
            for step in case.get("steps", []):
                for run in step.get("runs", []):
                    lines += [f"  step {step['index'] + 1}: expected {c['expected']}; "
                              f"observed {c['observed']}"
                              for c in run.get("checks", []) if not c["ok"]]
                    if run.get("reason"):
                        lines.append(f"  step {step['index'] + 1}: {run['reason']}")
    return lines
