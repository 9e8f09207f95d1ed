"""The conformance runner on an in-memory cluster: good engines pass, wrong ones fail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_conformance_fake import FakeClock, FakeCluster

from clusters.engine import Capabilities
from clusters.probing import Outcome
from grader.conformance import runner as runner_mod
from grader.conformance.model import load, parse
from grader.conformance.report import RunReport, Status
from grader.conformance.runner import FixtureConflict, Options, Runner
from grader.matrix import MatrixCell, MatrixPod, MatrixResult

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The runner's sleeps (``wait_seconds``) advance a fake clock the fake cluster reads."""
    fake_clock = FakeClock()
    monkeypatch.setattr(runner_mod, "time", fake_clock)
    return fake_clock


def run(fake: FakeCluster, files: Sequence[str | Path], cases: Sequence[str] = (),
        **options: Any) -> RunReport:
    suites = [load(f if isinstance(f, Path) else ACCEPTANCE / f) for f in files]
    opts = Options(cases=frozenset(cases) if cases else None, **options)
    return Runner(fake, opts).run(suites)


def statuses(report: RunReport) -> dict[str, Status]:
    return {c.id: c.status for c in report.cases()}


def failed_checks(report: RunReport, case_id: str) -> dict[str, str]:
    case = next(c for c in report.cases() if c.id == case_id)
    return {chk.key: chk.observed for s in case.steps for r in s.runs for chk in r.checks
            if not chk.ok}


def test_every_services_case_passes_on_a_faithful_engine(clock: FakeClock) -> None:
    fake = FakeCluster(clock=clock)
    report = run(fake, ["services.yaml"])
    assert statuses(report) == {f"S{i}": Status.PASS for i in range(1, 7)}, \
        [line for c in report.cases() for line in (c.reason, *(s.reason for s in c.steps))]
    assert report.exit_code == 0
    assert not fake.has("Namespace", None, "svc")  # fixture removed at the end


def test_every_dns_case_passes_on_a_faithful_engine(clock: FakeClock) -> None:
    report = run(FakeCluster(clock=clock), ["dns.yaml"])
    assert statuses(report) == {f"D{i}": Status.PASS for i in range(1, 6)}


@pytest.mark.parametrize(("misbehaviour", "case", "key", "seen"), [
    ("no-reject", "S2", "outcome", "connected"),
    ("sticky", "S1", "distinct_backends", "1:"),
    ("no-affinity", "S3", "distinct_backends", "3:"),
    ("local-leaks", "S6", "outcome", "connected"),
])
def test_a_misbehaving_kube_proxy_fails_the_case(clock: FakeClock, misbehaviour: str, case: str,
                                                 key: str, seen: str) -> None:
    report = run(FakeCluster([misbehaviour], clock=clock), ["services.yaml"], [case])
    assert statuses(report) == {case: Status.FAIL}
    assert seen in failed_checks(report, case)[key]
    assert report.exit_code == 1


def test_a_headless_answer_with_a_not_ready_pod_fails_d4(clock: FakeClock) -> None:
    fake = FakeCluster(["dns-not-ready"], clock=clock)
    report = run(fake, ["dns.yaml"], ["D4"])
    assert statuses(report) == {"D4": Status.FAIL}
    u1 = next(p for p in fake.probes if p.kind == "dns")  # the probe ran
    assert u1.target == "h.n.svc.cluster.local."
    observed = failed_checks(report, "D4")["answers"]
    assert observed.count("10.244.") == 4  # p1, p2, p3 and the never-ready u1


def test_a_failing_step_skips_the_rest_of_the_case(clock: FakeClock) -> None:
    report = run(FakeCluster(["no-affinity"], clock=clock), ["services.yaml"], ["S4"])
    case = report.cases()[0]
    assert [s.status for s in case.steps] == [Status.FAIL]
    assert case.reason == "2 later step(s) skipped"


def test_only_the_chosen_cases_run(clock: FakeClock) -> None:
    fake = FakeCluster(clock=clock)
    report = run(fake, ["services.yaml", "dns.yaml"], ["S2", "D3"])
    assert statuses(report) == {"S2": Status.PASS, "D3": Status.PASS}
    assert {s.source.pod for s in fake.probes} == {"client-far", "client"}


