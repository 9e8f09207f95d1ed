"""The policy grader on what a lab author met first: cells dialled through a Service (judged
on the pod port behind it), cells that could not be probed, ports nothing listens on, and
over-permissive cells explained from both sides.

The cluster is :class:`policy_fakes.PolicyCluster`: kube-proxy's translation of a Service
address and the policies decide each probe; ``listening=True`` makes a port the pod does
not declare answer REFUSED.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from policy_fakes import PolicyCluster, namespace, policy
from test_matrix_fakes import pod, service

from clusters.probing import Outcome
from grader.expectations import CheckFailed
from grader.matrix import matrix_pods, probe_matrix
from grader.policy import CellSpecError, PolicyMatrix, cells, expect_vs_observe, policy_set

IPS = {"frontend": "10.244.1.10", "api": "10.244.1.11", "db": "10.244.2.12",
       "prom": "10.244.2.13"}
DENY = policy("lab04", "default-deny", types=["Ingress"])
API = policy("lab04", "api-from-frontend", {"app": "api"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}])
API_SERVICE = service("lab04", "api", {"app": "api"}, [{"port": 80, "targetPort": 8080}],
                      cluster_ip="10.96.0.80")


def named(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    """``obj`` (a pod) with its container ports named, in order."""
    for entry, name in zip(obj["spec"]["containers"][0]["ports"], names, strict=True):
        entry["name"] = name
    return obj


def objects(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [namespace("lab04"), namespace("monitoring"),
            pod("lab04", "frontend", IPS["frontend"], ports=[80], app="frontend"),
            named(pod("lab04", "api", IPS["api"], ports=[8080], app="api"), "http"),
            pod("lab04", "db", IPS["db"], ports=[5432], app="db"),
            pod("monitoring", "prom", IPS["prom"], ports=[9090], app="prom"),
            *extra]


def judged(cluster: PolicyCluster, ports: Sequence[int], via: Sequence[str] = ("pod-ip",),
           namespaces: Sequence[str] = ("lab04",)) -> PolicyMatrix:
    pods = matrix_pods(cluster, list(namespaces))
    observed = probe_matrix(cluster, pods, ports=ports, via=via, attempts=1, timeout=0.1)
    policies = policy_set(cluster, {"lab04/api-from-frontend": "api.yaml"})
    return PolicyMatrix(observed, policies, expect_vs_observe(policies, observed),
                        {p.label: dict(p.labels) for p in pods})


def failure(call: Any) -> CheckFailed:
    with pytest.raises(CheckFailed) as caught:
        call()
    return caught.value


# ------------------------------------------------------------------ 1. the pod port behind a Service


def test_a_service_cell_is_judged_on_the_target_port_of_the_pod() -> None:
    m = judged(PolicyCluster(objects(DENY, API, API_SERVICE)), [80],
               via=["pod-ip", "service-ip", "service-name"])
    through = m.expected.cell("lab04/frontend", "lab04/api", 80, via="service-ip")
    assert through.expected is True and through.observed.allowed
    assert through.observed.dest_port == 8080
    assert m.expected.cell("lab04/frontend", "lab04/api", 80, via="service-name").expected is True
    assert m.expected.cell("lab04/frontend", "lab04/api", 80).expected is False  # pod port 80
    assert m.expected.expected_allowed("lab04/frontend", "lab04/api", 80, via="service-ip")
    assert m.expected.matches, m.render()
    m.expect("frontend -> api through its Service",
             allowed=cells("lab04/app=frontend", "lab04/app=api", 80, via="service-ip"),
             blocked=cells("lab04/app=db", "lab04/app=api", 80, via="service-ip"))


def test_a_named_target_port_is_resolved_in_the_pods_container_ports() -> None:
    by_name = service("lab04", "api", {"app": "api"}, [{"port": 80, "targetPort": "http"}],
                      cluster_ip="10.96.0.80")
    m = judged(PolicyCluster(objects(DENY, API, by_name)), [80], via=["service-ip"])
    cell = m.expected.cell("lab04/frontend", "lab04/api", 80, via="service-ip")
    assert cell.expected is True and cell.observed.allowed
    assert cell.observed.dest_port == 8080


def test_a_target_port_name_the_pod_does_not_declare_is_not_judged() -> None:
    wrong = service("lab04", "api", {"app": "api"}, [{"port": 80, "targetPort": "web"}],
                    cluster_ip="10.96.0.80")
    m = judged(PolicyCluster(objects(DENY, API, wrong)), [80], via=["service-ip"])
    cell = m.expected.cell("lab04/frontend", "lab04/api", 80, via="service-ip")
    assert cell.expected is None and cell.observed.dest_port is None
    assert "names no container port of lab04/api" in cell.reason
    assert not cell.differs


def test_explanations_show_the_service_and_the_pod_port() -> None:
    cluster = PolicyCluster(objects(DENY, API, API_SERVICE),
                            {("lab04/frontend", "10.96.0.80:80"): [Outcome.TIMEOUT]})
    m = judged(cluster, [80], via=["pod-ip", "service-ip"])
    [wrong] = m.expected.differences
    assert wrong.line().startswith(
        "lab04/frontend -> lab04/api TCP/80 via service-ip (Service api -> pod port 8080): "
        "expected allowed, observed TIMEOUT; allowed by lab04/api-from-frontend ingress[0] "
        "(api.yaml)")
    text = m.render()
    assert "TCP/80 via pod-ip\n" in text and "TCP/80 via service-ip\n" in text
    assert "pod ports (after the Service): lab04/api 8080 (Service api)" in text
    data = m.expected.to_dict()
    assert {"source": "lab04/frontend", "dest": "lab04/api", "port": 80, "protocol": "TCP",
            "via": "service-ip", "pod_port": 8080, "allowed": True} in data["expected"]["cells"]
    assert data["differences"][0]["pod_port"] == 8080


# ------------------------------------------------------------------ 2. cells that were not probed


def test_cells_that_could_not_be_probed_are_never_judged() -> None:
    # only the api has a Service: every other destination is "not probed" via service-ip
    m = judged(PolicyCluster(objects(DENY, API, API_SERVICE)), [80], via=["service-ip"])
    m.expect("nothing from the db", blocked=cells("lab04/app=db", "lab04/*"))
    m.only("only the frontend", allowed=cells("lab04/app=frontend", "lab04/app=api"),
           within=cells("*", "lab04/*"))


def test_a_pattern_naming_only_unprobed_cells_is_an_authoring_error() -> None:
    m = judged(PolicyCluster(objects(DENY, API, API_SERVICE)), [80], via=["service-ip"])
    with pytest.raises(CellSpecError) as caught:
        m.expect("api -> db", allowed=cells("lab04/app=api", "lab04/app=db"))
    text = str(caught.value)
    assert text.startswith("api -> db: the allowed pattern lab04/app=api -> lab04/app=db any "
                           "port names no probed cell of the matrix")
    assert "the cell it names was not probed (1 x no Service in lab04 selects lab04/db)" in text
    with pytest.raises(CellSpecError, match="the within pattern \\* -> lab04/app=db"):
        m.only("into the db", allowed=[], within=cells("*", "lab04/app=db"))
    with pytest.raises(ValueError, match="the 2 cells it names were not probed \\(2 x no "
                                         "Service in lab04 selects lab04/db\\)"):
        m.expect("nothing into the db", blocked=cells("*", "lab04/db", 80))


# ------------------------------------------------------------------ 3. allowed by policy, port closed


def test_an_allowed_cell_refused_is_a_match_shown_as_a_closed_port() -> None:
    m = judged(PolicyCluster(objects(), listening=True), [80, 8080, 5432])
    assert m.expected.matches, m.render()
    closed = m.expected.closed
    assert len(closed) == 12  # 3 pods x 2 others x 3 ports, each pod serving one of them
    assert all(c.observed.outcome is Outcome.REFUSED for c in closed)
    text = m.render(details=True)
    assert "o allowed by policy, port closed (REFUSED) 4" in text
    assert ("Observed matches expected in all 18 probed cells.\n12 cells are allowed by "
            "policy, port closed (o)") in text
    assert ("lab04/api -> lab04/db TCP/80: allowed by policy, port closed (REFUSED: nothing "
            "listens on TCP/80 of lab04/db)") in text
    assert m.expected.to_dict()["summary"] == {"compared": 18, "differ": 0, "closed": 12}


def test_a_blocked_cell_refused_where_the_policies_allow_still_fails_a_requirement() -> None:
    m = judged(PolicyCluster(objects(), listening=True), [5432])
    failed = failure(lambda: m.expect("db closed to the frontend",
                                      blocked=cells("lab04/frontend", "lab04/api", 5432)))
    assert "observed REFUSED (REFUSED only because nothing listens there" in \
        failed.finding.observed
    assert failed.finding.hint_key == "OVER_PERMISSIVE"


# ------------------------------------------------------------------ 4. both sides of an open cell


def test_an_over_permissive_cell_names_both_open_sides() -> None:
    m = judged(PolicyCluster(objects()), [9090], namespaces=["lab04", "monitoring"])
    observed = failure(lambda: m.expect(
        "lab04 stays inside", blocked=cells("lab04/app=api", "monitoring/*", 9090))
    ).finding.observed
    assert ("lab04/api -> monitoring/prom TCP/9090: expected blocked, observed CONNECTED; "
            "lab04/api is not isolated for egress: no NetworkPolicy selects it (with "
            "policyTypes Egress), so all egress is allowed") in observed
    assert "monitoring/prom is not isolated for ingress" in observed


def test_an_over_permissive_cell_names_the_rule_on_each_side() -> None:
    out = policy("lab04", "api-out", {"app": "api"}, egress=[{}])
    into = policy("monitoring", "prom-in", {"app": "prom"}, ingress=[
        {"from": [{"namespaceSelector": {}}]}])
    m = judged(PolicyCluster(objects(out, into)), [9090], namespaces=["lab04", "monitoring"])
    observed = failure(lambda: m.expect(
        "lab04 stays inside", blocked=cells("lab04/app=api", "monitoring/*", 9090))
    ).finding.observed
    assert "observed CONNECTED; allowed by lab04/api-out egress[0]" in observed
    assert "allowed by monitoring/prom-in ingress[0]" in observed
    half = judged(PolicyCluster(objects(out)), [9090], namespaces=["lab04", "monitoring"])
    observed = failure(lambda: half.expect(
        "lab04 stays inside", blocked=cells("lab04/app=api", "monitoring/*", 9090))
    ).finding.observed
    assert "allowed by lab04/api-out egress[0]" in observed
    assert "monitoring/prom is not isolated for ingress" in observed
