"""The policy grader: cell patterns, expected vs observed, explanations, the canary.

The cluster is :class:`policy_fakes.PolicyCluster`: probes are answered by the pure policy
engine (so "observed" follows the policies unless a test scripts a cell otherwise).
"""

from __future__ import annotations

from typing import Any

import pytest
from policy_fakes import Boom, PolicyCluster, namespace, policy
from test_matrix_fakes import pod

from clusters.canary import LABEL, PREFIX, prove_enforcement
from clusters.probing import Observation, Outcome, ProbeSpec
from grader.expectations import CheckFailed
from grader.fixtures import Workspace
from grader.matrix import matrix_pods, probe_matrix
from grader.policy import (
    CellSpecError,
    NetpolGrader,
    PolicyMatrix,
    cells,
    expect_vs_observe,
    policy_set,
    workspace_sources,
)
from grader.policy_matrix import observed_text

IPS = {"frontend": "10.244.1.10", "api": "10.244.1.11", "db": "10.244.2.12",
       "prom": "10.244.2.13"}
DENY = policy("lab04", "default-deny", types=["Ingress"])
API = policy("lab04", "api-from-frontend", {"app": "api"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 8080}]}])
ALLOW_ALL = policy("lab04", "allow-all", ingress=[{}])
SOURCES = {"lab04/default-deny": "deny.yaml", "lab04/api-from-frontend": "api.yaml",
           "lab04/allow-all": "policies.yaml"}


def objects(*policies: dict[str, Any]) -> list[dict[str, Any]]:
    return [namespace("lab04"), namespace("monitoring", team="obs"),
            pod("lab04", "frontend", IPS["frontend"], ports=[8080], app="frontend"),
            pod("lab04", "api", IPS["api"], ports=[8080], app="api"),
            pod("lab04", "db", IPS["db"], ports=[5432], app="db"),
            pod("monitoring", "prom", IPS["prom"], ports=[9090], app="prom"),
            *policies]


def judged(cluster: PolicyCluster, ports: list[int] = [8080, 5432]) -> PolicyMatrix:  # noqa: B006
    """A PolicyMatrix of lab04 + monitoring, probed on the fake (no canary)."""
    pods = matrix_pods(cluster, ["lab04", "monitoring"])
    observed = probe_matrix(cluster, pods, ports=ports, attempts=1)
    policies = policy_set(cluster, SOURCES)
    return PolicyMatrix(observed, policies, expect_vs_observe(policies, observed),
                        {p.label: dict(p.labels) for p in pods})


def failure(call: Any) -> str:
    with pytest.raises(CheckFailed) as caught:
        call()
    return str(caught.value.finding)


# ------------------------------------------------------------------ cells()


@pytest.mark.parametrize(("text", "ns", "name", "labels"), [
    ("*", None, None, ()),
    ("lab04/*", "lab04", None, ()),
    ("*/app=api", None, None, (("app", "api"),)),
    ("lab04/db", "lab04", "db", ()),
    ("lab04/app=api, tier=back", "lab04", None, (("app", "api"), ("tier", "back"))),
    ("lab04/app.kubernetes.io/name=web", "lab04", None, (("app.kubernetes.io/name", "web"),)),
])
def test_cell_patterns_parse(text: str, ns: str | None, name: str | None,
                             labels: tuple[tuple[str, str], ...]) -> None:
    spec = cells(text, "*", 80)
    assert (spec.src.namespace, spec.src.name, spec.src.labels) == (ns, name, labels)


@pytest.mark.parametrize("bad", ["", "lab04", "lab04/", "/db", "Lab04/db", "lab04/app=a b",
                                 "lab04/=api", "lab04/app=api,", "lab04/app!=api",
                                 "lab04/app==api", "lab04/my pod", "lab04/a=1,a=2"])
def test_bad_cell_patterns_say_what_a_pattern_is(bad: str) -> None:
    with pytest.raises(ValueError, match="cell pattern") as caught:
        cells(bad, "*")
    assert "NS/POD" in str(caught.value) or "twice" in str(caught.value)