def test_fan_out_runs_once_per_ready_node(clock: FakeClock) -> None:
    fake = FakeCluster(clock=clock)
    report = run(fake, ["services.yaml"], ["S5"])
    step = report.cases()[0].steps[1]
    assert sorted(r.label for r in step.runs) == [
        "nodeIP 172.30.0.2", "nodeIP 172.30.0.3", "nodeIP 172.30.0.4"]
    assert {p.target for p in fake.probes if p.source.is_host} == {
        "172.30.0.2", "172.30.0.3", "172.30.0.4"}


def test_cases_needing_what_the_engine_lacks_are_not_applicable(clock: FakeClock) -> None:
    fake = FakeCluster(caps=Capabilities(services=True, dns=False, host_ip="172.30.0.1"),
                       clock=clock)
    report = run(fake, ["dns.yaml"])
    assert set(statuses(report).values()) == {Status.NA}
    assert "no cluster DNS" in report.cases()[0].reason
    assert report.exit_code == 0  # not applicable never fails the run
    assert not fake.applied  # no fixture was built for nothing


def test_a_foreign_namespace_is_never_overwritten(clock: FakeClock) -> None:
    fake = FakeCluster(clock=clock)
    fake.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "svc"}}])
    with pytest.raises(FixtureConflict, match="svc"):
        run(fake, ["services.yaml"])
    assert fake.has("Namespace", None, "svc")


def test_keep_fixture_leaves_it_and_a_rerun_starts_clean(clock: FakeClock) -> None:
    fake = FakeCluster(clock=clock)
    run(fake, ["services.yaml"], ["S2"], keep_fixture=True)
    assert fake.has("Namespace", None, "svc")
    assert not fake.has("Service", "svc", "no-endpoints")  # the case's object is gone anyway
    again = run(fake, ["services.yaml"], ["S2"])
    assert statuses(again) == {"S2": Status.PASS}


RESTORE = """
suite: restore
version: 1
fixture: f
fixtures:
  f:
    objects: |
      apiVersion: v1
      kind: Namespace
      metadata: {name: r}
      ---
      apiVersion: v1
      kind: Pod
      metadata: {name: server, namespace: r, labels: {app: web}}
      spec: {containers: [{name: c}]}
      ---
      apiVersion: v1
      kind: Pod
      metadata: {name: client, namespace: r, labels: {role: client}}
      spec: {containers: [{name: c}]}
      ---
      apiVersion: v1
      kind: Service
      metadata: {name: web, namespace: r}
      spec:
        selector: {app: web}
        ports: [{name: http, port: 80, protocol: TCP}]
cases:
  - id: R1
    title: changes everything, then fails
    steps:
      - apply: |
          apiVersion: v1
          kind: Service
          metadata: {name: extra, namespace: r}
          spec:
            selector: {app: web}
            ports: [{name: http, port: 80, protocol: TCP}]
          ---
          apiVersion: v1
          kind: Service
          metadata: {name: web, namespace: r}
          spec:
            selector: {app: nothing}
            ports: [{name: http, port: 80, protocol: TCP}]
        label:
          - {kind: Pod, namespace: r, name: client, set: {role: other, extra: 'yes'}}
        delete:
          - {kind: Pod, namespace: r, name: server}
        probe:
          requests: {from: r/client, to: '{{clusterIP r/web}}:80', count: 2, protocol: tcp}
        expect:
          all_succeed: true
  - id: R2
    title: sees the fixture as it was
    steps:
      - probe:
          requests: {from: r/client, to: '{{clusterIP r/web}}:80', count: 2, protocol: http}
        expect:
          backends_equal_ready_pods: {namespace: r, selector: app=web}
"""


def test_restore_puts_the_fixture_back_after_a_failed_case(tmp_path: Path, clock: FakeClock) -> None:
    file = tmp_path / "restore.yaml"
    file.write_text(RESTORE)
    fake = FakeCluster(clock=clock)
    report = run(fake, [file], keep_fixture=True)
    assert statuses(report) == {"R1": Status.FAIL, "R2": Status.PASS}
    assert "refused" in report.cases()[0].steps[0].runs[0].checks[0].observed
    assert not fake.has("Service", "r", "extra")  # created by the case: deleted
    assert fake.get("Service", "r", "web")[0]["spec"]["selector"] == {"app": "web"}  # re-applied
    assert fake.has("Pod", "r", "server")  # deleted by the case: put back
    assert fake.get("Pod", "r", "client")[0]["metadata"]["labels"] == {"role": "client"}


