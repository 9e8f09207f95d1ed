"""Every lab on real Kubernetes, per CNI: start it, the starter fails, the solution passes.

Through the real ``lab`` command, one process per call, as a learner types it. Labs that share
a CNI share one cluster (``lab start`` reuses a cluster whose profile matches and resets only
the lab's namespaces), and each CNI's cluster is removed with ``lab stop`` at the end.
``LAB_E2E_CNI=calico`` limits a run to one CNI (the workflow's matrix does that).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusters.proc import Result, run
from labs.catalogue import Lab, default_catalogue

KIND_CNIS = ("kindnet", "calico", "cilium", "flannel")
#: Creating a kind cluster and installing a CNI takes minutes on a hosted runner.
START_TIMEOUT = 1200


def lab(*args: str, timeout: float = 600) -> Result:
    return run([sys.executable, "-m", "labs.cli.main", *args], check=False, timeout=timeout)


def cases() -> list[Any]:
    wanted = os.environ.get("LAB_E2E_CNI", "")
    found = []
    for item in default_catalogue().labs():
        for cni in item.cluster.cni:
            if cni in KIND_CNIS and (not wanted or cni == wanted):
                found.append(pytest.param(item, cni, id=f"{item.id}-{cni}"))
    return found


def cluster_for(cni: str) -> str:
    return f"knle2e-{cni}"


@pytest.fixture(scope="module", autouse=True)
def stop_clusters(e2e_home: Path) -> Iterator[None]:
    """Remove every CNI's cluster at the end, whatever happened."""
    yield
    for cni in KIND_CNIS:
        lab("stop", "--cluster", cluster_for(cni), "--engine", "kind", timeout=300)


def report(result: Result) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize(("item", "cni"), cases())
def test_starter_fails_and_solution_passes(item: Lab, cni: str, e2e_home: Path) -> None:
    name = cluster_for(cni)
    started = lab("start", item.id, "--engine", "kind", "--cluster", name, "--cni", cni, "--yes",
                  timeout=START_TIMEOUT)
    assert started.returncode == 0, started.stderr[-4000:]
    assert "engine: kind" in started.stderr

    starter = lab("check", item.id, "--json", "--engine", "kind", "--cluster", name)
    first = report(starter)
    assert starter.returncode != 0, first
    failed = {c["function"] for c in first["checks"] if c["outcome"] != "passed"}
    assert failed, "the starter must fail at least one check"
    assert failed <= set(item.check_names()), failed

    applied = lab("solution", item.id, "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    solved = lab("check", item.id, "--json", "--engine", "kind", "--cluster", name)
    second = report(solved)
    problems = {c["function"]: c.get("message", "") for c in second["checks"]
                if c["outcome"] != "passed"}
    assert solved.returncode == 0 and not problems, problems
    assert {c["function"] for c in second["checks"]} == set(item.check_names())