def test_bad_port_protocol_and_via_are_value_errors() -> None:
    with pytest.raises(ValueError, match="1 to 65535"):
        cells("*", "*", 0)
    with pytest.raises(ValueError, match="protocol 'ICMP'"):
        cells("*", "*", 80, "ICMP")
    with pytest.raises(ValueError, match="via 'node-ip'"):
        cells("*", "*", 80, via="node-ip")
    assert cells("*", "*", 80, "udp").protocol == "UDP"


def test_cell_spec_matches_by_namespace_name_and_labels() -> None:
    cluster = PolicyCluster(objects())
    m = judged(cluster)
    found = {(c.source, c.dest, c.port) for c in m.matching(cells("lab04/app=frontend",
                                                                  "lab04/*", 8080))}
    assert found == {("lab04/frontend", "lab04/api", 8080), ("lab04/frontend", "lab04/db", 8080)}
    assert len(m.matching(cells("*", "*"))) == 4 * 3 * 2  # self cells never match
    assert str(cells("lab04/app=frontend", "lab04/app=api", 8080)) == \
        "lab04/app=frontend -> lab04/app=api port 8080"
    assert str(cells("*", "lab04/db", protocol="TCP")) == "* -> lab04/db TCP (any port)"


# ------------------------------------------------------------------ policy_set, sources


def test_policy_set_reads_the_cluster_and_skips_terminating_pods() -> None:
    gone = pod("lab04", "old", "10.244.1.99", app="api")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cluster = PolicyCluster([*objects(DENY, API), gone])
    policies = policy_set(cluster, SOURCES)
    assert [p.ref for p in policies.policies] == ["lab04/api-from-frontend", "lab04/default-deny"]
    assert policies.pod("lab04/old") is None and policies.pod("lab04/api") is not None
    assert {p.source for p in policies.policies} == {"api.yaml", "deny.yaml"}


def test_workspace_sources_name_each_policy_file() -> None:
    docs = (policy("lab04", "a"), {**policy("x", "b"), "metadata": {"name": "b"}},
            {"kind": "Service", "metadata": {"name": "s"}})
    workspace = Workspace(None, docs, ("a.yaml", "sub/b.yaml", "svc.yaml"))
    assert workspace_sources(workspace) == {"lab04/a": "a.yaml", "default/b": "sub/b.yaml"}


# ------------------------------------------------------------------ expect_vs_observe


def test_expected_matches_observed_when_the_cluster_enforces() -> None:
    cluster = PolicyCluster(objects(DENY, API))
    m = judged(cluster)
    assert m.expected.matches
    assert m.expected.cell("lab04/frontend", "lab04/api", 8080).expected is True
    assert m.expected.cell("lab04/frontend", "lab04/db", 5432).expected is False
    assert "Observed matches expected in all 24 probed cells." in m.render()


def test_a_cell_connected_against_the_policies_is_explained_by_the_isolating_policy() -> None:
    cluster = PolicyCluster(objects(DENY, API),
                            {("lab04/frontend", f"{IPS['db']}:5432"): [Outcome.CONNECTED]})
    m = judged(cluster)
    [wrong] = m.expected.differences
    line = wrong.line()
    assert line.startswith("lab04/frontend -> lab04/db TCP/5432: expected blocked, "
                           "observed CONNECTED; lab04/db is isolated for ingress by "
                           "lab04/default-deny (deny.yaml)")
    text = m.render()
    assert text.index("Expected (from 2 NetworkPolicies") < text.index("Observed") \
        < text.index("1 of 24 probed cells differs")


def test_a_cell_blocked_against_the_policies_names_the_rule_that_allows_it() -> None:
    cluster = PolicyCluster(objects(DENY, API),
                            {("lab04/frontend", f"{IPS['api']}:8080"): [Outcome.TIMEOUT]})
    [wrong] = judged(cluster).expected.differences
    assert "expected allowed, observed TIMEOUT; allowed by lab04/api-from-frontend ingress[0] " \
           "(api.yaml)" in wrong.line()