def test_a_case_interrupted_by_ctrl_c_is_restored_and_the_fixture_removed(
        tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "restore.yaml"
    file.write_text(RESTORE)
    fake = FakeCluster(clock=clock)
    real_probe = fake.probe

    def interrupt(spec: Any) -> Any:
        if fake.has("Service", "r", "extra"):
            raise KeyboardInterrupt
        return real_probe(spec)

    monkeypatch.setattr(fake, "probe", interrupt)
    report = run(fake, [file])
    assert report.interrupted and report.exit_code == 130
    assert not fake.has("Namespace", None, "r")
    assert not fake.has("Service", "r", "extra")


def _matrix_for(fake: FakeCluster) -> Any:
    """probe_matrix for the fake: a namespace with a deny-all-ingress policy drops traffic in."""
    def probe_matrix(cluster: Any, pods: Sequence[MatrixPod], *, ports: Sequence[int],
                     protocols: Sequence[str], via: Sequence[str], timeout: float,
                     attempts: int) -> MatrixResult:
        denied = {p["metadata"]["namespace"] for p in fake.get("NetworkPolicy")
                  if "ignore-policy" not in fake.misbehave}
        cells = [MatrixCell(s.label, d.label, port, proto, v, f"{d.ip}:{port}",
                            None if s == d else (Outcome.TIMEOUT if d.namespace in denied
                                                 else Outcome.CONNECTED),
                            0 if s == d else attempts, "self" if s == d else "")
                 for s in pods for d in pods for port in ports for proto in protocols for v in via]
        labels = [p.label for p in pods]
        return MatrixResult(cells, sources=labels, destinations=labels, ports=list(ports),
                            protocols=list(protocols), via=list(via))
    return probe_matrix


@pytest.mark.parametrize(("misbehave", "expected"), [((), Status.PASS),
                                                      (("ignore-policy",), Status.FAIL)])
def test_matrix_cases_judge_every_cell(clock: FakeClock, misbehave: tuple[str, ...],
                                       expected: Status) -> None:
    fake = FakeCluster(misbehave, clock=clock)
    report = run(fake, ["netpol.yaml"], ["N1"], matrix=_matrix_for(fake))
    assert statuses(report) == {"N1": expected}
    if expected is Status.FAIL:
        observed = failed_checks(report, "N1")["blocked"]
        assert "expected blocked, observed CONNECTED" in observed


def test_a_matrix_cell_that_errored_says_why(clock: FakeClock) -> None:
    fake = FakeCluster(("ignore-policy",), clock=clock)
    plain = _matrix_for(fake)

    def broken(*args: Any, **kwargs: Any) -> MatrixResult:
        result = plain(*args, **kwargs)
        result.cells[1] = replace(result.cells[1], outcome=Outcome.ERROR,
                                  detail="socket: too many open files")
        return result

    report = run(fake, ["netpol.yaml"], ["N1"], matrix=broken)
    observed = failed_checks(report, "N1")["blocked"]
    assert "observed ERROR (socket: too many open files)" in observed


def test_policy_cases_are_not_applicable_when_the_engine_does_not_enforce_policy(
        clock: FakeClock) -> None:
    fake = FakeCluster(caps=Capabilities(services=True, dns=True, network_policy=False),
                       clock=clock)
    report = run(fake, ["netpol.yaml"], ["N1", "N2"])
    assert statuses(report) == {"N1": Status.NA, "N2": Status.NA}
    assert "does not enforce NetworkPolicy" in report.cases()[0].reason


def test_requests_to_a_service_name_resolve_before_every_request(clock: FakeClock,
                                                                 tmp_path: Path) -> None:
    text = RESTORE.split("cases:")[0] + """cases:
  - id: N
    title: by name
    steps:
      - probe:
          requests: {from: r/client, to: 'web.r', count: 3, protocol: http}
        expect:
          all_succeed: true
          dialed_address_in: ['{{clusterIP r/web}}']
"""
    suite = parse(text, tmp_path / "byname.yaml")
    fake = FakeCluster(clock=clock)
    report = Runner(fake, Options()).run([suite])
    assert statuses(report) == {"N": Status.PASS}
    kinds = [p.kind for p in fake.probes]
    assert kinds == ["dns", "http"] * 3
    assert fake.probes[1].port == 80  # the Service's first port
