"""Lab 02 (Services) the way a learner does it, through the real ``lab`` command on the
local engine: start → the starter fails exactly where it is wrong, each failure explained →
the solution passes every check → the probes the docs show work on the solved lab.
"""

from __future__ import annotations

import json
from pathlib import Path

from labcli import get_items, lab

from labs.catalogue import Lab, default_catalogue

#: The starter's Services: api selects nothing (and has a numeric, unnamed port), web sends
#: to 8080 where nginx does not listen, the StatefulSet's Service is called database (not
#: db, its serviceName) and has a ClusterIP, payments does not exist. web's type and
#: nodePort are right.
STARTER_PASSES = {"test_web_is_nodeport"}
#: Checks that probe, and the outcome the starter gets from them.
STARTER_PROBES = {
    "test_api_answers_from_every_ready_replica": "REFUSED",  # no endpoints: REJECT
    "test_web_answers_in_cluster": "REFUSED",  # DNAT to a closed port
    "test_web_reachable_from_host_on_every_node": "REFUSED",
    "test_db_name_lists_every_ready_pod": "NXDOMAIN",  # no Service called db
    "test_db_pods_resolve_by_name": "NXDOMAIN",
}




def test_lab02_start_check_solve(learner: str, state_dir: Path) -> None:
    lab02: Lab = default_catalogue().get("02")
    lab_dir = state_dir / "ws" / lab02.name
    all_checks = set(lab02.check_names())  # lab check runs the visible checks

    started = lab("start", "02")
    assert started.returncode == 0, started.stderr
    assert (lab_dir / "services.yaml").read_text() == (
        lab02.starter_dir / "services.yaml").read_text()
    pods = {p["metadata"]["name"] for p in get_items("pods", "-n", "lab02")}
    assert {"client", "api-canary", "db-0", "db-1", "db-2"} <= pods

    # ---- the starter: exactly the intended checks fail, each with expected/observed/hint
    checked = lab("check", "02", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["apply_error"] is None and report["cluster"] == learner, report
    assert {c["function"] for c in report["checks"]} == all_checks
    failed = {c["function"]: c for c in report["checks"] if c["outcome"] != "passed"}
    assert set(failed) == all_checks - STARTER_PASSES, {
        n: c.get("message", "")[:300] for n, c in failed.items()}
    for name, check in failed.items():
        assert check["outcome"] == "failed", f"{name}: {check.get('message')}"
        assert check["hint"], f"{name} failed without a hint"
        assert check["task"] == lab02.task_for_check(name).id
        finding = check["finding"]
        assert finding["expected"] and finding["observed"], name
    for name, seen in STARTER_PROBES.items():
        assert seen in failed[name]["finding"]["observed"], (name, failed[name]["finding"])
    assert "Services in lab02: api, database, web" in (
        failed["test_payments_is_an_alias_of_api"]["finding"]["observed"])

    # The api Service found no pod, and its EndpointSlice says why.
    slices = get_items("endpointslices", "-n", "lab02", "-l", "kubernetes.io/service-name=api")
    assert slices and all(not s.get("endpoints") for s in slices)
    assert any("netlab.dev/unresolved" in (s["metadata"].get("annotations") or {})
               for s in slices)

    # ---- the solution passes every check
    applied = lab("solution", "02", "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    solved = lab("check", "02", "--json")
    report = json.loads(solved.stdout)
    not_passed = {c["function"]: c.get("message", "")[:600] for c in report["checks"]
                  if c["outcome"] != "passed"}
    assert solved.returncode == 0 and not not_passed, not_passed
    assert report["passed"] is True

    # The named targetPort resolved per pod: v1 endpoints on 8080, the v2 one on 9090.
    slices = get_items("endpointslices", "-n", "lab02", "-l", "kubernetes.io/service-name=api")
    ports = {p["port"] for s in slices for p in s.get("ports") or []}
    assert ports == {8080, 9090}, slices

    # ---- the commands the lab page shows, on the solved lab
    nodes = get_items("nodes")
    node_ip = next(a["address"] for a in nodes[0]["status"]["addresses"]
                   if a["type"] == "InternalIP")
    for argv in (
        ["http", "--from", "lab02/client", "http://api/hostname"],
        ["http", "--from", "host", f"http://{node_ip}:30080/"],
        ["dns", "--from", "lab02/client", "db-0.db.lab02.svc.cluster.local"],
        ["dns", "--from", "lab02/client", "payments.lab02.svc.cluster.local", "--type", "CNAME"],
        ["dns", "--from", "lab02/client", "api", "--search"],
    ):
        probed = lab("probe", *argv)
        assert probed.returncode == 0, (argv, probed.stdout, probed.stderr)