def test_expected_json_has_expected_observed_and_differences() -> None:
    cluster = PolicyCluster(objects(DENY, API),
                            {("lab04/frontend", f"{IPS['api']}:8080"): [Outcome.TIMEOUT]})
    data = judged(cluster).expected.to_dict()
    assert set(data) == {"policies", "expected", "observed", "differences", "closed", "summary"}
    assert {"source": "lab04/frontend", "dest": "lab04/api", "port": 8080, "protocol": "TCP",
            "via": "pod-ip", "pod_port": 8080, "allowed": True} in data["expected"]["cells"]
    assert len(data["expected"]["cells"]) == 24
    [diff] = data["differences"]
    assert (diff["expected"], diff["observed"]) == ("allowed", "TIMEOUT")
    assert "allowed by lab04/api-from-frontend ingress[0] (api.yaml)" in diff["explanation"]
    assert data["summary"] == {"compared": 24, "differ": 1, "closed": 0}


def test_errors_are_shown_with_their_detail_and_never_match() -> None:
    cluster = PolicyCluster(objects(),
                            {("lab04/api", f"{IPS['db']}:5432"): [
                                Observation(Outcome.UNREACHABLE, "no route to host")]})
    m = judged(cluster)
    [wrong] = m.expected.differences
    assert observed_text(wrong.observed) == "UNREACHABLE: no route to host"
    assert "lab04/db is not isolated for ingress" in wrong.line()


# ------------------------------------------------------------------ expect / only


def test_expect_passes_when_every_named_cell_is_as_required() -> None:
    m = judged(PolicyCluster(objects(DENY, API)))
    m.expect("frontend -> api on 8080", allowed=cells("lab04/app=frontend", "lab04/app=api", 8080),
             blocked=[cells("lab04/app=frontend", "lab04/app=db")])


def test_over_permissive_cells_name_the_rule_that_allows_them() -> None:
    m = judged(PolicyCluster(objects(ALLOW_ALL)))
    text = failure(lambda: m.expect("db only from api",
                                    blocked=cells("lab04/app=frontend", "lab04/app=db", 5432)))
    assert "expected: db only from api: blocked: lab04/app=frontend -> lab04/app=db" in text
    assert "observed: 1 of 1 cells wrong:" in text
    assert ("lab04/frontend -> lab04/db TCP/5432: expected blocked, observed CONNECTED; "
            "allowed by lab04/allow-all ingress[0] (policies.yaml)") in text
    assert "Traffic the task forbids got through" in text  # the over-permissive hint


def test_over_restrictive_cells_say_which_policies_isolate_and_why_none_allows() -> None:
    m = judged(PolicyCluster(objects(DENY)))
    with pytest.raises(CheckFailed) as caught:
        m.expect("frontend -> api on 8080",
                 allowed=cells("lab04/app=frontend", "lab04/app=api", 8080), hint="Open 8080.")
    finding = caught.value.finding
    assert ("lab04/frontend -> lab04/api TCP/8080: expected allowed, observed TIMEOUT; "
            "lab04/api is isolated for ingress by lab04/default-deny (deny.yaml)") \
        in finding.observed
    assert finding.hint == "Open 8080." and not finding.hint_is_generic
    assert finding.hint_key == "OVER_RESTRICTIVE"


def test_a_cell_the_policies_allow_but_the_cluster_blocks_says_so() -> None:
    cluster = PolicyCluster(objects(DENY, API),
                            {("lab04/frontend", f"{IPS['api']}:8080"): [Outcome.TIMEOUT]})
    text = failure(lambda: judged(cluster).expect(
        "frontend -> api", allowed=cells("lab04/frontend", "lab04/api", 8080)))
    assert "the policies allow it, but the cluster did not enforce them as written" in text


