"""Lab 01 the way a learner does it, through the real ``lab`` command on the local engine.

start → check the starter (it fails, and says exactly why) → apply the solution → check
(all pass) → reset the workspace (starter back, the learner's files kept in a backup).
Every ``lab`` call is a separate process, as on a learner's terminal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from labcli import lab

from labs.catalogue import Lab, default_catalogue

#: The checks the starter fails on purpose: the pods share a node because of a podAffinity,
#: and the server listens on other ports than the ones the task asks for.
STARTER_FAILS = {
    "test_pods_on_different_nodes",
    "test_placement_is_declared",
    "test_client_reaches_server",
    "test_server_sees_client_pod_ip",
    "test_server_answers_udp",
}
PROBE_CHECKS = {"test_client_reaches_server", "test_server_sees_client_pod_ip",
                "test_server_answers_udp"}



def status_of(lab_id: str) -> str:
    listed = lab("list", "--json")
    assert listed.returncode == 0, listed.stderr
    return str(next(r["status"] for r in json.loads(listed.stdout) if r["id"] == lab_id))


def failed_checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["function"]: c for c in report["checks"] if c["outcome"] != "passed"}


def test_lab01_start_check_solve_reset(learner: str, state_dir: Path) -> None:
    lab01: Lab = default_catalogue().get("01")
    lab_dir = state_dir / "ws" / lab01.name
    starter = (lab01.starter_dir / "pods.yaml").read_text()
    solution = (lab01.solution_dir / "pods.yaml").read_text()

    # ---- lab start: a cluster, the lab's namespace, the starter files and the tasks
    started = lab("start", "01")
    assert started.returncode == 0, started.stderr
    assert "engine: local" in started.stderr
    assert str(lab_dir) in started.stdout
    for task in lab01.tasks:
        assert task.title in started.stdout
    assert "lab check 01" in started.stdout
    assert (lab_dir / "pods.yaml").read_text() == starter
    assert status_of("01") == "in progress"
    namespaces = json.loads(lab("get", "namespaces", "-o", "json").stdout)["items"]
    assert "lab01" in {n["metadata"]["name"] for n in namespaces}

    # ---- lab check on the starter: exactly the intended checks fail, each explained
    checked = lab("check", "01", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["apply_error"] is None and report["cluster"] == learner
    assert report["passed"] is False
    assert {c["function"] for c in report["checks"]} == set(lab01.check_names())
    # The points the instructors' chapter quotes: the starter earns 3 of lab 01's 9.
    assert (report["score"]["earned"], report["score"]["possible"]) == (3, 9)
    failed = failed_checks(report)
    assert set(failed) == STARTER_FAILS
    for name, check in failed.items():
        assert check["outcome"] == "failed", f"{name}: {check['message']}"
        assert check["hint"], f"{name} failed without a hint"
        assert check["task"] == lab01.task_for_check(name).id
        finding = check["finding"]
        assert finding["expected"] and finding["observed"], name
    for name in PROBE_CHECKS:
        finding = failed[name]["finding"]
        assert finding["probe"], name
        assert "lab01/server" in finding["destination"]
        # The starter's server listens elsewhere: the kernel refuses, and the hint says why.
        assert finding["observed"].startswith("REFUSED"), finding["observed"]
        assert finding["hint_key"] == "REFUSED" and not finding["hint_is_generic"]
    assert status_of("01") == "in progress"

    # ---- the solution: copied in (the starter is backed up), every check passes
    applied = lab("solution", "01", "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert (lab_dir / "pods.yaml").read_text() == solution
    assert [p.read_text() for p in (lab_dir / ".backup").glob("*/pods.yaml")] == [starter]

    solved = lab("check", "01")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    total = len(report["checks"])
    assert f"{total}/{total} checks passed" in solved.stdout
    assert "Points 9/9" in solved.stdout
    assert "FAIL" not in solved.stdout
    assert status_of("01") == "passed"

    # ---- reset --workspace: namespaces emptied, starter back, the solution in a backup
    reset = lab("reset", "01", "--workspace", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert (lab_dir / "pods.yaml").read_text() == starter
    backup = re.search(r"backup folder: (\S+)", reset.stdout)
    assert backup, reset.stdout
    assert (Path(backup.group(1)) / "pods.yaml").read_text() == solution
    pods = json.loads(lab("get", "pods", "-n", "lab01", "-o", "json").stdout)["items"]
    assert pods == []
    assert status_of("01") == "passed", "a lab once passed stays passed"

    # ---- the starter again, as a person reads it: FAIL lines with expected/observed/hint
    again = lab("check", "01")
    assert again.returncode == 1
    assert f"{total - len(STARTER_FAILS)}/{total} checks passed" in again.stdout
    assert again.stdout.count("FAIL") == len(STARTER_FAILS)
    for label in ("expected:", "observed:", "hint:", "client → 10.244."):
        assert label in again.stdout, label
    assert "lab hint 01" in again.stdout


def test_check_with_a_broken_workspace_file_checks_nothing(learner: str, state_dir: Path) -> None:
    ok = lab("start", "01")
    assert ok.returncode == 0, ok.stderr
    pods = state_dir / "ws" / "01-pod-networking" / "pods.yaml"
    pods.write_text(pods.read_text().replace("command:", "commandd:"))

    shown = lab("check", "01")
    assert shown.returncode == 1
    assert "could not be applied; nothing was checked" in shown.stdout
    assert str(pods) in shown.stdout and "commandd" in shown.stdout

    as_json = lab("check", "01", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["checks"] == [] and report["passed"] is False
    assert "commandd" in report["apply_error"]
    assert status_of("01") == "in progress"
