"""``lab probe matrix --expect``: expected, observed, the differing cells, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from policy_fakes import PolicyCluster, namespace, policy
from test_matrix_fakes import pod

from clusters.probing import Outcome
from labs.cli.probe_cmd import probe
from labs.session import Session

DENY = policy("lab04", "default-deny", types=["Ingress"])
API = policy("lab04", "api-from-frontend", {"app": "api"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}])
OBJECTS = [namespace("lab04"),
           pod("lab04", "frontend", "10.244.1.10", app="frontend"),
           pod("lab04", "api", "10.244.1.11", app="api"),
           pod("lab04", "db", "10.244.2.12", app="db"),
           DENY, API]


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("LAB_ENGINE", raising=False)

    def install(script: dict[tuple[str, str], list[Any]] | None = None, *,
                listening: bool = False) -> PolicyCluster:
        cluster = PolicyCluster(OBJECTS, script, listening=listening)
        monkeypatch.setattr(Session, "cluster", lambda self: cluster)
        return cluster

    return install


def run(*args: str) -> Result:
    return CliRunner().invoke(probe, ["matrix", "-n", "lab04", "-p", "8080", "--attempts", "1",
                                      *args])


def test_expect_prints_expected_observed_and_exits_zero_when_they_agree(use: Any) -> None:
    use()
    ran = run("--expect")
    assert ran.exit_code == 0, ran.output
    out = ran.stdout
    assert out.index("Expected (from 2 NetworkPolicies: lab04/api-from-frontend, "
                     "lab04/default-deny)") < out.index("Observed") \
        < out.index("Observed matches expected in all 6 probed cells.")
    expected_table = out[:out.index("Observed")]
    assert "3 lab04/frontend  .  X  -" in expected_table


def test_expect_lists_the_differing_cells_and_exits_one(use: Any) -> None:
    use({("lab04/db", "10.244.1.11:8080"): [Outcome.CONNECTED],
         ("lab04/frontend", "10.244.1.11:8080"): [Outcome.TIMEOUT]})
    ran = run("--expect")
    assert ran.exit_code == 1
    out = ran.stdout
    assert "2 of 6 probed cells differ from what the policies say:" in out
    assert ("  lab04/db -> lab04/api TCP/8080: expected blocked, observed CONNECTED; "
            "lab04/api is isolated for ingress by lab04/api-from-frontend, lab04/default-deny; "
            "no rule admits lab04/db on TCP/8080:") in out
    assert ("  lab04/frontend -> lab04/api TCP/8080: expected allowed, observed TIMEOUT; "
            "allowed by lab04/api-from-frontend ingress[0]") in out


def test_expect_exits_zero_when_an_allowed_cell_only_finds_a_closed_port(use: Any) -> None:
    use(listening=True)  # the pods declare no container port: nothing listens on 8080
    ran = run("--expect")
    assert ran.exit_code == 0, ran.output
    out = ran.stdout
    expected_table = out[:out.index("Observed")]
    assert "3 lab04/frontend  o  X  -" in expected_table
    assert "o allowed by policy, port closed (REFUSED) 1" in expected_table
    assert ("Observed matches expected in all 6 probed cells.\n1 cell is allowed by policy, "
            "port closed (o)") in out
    data = json.loads(run("--expect", "--json").stdout)
    assert data["summary"] == {"compared": 6, "differ": 0, "closed": 1}
    assert [(c["source"], c["dest"], c["observed"]) for c in data["closed"]] == [
        ("lab04/frontend", "lab04/api", "REFUSED")]


def test_expect_json_has_all_three_parts(use: Any) -> None:
    use({("lab04/db", "10.244.1.11:8080"): [Outcome.CONNECTED]})
    ran = run("--expect", "--json")
    assert ran.exit_code == 1
    data = json.loads(ran.stdout)
    assert set(data) == {"policies", "expected", "observed", "differences", "closed", "summary"}
    assert data["observed"]["summary"]["probed"] == 6
    assert [(d["source"], d["dest"], d["expected"], d["observed"])
            for d in data["differences"]] == [("lab04/db", "lab04/api", "blocked", "CONNECTED")]


def test_without_expect_the_matrix_still_exits_zero(use: Any) -> None:
    use({("lab04/db", "10.244.1.11:8080"): [Outcome.CONNECTED]})
    ran = run("--json")
    assert ran.exit_code == 0
    assert "differences" not in json.loads(ran.stdout)


def test_a_malformed_policy_is_reported_not_crashed(use: Any) -> None:
    cluster = use()
    cluster.objects.append(policy("lab04", "bad", ingress=[{"ports": [{"port": "80", "protocol": "ICMP"}]}]))
    ran = run("--expect")
    assert ran.exit_code == 1
    assert "cannot judge the NetworkPolicies" in ran.output
