"""The ``netpol`` fixture end to end: checks run through the plugin like ``lab check`` runs them.

The cluster is a :class:`policy_fakes.PolicyCluster` reached through the real ``cluster``
fixture; the learner's workspace is a temporary folder, so explanations name its files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from policy_fakes import PolicyCluster, namespace, policy
from test_matrix_fakes import pod

pytest_plugins = ["pytester"]

DENY = policy("lab04", "default-deny", types=["Ingress"])
API = policy("lab04", "api-from-frontend", {"app": "api"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}])
OBJECTS = [namespace("lab04"),
           pod("lab04", "frontend", "10.244.1.10", ports=[8080], app="frontend"),
           pod("lab04", "api", "10.244.1.11", ports=[8080], app="api"),
           pod("lab04", "db", "10.244.2.12", ports=[5432], app="db")]

CHECKS = '''
from grader.policy import cells

PORTS = [8080, 5432]

def test_frontend_reaches_api(netpol):
    """frontend reaches api on 8080"""
    netpol.matrix(["lab04"], PORTS).expect(
        "frontend -> api on 8080",
        allowed=cells("lab04/app=frontend", "lab04/app=api", 8080))

def test_db_is_closed(netpol):
    """db accepts nothing"""
    netpol.matrix(["lab04"], PORTS).expect("db is closed", blocked=cells("*", "lab04/app=db"),
                                            hint="Select db with a deny policy.")
'''


class Engine:
    name = "fake"

    def __init__(self, cluster: PolicyCluster) -> None:
        self.cluster = cluster

    def connect(self, name: str) -> PolicyCluster:
        return self.cluster


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cluster: PolicyCluster,
        workspace: dict[str, list[dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    from clusters import selection

    monkeypatch.setattr(selection, "get_engine", lambda name: Engine(cluster))
    folder = pytester.path / "ws"
    folder.mkdir()
    for file, docs in workspace.items():
        (folder / file).write_text(yaml.safe_dump_all(docs))
    pytester.makepyfile(test_checks=CHECKS)
    report = pytester.path / "report.json"
    result = pytester.runpytest("-p", "grader.plugin", "--lab-cluster", "fake", "--lab-engine",
                                "fake", "--lab-id", "04", "--lab-namespaces", "lab04",
                                "--lab-workspace", str(folder), "--lab-report", str(report),
                                "--lab-settle", "0.2", "-q")
    return result, json.loads(Path(report).read_text())


def test_policy_checks_pass_and_fail_with_explanations_naming_files(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = PolicyCluster([*OBJECTS, DENY, API])
    result, report = run(pytester, monkeypatch, cluster,
                         {"deny.yaml": [DENY], "api.yaml": [API]})
    out = result.stdout.str()
    assert "PASS  frontend reaches api on 8080" in out
    assert "PASS  db accepts nothing" in out
    assert report["summary"]["passed"] == 2
    assert [n for n in cluster.deleted if n[0] == "Namespace"]  # the canary cleaned up


def test_an_over_permissive_workspace_fails_naming_the_rule_and_file(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_all = policy("lab04", "allow-all", ingress=[{}])
    cluster = PolicyCluster([*OBJECTS, allow_all])
    result, report = run(pytester, monkeypatch, cluster, {"policies.yaml": [allow_all]})
    out = result.stdout.str()
    assert "FAIL  db accepts nothing" in out
    assert ("lab04/api -> lab04/db TCP/5432: expected blocked, observed CONNECTED; allowed by "
            "lab04/allow-all ingress[0] (policies.yaml)") in out
    assert "hint:     Select db with a deny policy." in out
    failed = next(c for c in report["checks"] if c["outcome"] == "failed")
    assert failed["finding"]["hint_key"] == "OVER_PERMISSIVE"
    assert "4 of 4 cells wrong" in failed["finding"]["observed"]


def test_a_cluster_that_does_not_enforce_skips_the_policy_checks(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = PolicyCluster([*OBJECTS, DENY], enforce=False, cni="flannel",
                            network_policy=False, propagation=0.1)
    result, report = run(pytester, monkeypatch, cluster, {"deny.yaml": [DENY]})
    out = result.stdout.str()
    assert out.count("SKIP ") == 2
    assert "this cluster does not enforce NetworkPolicy (CNI flannel): the check cannot " \
           "judge policies" in out
    assert report["summary"] == {"passed": 0, "failed": 0, "unstable": 0, "errors": 0,
                                 "skipped": 2}
    assert sum(o["kind"] == "Namespace" for o in cluster.applied) == 1  # one canary a session
