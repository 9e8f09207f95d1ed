"""Lab 04 (NetworkPolicy) the way a learner does it, through the real ``lab`` command on the
local engine: start → the starter fails exactly where it is wrong, each wrong cell explained
by the rule behind it → the solution passes every check → the commands the pages show work
on the solved lab, and the nodes' nftables tables say which policy each rule comes from.
"""

from __future__ import annotations

import json
from pathlib import Path

from labcli import get_items, lab

from labs.catalogue import Lab, default_catalogue

#: The starter's mistakes (see its comments): the default deny says `egress: []` without
#: policyTypes, so egress stays open (DNS and api -> db work); the api's ingress names the
#: Service port 80 instead of the pods' 8080; the db's ingress has a dash too many (a second
#: rule admitting everybody on 5432); the scraper's peers are two (OR), so the toolbox
#: reads the metrics too.
STARTER_PASSES = {
    "test_only_frontend_reaches_api",
    "test_api_reaches_db_on_5432",
    "test_dns_over_udp_from_every_pod",
    "test_dns_over_tcp_from_every_pod",
    "test_scraper_reaches_every_metrics_port",
}
#: A piece of each failure's observed text: the explanation the grader must give.
STARTER_EXPLAINS = {
    "test_default_deny_selects_every_pod_both_ways": "default-deny: podSelector {} (every pod), "
                                                     "policyTypes [Ingress]",
    "test_default_deny_blocks_what_no_rule_allows": "expected blocked, observed CONNECTED",
    "test_frontend_reaches_api_on_8080": "expected allowed, observed TIMEOUT",
    "test_only_api_reaches_db": "allowed by lab04/db-ingress ingress[1] (policies.yaml)",
    "test_only_the_scraper_reaches_metrics": "allowed by lab04/allow-scraping ingress[0] "
                                             "(policies.yaml)",
    "test_nothing_else_reaches_lab04": "expected blocked, observed CONNECTED",
    "test_lab04_reaches_nothing_else": "expected blocked, observed CONNECTED",
}




def flat(text: str) -> str:
    return " ".join(text.split())


def test_lab04_start_check_solve(learner: str, state_dir: Path) -> None:
    lab04: Lab = default_catalogue().get("04")
    lab_dir = state_dir / "ws" / lab04.name
    all_checks = set(lab04.check_names())  # `lab check` leaves the hidden checks out
    assert lab04.hidden_checks and not all_checks & set(lab04.hidden_checks)

    started = lab("start", "04")
    assert started.returncode == 0, started.stderr
    assert (lab_dir / "policies.yaml").read_text() == (
        lab04.starter_dir / "policies.yaml").read_text()
    apps = {p["metadata"]["labels"].get("app") for p in get_items("pods", "-n", "lab04")}
    assert apps == {"frontend", "api", "db"}
    assert {p["metadata"]["name"] for p in get_items("pods", "-n", "monitoring")} == {
        "scraper", "toolbox"}

    # ---- the starter: exactly the intended checks fail, each explained
    checked = lab("check", "04", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["apply_error"] is None and report["cluster"] == learner, report
    assert {c["function"] for c in report["checks"]} == all_checks
    outcomes = {c["function"]: c["outcome"] for c in report["checks"]}
    assert "skipped" not in outcomes.values(), report["pytest_output"][-3000:]
    failed = {c["function"]: c for c in report["checks"] if c["outcome"] != "passed"}
    assert set(failed) == all_checks - STARTER_PASSES, {
        n: c.get("message", "")[:600] for n, c in failed.items()}
    for name, check in failed.items():
        assert check["outcome"] == "failed", f"{name}: {check.get('message')}"
        assert check["hint"], f"{name} failed without a hint"
        assert check["task"] == lab04.task_for_check(name).id
        finding = check["finding"]
        assert finding["expected"] and finding["observed"], name
        assert STARTER_EXPLAINS[name] in flat(finding["observed"]), (name, finding["observed"])
    assert "egress: []" in failed["test_default_deny_selects_every_pod_both_ways"]["hint"]

    # ---- the solution passes every check
    applied = lab("solution", "04", "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    solved = lab("check", "04", "--json")
    report = json.loads(solved.stdout)
    not_passed = {c["function"]: c.get("message", "")[:800] for c in report["checks"]
                  if c["outcome"] != "passed"}
    assert solved.returncode == 0 and not not_passed, not_passed
    assert report["passed"] is True

    # ---- the commands the pages show, on the solved lab
    ports = ("--ports", "80,8080,5432,9090")
    expect = lab("probe", "matrix", "--namespaces", "lab04", *ports, "--expect", "--json")
    assert expect.returncode == 0, (expect.stdout, expect.stderr)
    assert json.loads(expect.stdout)["summary"]["differ"] == 0
    # With monitoring in the matrix, nothing differs either: inside monitoring no policy
    # selects anything, so the policies allow every port, and the ports nothing listens on
    # answer REFUSED: allowed by policy, port closed, which is no policy difference.
    expect = lab("probe", "matrix", "--namespaces", "lab04,monitoring", *ports, "--expect",
                 "--json")
    assert expect.returncode == 0, (expect.stdout, expect.stderr)
    compared = json.loads(expect.stdout)
    assert compared["summary"]["differ"] == 0, compared["differences"]
    assert compared["closed"] and all(
        d["source"].startswith("monitoring/") and d["dest"].startswith("monitoring/")
        and d["observed"] == "REFUSED" and d["expected"] == "allowed"
        for d in compared["closed"]), compared["closed"]
    # Through the api Service, port 80 is judged on the pods' 8080, where the policies let
    # the frontend in.
    expect = lab("probe", "matrix", "--namespaces", "lab04", "--ports", "80", "--via",
                 "service-ip", "--expect", "--json")
    assert expect.returncode == 0, (expect.stdout, expect.stderr)
    through = [c for c in json.loads(expect.stdout)["expected"]["cells"]
               if c["source"].startswith("lab04/frontend-") and c["dest"].startswith("lab04/api-")]
    assert [(c["pod_port"], c["allowed"]) for c in through] == [(8080, True)], through

    api = next(p for p in get_items("pods", "-n", "lab04")
               if p["metadata"]["labels"].get("app") == "api")
    probed = lab("probe", "dns", "--from", f"lab04/{api['metadata']['name']}",
                 "api.lab04.svc.cluster.local", "--tcp")
    assert probed.returncode == 0, (probed.stdout, probed.stderr)

    node = api["spec"]["nodeName"]
    table = lab("node-shell", node, "--", "nft", "list", "table", "inet", "kube-netlab-policy")
    assert table.returncode == 0, table.stderr
    assert "lab04/api-ingress ingress[0]" in table.stdout
    assert "priority filter - 10" in table.stdout
