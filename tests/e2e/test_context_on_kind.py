"""The context engine on a real cluster: a kind cluster plays the workshop's shared cluster.

Two learners attach to the same cluster through its kubeconfig context, each in their own
prefixed namespaces, with workspaces of their own. Lab 04 (NetworkPolicy, so detection must
find enforcement): each learner's starter fails, one learner's solution passes while the
other's starter still fails (their namespaces are apart), and ``lab stop`` leaves no
namespace of theirs behind. Runs in the kindnet job of the kind e2e workflow.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from clusters.proc import Result, run

CLUSTER = "knle2e-kindnet"
LAB = "04"
LEARNERS = ("ann", "ben")

pytestmark = pytest.mark.skipif(
    os.environ.get("LAB_E2E_CNI", "kindnet") != "kindnet",
    reason="the context engine is exercised once, in the kindnet job")


def lab(home: Path, learner: str | None, *args: str, timeout: float = 900) -> Result:
    env = dict(os.environ)
    if learner is not None:
        env["LAB_WORKSPACE"] = str(home / f"ws-{learner}")
        env.pop("LAB_ENGINE", None)  # the engine is the one `lab start --context` recorded
    return run([sys.executable, "-m", "labs.cli.main", *args], check=False, timeout=timeout,
               env=env)


def checks(result: Result) -> dict[str, str]:
    assert result.stdout.strip(), result.stderr[-4000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return {c["function"]: c["outcome"] for c in data["checks"]}


def namespaces(kubeconfig: Path) -> list[str]:
    got = run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "namespaces", "-o",
               "jsonpath={.items[*].metadata.name}"], timeout=60)
    return got.stdout.split()


def test_two_learners_share_a_cluster(e2e_home: Path) -> None:
    made = lab(e2e_home, None, "cluster", "create", "--engine", "kind", "--name", CLUSTER,
               "--cni", "kindnet", timeout=1200)
    assert made.returncode == 0, made.stderr[-4000:]
    kubeconfig = e2e_home / "state" / "kind" / f"{CLUSTER}.kubeconfig"
    try:
        for learner in LEARNERS:
            started = lab(e2e_home, learner, "start", LAB, "--context", f"kind-{CLUSTER}",
                          "--kubeconfig", str(kubeconfig), "--learner", learner,
                          "--cluster", f"shared-{learner}")
            assert started.returncode == 0, started.stderr[-4000:]
            assert "Detected network policy: yes" in started.stderr
            first = lab(e2e_home, learner, "check", LAB, "--json")
            assert first.returncode != 0 and "failed" in checks(first).values()
        present = namespaces(kubeconfig)
        assert {"ann-lab04", "ann-monitoring", "ben-lab04", "ben-monitoring"} <= set(present)
        assert "lab04" not in present

        assert lab(e2e_home, "ann", "solution", LAB, "--apply", "--yes").returncode == 0
        solved = lab(e2e_home, "ann", "check", LAB, "--json")
        outcomes = checks(solved)
        assert solved.returncode == 0, {k: v for k, v in outcomes.items() if v != "passed"}
        still = lab(e2e_home, "ben", "check", LAB, "--json")
        assert still.returncode != 0, "ben's starter must still fail beside ann's solution"
        for learner in LEARNERS:
            stopped = lab(e2e_home, learner, "stop", "--cluster", f"shared-{learner}")
            assert stopped.returncode == 0, stopped.stderr[-4000:]
        left = [n for n in namespaces(kubeconfig) if n.startswith(("ann-", "ben-"))]
        assert left == []
    finally:
        for learner in LEARNERS:
            lab(e2e_home, learner, "stop", "--cluster", f"shared-{learner}")
        lab(e2e_home, None, "stop", "--cluster", CLUSTER, "--engine", "kind", timeout=300)