def test_a_required_cell_refused_fails_saying_the_policies_allow_it_but_nothing_listens() -> None:
    cluster = PolicyCluster(objects(),
                            {("lab04/frontend", f"{IPS['db']}:8080"): [Outcome.REFUSED]})
    m = judged(cluster)
    assert m.expected.matches  # not a policy difference ...
    with pytest.raises(CheckFailed) as caught:  # ... but the requirement wants an answer
        m.expect("frontend -> db", allowed=cells("lab04/frontend", "lab04/db", 8080))
    finding = caught.value.finding
    assert ("lab04/frontend -> lab04/db TCP/8080: expected allowed, observed REFUSED (the "
            "policies allow it, but nothing listens on TCP/8080 of lab04/db: the application "
            "must answer there); lab04/frontend is not isolated for egress") in finding.observed
    assert finding.hint_key == "PORT_CLOSED" and "nothing answered" in finding.hint
    denied = judged(PolicyCluster(objects(DENY), {  # a rejecting CNI: REFUSED by the deny
        ("lab04/frontend", f"{IPS['db']}:8080"): [Outcome.REFUSED]}))
    text = failure(lambda: denied.expect("frontend -> db",
                                         allowed=cells("lab04/frontend", "lab04/db", 8080)))
    assert "observed REFUSED; lab04/db is isolated for ingress by lab04/default-deny" in text


def test_long_lists_of_wrong_cells_are_capped() -> None:
    m = judged(PolicyCluster(objects()))  # no policy: everything connects
    with pytest.raises(CheckFailed) as caught:
        m.expect("nothing into lab04", blocked=cells("*", "lab04/*"))
    observed = caught.value.finding.observed
    assert observed.startswith("18 of 18 cells wrong:")
    assert observed.splitlines()[-1].strip() == "and 8 more"
    assert sum("expected blocked" in line for line in observed.splitlines()) == 10


def test_specs_naming_no_probed_cell_are_the_checks_mistake() -> None:
    m = judged(PolicyCluster(objects()))
    with pytest.raises(CellSpecError) as caught:
        m.expect("x", allowed=cells("lab04/app=ghost", "lab04/db", 5432))
    text = str(caught.value)
    assert text.startswith("x: the allowed pattern lab04/app=ghost -> lab04/db port 5432 names "
                           "no probed cell of the matrix (a mistake in the lab's check")
    assert "no pod pair of the matrix matches it" in text and "lab04/api (app=api)" in text
    with pytest.raises(ValueError, match="port 9999 is not in this matrix"):
        m.expect("x", allowed=cells("*", "*", 9999))
    with pytest.raises(ValueError, match="both allowed and blocked"):
        m.expect("x", allowed=cells("lab04/api", "lab04/db"), blocked=cells("*", "lab04/db", 5432))
    with pytest.raises(ValueError, match="give allowed= and/or blocked="):
        m.expect("x")
    with pytest.raises(TypeError, match="not the string"):
        m.expect("x", allowed="lab04/api")  # type: ignore[arg-type]


def test_only_fails_on_extra_cells_and_ignores_the_allowed_ones() -> None:
    m = judged(PolicyCluster(objects(DENY, API)), ports=[8080, 5432, 9090])
    m.only("nothing else into lab04", allowed=[cells("lab04/app=frontend", "lab04/app=api", 8080)],
           within=cells("*", "lab04/*"))
    open_db = policy("lab04", "db-open", {"app": "db"}, ingress=[{}])
    m2 = judged(PolicyCluster(objects(DENY, API, open_db)), ports=[8080, 5432, 9090])
    with pytest.raises(CheckFailed) as caught:
        m2.only("nothing else", allowed=cells("lab04/app=frontend", "lab04/app=api", 8080),
                within=cells("*", "lab04/*"))
    finding = caught.value.finding
    assert finding.observed.startswith("9 of 26 cells wrong:")
    assert "allowed by lab04/db-open ingress[0]" in finding.observed
    assert finding.hint_key == "OVER_PERMISSIVE"
    with pytest.raises(CellSpecError, match="the within pattern ghost/\\* -> \\* any port names no "
                                            "probed cell"):
        m.only("x", allowed=[], within=cells("ghost/*", "*"))


# ------------------------------------------------------------------ the canary


def test_canary_proves_enforcement_and_removes_its_namespace() -> None:
    cluster = PolicyCluster(objects())
    found = prove_enforcement(cluster, timeout=10, probe_timeout=0.1)
    assert found.enforced is True, found.detail
    assert found.namespace.startswith(PREFIX)
    assert "blocked" in found.detail and "CNI kindnet" in found.detail
    kinds = [o["kind"] for o in cluster.applied]
    assert kinds == ["Namespace", "Pod", "Pod", "NetworkPolicy"]
    assert cluster.applied[0]["metadata"]["labels"] == {LABEL: "true"}
    server = cluster.applied[1]
    assert server["spec"]["containers"][0]["image"].startswith(
        "registry.k8s.io/e2e-test-images/agnhost:")
    assert ("Namespace", None, found.namespace) in cluster.deleted
    assert cluster.namespaces_named(PREFIX) == [] and not cluster.get("Pod", found.namespace)


def test_canary_on_a_cluster_that_does_not_enforce() -> None:
    cluster = PolicyCluster(objects(), enforce=False, cni="flannel", network_policy=False)
    found = prove_enforcement(cluster, timeout=10, probe_timeout=0.1)
    assert found.enforced is False
    assert found.detail.startswith("this cluster does not enforce NetworkPolicy (CNI flannel)")
    assert cluster.namespaces_named(PREFIX) == []


def test_canary_is_inconclusive_when_traffic_fails_before_any_policy() -> None:
    cluster = PolicyCluster(objects())
    cluster.on_probe = lambda spec: Observation(Outcome.TIMEOUT, "no answer")
    found = prove_enforcement(cluster, timeout=0.5, probe_timeout=0.1)
    assert found.enforced is None
    assert "before any policy" in found.detail and "TIMEOUT" in found.detail
    assert not any(o["kind"] == "NetworkPolicy" for o in cluster.applied)
    assert cluster.namespaces_named(PREFIX) == []


def test_canary_is_inconclusive_when_results_flap_after_the_deny() -> None:
    cluster = PolicyCluster(objects())
    answers = iter([Outcome.CONNECTED] + [Outcome.TIMEOUT, Outcome.CONNECTED] * 50)
    cluster.on_probe = lambda spec: Observation(next(answers))
    found = prove_enforcement(cluster, timeout=5, settle=0.3, probe_timeout=0.1)
    assert found.enforced is None and "mixed results" in found.detail


def test_canary_cleans_up_when_the_cluster_fails_mid_way() -> None:
    cluster = PolicyCluster(objects())
    cluster.apply_error["NetworkPolicy"] = Boom("admission said no")
    found = prove_enforcement(cluster, timeout=5, probe_timeout=0.1)
    assert found.enforced is None and "admission said no" in found.detail
    assert cluster.namespaces_named(PREFIX) == []


def test_canary_cleans_up_on_ctrl_c() -> None:
    cluster = PolicyCluster(objects())

    def interrupt(spec: ProbeSpec) -> Observation:
        raise KeyboardInterrupt

    cluster.on_probe = interrupt
    with pytest.raises(KeyboardInterrupt):
        prove_enforcement(cluster, timeout=5, probe_timeout=0.1)
    assert len([d for d in cluster.deleted if d[0] == "Namespace"]) == 1
    assert cluster.namespaces_named(PREFIX) == []


def test_canary_reports_a_namespace_it_could_not_delete() -> None:
    cluster = PolicyCluster(objects())
    cluster.delete_error = Boom("api server gone")
    found = prove_enforcement(cluster, timeout=5, probe_timeout=0.1)
    assert found.enforced is True
    assert "could not be deleted: api server gone" in found.detail


# ------------------------------------------------------------------ NetpolGrader


def test_grader_skips_when_the_cluster_does_not_enforce() -> None:
    cluster = PolicyCluster(objects(DENY), enforce=False, cni="flannel", network_policy=False,
                            propagation=0.1)
    grader = NetpolGrader(cluster, canary_timeout=5)
    with pytest.raises(pytest.skip.Exception) as caught:
        grader.matrix(["lab04"], [8080])
    assert str(caught.value.msg).startswith(
        "this cluster does not enforce NetworkPolicy (CNI flannel): the check cannot judge "
        "policies")
    with pytest.raises(pytest.skip.Exception):  # remembered: no second canary
        grader.matrix(["lab04"], [5432])
    assert sum(o["kind"] == "Namespace" for o in cluster.applied) == 1


def test_grader_fails_with_the_canary_story_when_inconclusive() -> None:
    cluster = PolicyCluster(objects())
    cluster.on_probe = lambda spec: (Observation(Outcome.ERROR, "no sandbox")
                                     if (spec.source.namespace or "").startswith(PREFIX) else None)
    grader = NetpolGrader(cluster, canary_timeout=0.5)
    text = failure(lambda: grader.matrix(["lab04"], [8080]))
    assert "the canary proves whether this cluster enforces NetworkPolicy" in text
    assert "ERROR: no sandbox" in text


def test_grader_matrix_is_cached_and_settles_until_the_cluster_follows_the_policies() -> None:
    cluster = PolicyCluster(objects(DENY, API), propagation=5)
    lagging = {"left": 2}

    def lag(spec: ProbeSpec) -> Observation | None:
        if spec.source.namespace == "lab04" and spec.target == IPS["db"] and lagging["left"]:
            lagging["left"] -= 1
            return Observation(Outcome.CONNECTED)  # the deny is not programmed yet
        return None

    grader = NetpolGrader(cluster, sources=SOURCES, canary_timeout=5)
    cluster.on_probe = lag
    m = grader.matrix(["lab04"], [5432], timeout=0.1)
    assert m.expected.matches and lagging["left"] == 0
    assert grader.matrix(["lab04"], [5432], timeout=0.1) is m
    assert grader.enforcement.enforced is True
    assert "lab04/api is isolated for ingress by lab04/api-from-frontend (api.yaml), " \
           "lab04/default-deny (deny.yaml)" in grader.explain("lab04/frontend", "lab04/api", 5432)
    assert "is not isolated for ingress" in grader.explain("lab04/api", IPS["prom"], 9090)
    with pytest.raises(ValueError, match="no pod 'lab04/ghost'"):
        grader.explain("lab04/ghost", "lab04/api", 80)


def test_grader_without_pods_fails_the_check() -> None:
    grader = NetpolGrader(PolicyCluster(objects()), canary_timeout=5)
    text = failure(lambda: grader.matrix(["empty"], [80]))
    assert "running pods with IPs in empty" in text


def test_grader_does_not_wait_for_differences_that_waiting_cannot_fix() -> None:
    cluster = PolicyCluster(objects(), {("lab04/frontend", f"{IPS['db']}:8080"): [Outcome.REFUSED]},
                            propagation=30)
    grader = NetpolGrader(cluster, canary_timeout=5)
    grader.require_enforcement()
    before = len(cluster.probes)
    m = grader.matrix(["lab04"], [8080], timeout=0.1)  # would take 30 s if it settled
    assert not m.expected.differences  # allowed by policy, port closed: a match
    assert [(c.observed.source, c.observed.dest) for c in m.expected.closed] == [
        ("lab04/frontend", "lab04/db")]
    # one pass (the REFUSED cell 3 attempts, 5 x 1), then its confirmation (1 + 5 x 1)
    assert len(cluster.probes) - before == 3 + 5 + 1 + 5


def test_a_refused_cell_the_policies_let_through_is_not_blocked() -> None:
    refused = {("lab04/frontend", f"{IPS['db']}:8080"): [Outcome.REFUSED]}
    open_db = judged(PolicyCluster(objects(), refused))  # no policy: nothing listens on 8080
    with pytest.raises(CheckFailed) as caught:
        open_db.expect("db closed", blocked=cells("lab04/frontend", "lab04/db", 8080))
    assert ("expected blocked, observed REFUSED (REFUSED only because nothing listens there: "
            "the policies let it through); lab04/frontend is not isolated for egress") \
        in caught.value.finding.observed
    assert "lab04/db is not isolated for ingress" in caught.value.finding.observed
    assert caught.value.finding.hint_key == "OVER_PERMISSIVE"
    closed_db = judged(PolicyCluster(objects(DENY), refused))  # a rejecting CNI: REFUSED is a deny
    closed_db.expect("db closed", blocked=cells("lab04/frontend", "lab04/db", 8080))
