"""The grader plugin end to end, driven through pytester against a fake cluster.

A lab's checks are written to a temporary directory and run with ``-p grader.plugin`` and
the ``--lab-*`` options, exactly like ``lab check`` runs them; the cluster is a fake whose
probes return scripted observations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from clusters.engine import ApplyResult, Capabilities, ExecResult, KindRef
from clusters.errors import ClusterNotFound
from clusters.local.kinds import resolve_kind
from clusters.probing import Observation, Outcome, ProbeSpec

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]


def pod(name: str, ip: str, node: str, ns: str = "lab01", **labels: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


class FakeCluster:
    """A Cluster whose pods are given and whose probes answer from a script per target.

    ``script[target]`` is a list of observations returned in order; the last one repeats.
    """

    engine = "fake"

    def __init__(self, pods: Sequence[dict[str, Any]] = (),
                 script: Mapping[str, Sequence[Observation]] | None = None) -> None:
        self.name = "fake"
        self.objects = [dict(p) for p in pods]
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.probes: list[ProbeSpec] = []
        self.converged: list[Sequence[str] | None] = []

    def capabilities(self) -> Capabilities:
        return Capabilities(network_policy=True, services=True, dns=True)

    def resolve_kind(self, kind: str) -> KindRef:
        info = resolve_kind(kind)  # the built-in kinds, as the local engine knows them
        return KindRef(info.kind, info.namespaced)

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        self.objects.extend(dict(d) for d in docs)
        return [ApplyResult(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"],
                            "created") for d in docs]

    def get(self, kind: str, namespace: str | None = None, name: str | None = None,
            selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind
                and namespace in (None, o["metadata"]["namespace"])
                and name in (None, o["metadata"]["name"])]

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        before = len(self.objects)
        self.objects = [o for o in self.objects if not (
            o["kind"] == kind and o["metadata"]["name"] == name)]
        return len(self.objects) < before

    def label(self, kind: str, namespace: str | None, name: str,
              set_labels: Mapping[str, str], remove: Sequence[str] = ()) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)[0]
        obj["metadata"]["labels"].update(set_labels)
        return obj

    def exec(self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
             timeout: float | None = None) -> ExecResult:
        return ExecResult(0, argv=tuple(argv))

    def node_exec(self, node: str, argv: Sequence[str], *, capture: bool = False,
                  timeout: float | None = None) -> ExecResult:
        return ExecResult(0, argv=tuple(argv))

    def wait_converged(self, namespaces: Sequence[str] | None = None,
                       timeout: float = 60) -> None:
        self.converged.append(namespaces)

    def probe(self, spec: ProbeSpec) -> Observation:
        self.probes.append(spec)
        if spec.source.pod is not None and not self.get("Pod", spec.source.namespace,
                                                         spec.source.pod):
            return Observation(Outcome.ERROR, f"source {spec.source}: no such pod")  # as local
        queue = self.script.get(spec.target)
        if not queue:
            return Observation(Outcome.ERROR, f"unscripted target {spec.target}")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def reset_namespaces(self, namespaces: Sequence[str]) -> None:
        self.objects = [o for o in self.objects if o["metadata"]["namespace"] not in namespaces]


class FakeEngine:
    name = "fake"

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def connect(self, name: str) -> FakeCluster:
        if name != self.cluster.name:
            raise ClusterNotFound(f"cluster {name} is not running")
        return self.cluster


PODS = [pod("client", "10.244.1.4", "worker", app="client"),
        pod("server", "10.244.2.5", "worker2", app="server")]
OK_HTTP = Observation(Outcome.CONNECTED, status=200, body="server\n", elapsed=0.01)
TIMEOUT = Observation(Outcome.TIMEOUT, elapsed=1.0)

CHECKS = '''
from grader import expect_blocked, expect_reach, check

def test_client_reaches_server(probe, pods):
    """client reaches server across nodes"""
    server = pods.get("lab01", "server")
    expect_reach(probe, src="lab01/client", dst=server, port=8080, protocol="http",
                 path="/hostname", body="server",
                 hints={"TIMEOUT": "Packets to the server vanish: check the routes.",
                        "default": "Something else is wrong."})

def test_pods_on_different_nodes(pods):
    a, b = pods.get("lab01", "client"), pods.get("lab01", "server")
    check(a.node != b.node, expected="pods on different nodes", observed=f"both on {a.node}")
'''


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    """The fake cluster, reachable through the real ``cluster`` fixture (get_engine)."""
    from clusters import selection

    cluster = FakeCluster(PODS)
    monkeypatch.setattr(selection, "get_engine", lambda name: FakeEngine(cluster))
    return cluster


def run_lab(pytester: pytest.Pytester, checks: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    pytester.makepyfile(test_checks=checks)
    report = pytester.path / "report.json"
    result = pytester.runpytest("-p", "grader.plugin", "--lab-cluster", "fake", "--lab-engine",
                                "fake", "--lab-id", "01", "--lab-namespaces", "lab01",
                                "--lab-report", str(report), "--lab-settle", "0.3", "-q",
                                *extra)
    return result, json.loads(report.read_text())


def test_passing_checks_are_one_line_each(pytester: pytest.Pytester, fake: FakeCluster) -> None:
    fake.script = {"10.244.2.5": [OK_HTTP]}
    result, report = run_lab(pytester, CHECKS)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["PASS  client reaches server across nodes",
                                 "PASS  pods on different nodes"])
    assert "expected" not in result.stdout.str()
    assert fake.converged == [["lab01"]]
    spec = fake.probes[0]
    assert (spec.kind, str(spec.source), spec.port, spec.path) == (
        "http", "lab01/client", 8080, "/hostname")
    assert len(fake.probes) == 3  # the first success, confirmed twice
    assert report["passed"] is True
    assert report["summary"] == {"passed": 2, "failed": 0, "unstable": 0, "errors": 0,
                                 "skipped": 0}
    assert (report["lab"], report["cluster"], report["engine"]) == ("01", "fake", "fake")


def test_failure_shows_the_finding_and_the_hint(pytester: pytest.Pytester,
                                                fake: FakeCluster) -> None:
    fake.script = {"10.244.2.5": [TIMEOUT]}
    fake.objects[1]["spec"]["nodeName"] = "worker"
    result, report = run_lab(pytester, CHECKS)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "FAIL  client reaches server across nodes",
        "  client → 10.244.2.5:8080 (lab01/server)   [[]http /hostname[]]",
        '  expected: CONNECTED, body "server"',
        "  observed: TIMEOUT after 1.0s",
        "  hint:     Packets to the server vanish: check the routes.",
        "FAIL  pods on different nodes",
        "  expected: pods on different nodes",
        "  observed: both on worker",
    ])
    assert "Traceback" not in result.stdout.str()
    first = report["checks"][0]
    assert first["outcome"] == "failed"
    assert first["name"] == "client reaches server across nodes"
    assert first["id"] == "test_checks.py::test_client_reaches_server"
    assert first["finding"]["observed"] == "TIMEOUT after 1.0s"
    assert first["finding"]["hint"] == "Packets to the server vanish: check the routes."
    assert first["finding"]["observations"][-1]["outcome"] == "TIMEOUT"
    assert report["passed"] is False
    assert report["summary"]["failed"] == 2


def test_wrong_backend_uses_the_default_hint(pytester: pytest.Pytester,
                                             fake: FakeCluster) -> None:
    fake.script = {"10.244.2.5": [Observation(Outcome.CONNECTED, status=200, body="other")]}
    result, report = run_lab(pytester, CHECKS)
    result.stdout.fnmatch_lines(['  observed: CONNECTED (HTTP 200), body "other"',
                                 "  hint:     Something else is wrong."])
    assert report["checks"][0]["finding"]["hint_key"] == "BODY"


def test_flapping_result_is_reported_unstable(pytester: pytest.Pytester,
                                              fake: FakeCluster) -> None:
    fake.script = {"10.244.2.5": [OK_HTTP, TIMEOUT, OK_HTTP]}
    result, report = run_lab(pytester, CHECKS)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "UNSTABLE client reaches server across nodes",
        '  observed: UNSTABLE over 2 probes: CONNECTED (HTTP 200), body "server", '
        "TIMEOUT after 1.0s",
        "  hint:     Something else is wrong.",
    ])
    check = report["checks"][0]
    assert check["outcome"] == "unstable"
    assert check["finding"]["hint_key"] == "UNSTABLE" and check["finding"]["unstable"] is True
    assert [o["outcome"] for o in check["finding"]["observations"]] == ["CONNECTED", "TIMEOUT"]


def test_missing_pod_is_a_failed_check_listing_the_pods(pytester: pytest.Pytester,
                                                        fake: FakeCluster) -> None:
    checks = '''
def test_web(pods):
    pods.get("lab01", "web")
'''
    result, report = run_lab(pytester, checks)
    result.stdout.fnmatch_lines([
        "FAIL  web",
        "  expected: pod lab01/web exists",
        "  observed: no such pod; pods in lab01: client (app=client), server (app=server)",
    ])
    assert report["checks"][0]["outcome"] == "failed"


def test_missing_source_pod_in_a_probe_fails_the_check(pytester: pytest.Pytester,
                                                       fake: FakeCluster) -> None:
    checks = '''
from grader import expect_reach

def test_from_ghost(probe):
    expect_reach(probe, src="ghost", dst="10.244.2.5", port=80)
'''
    result, report = run_lab(pytester, checks)
    result.stdout.fnmatch_lines(["FAIL  from ghost", "  expected: pod lab01/ghost exists"])
    assert report["summary"]["failed"] == 1


def test_plain_assertions_and_exceptions_are_reported(pytester: pytest.Pytester,
                                                      fake: FakeCluster) -> None:
    checks = '''
import pytest

def test_plain():
    assert 1 + 1 == 3, "arithmetic is broken"

def test_crash():
    raise RuntimeError("the check has a bug")

@pytest.fixture
def broken():
    raise KeyError("setup")

def test_setup_error(broken):
    pass

def test_skipped():
    pytest.skip("needs NetworkPolicy")
'''
    result, report = run_lab(pytester, checks)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "FAIL  plain", "  arithmetic is broken*",
        "FAIL  crash", "  RuntimeError: the check has a bug (at *test_checks.py:*)",
        "ERROR setup error", "  KeyError: 'setup'*",
        "SKIP  skipped",
    ])
    outcomes = {c["name"]: (c["outcome"], c["message"]) for c in report["checks"]}
    assert outcomes["plain"][0] == "failed"
    assert outcomes["plain"][1].startswith("arithmetic is broken")
    assert outcomes["crash"][0] == "failed"
    assert outcomes["setup error"][0] == "error"
    assert outcomes["skipped"] == ("skipped", "needs NetworkPolicy")
    assert report["summary"] == {"passed": 0, "failed": 2, "unstable": 0, "errors": 1,
                                 "skipped": 1}


def test_unreachable_cluster_errors_every_check_and_still_reports(
    pytester: pytest.Pytester, fake: FakeCluster
) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    report = pytester.path / "r.json"
    result = pytester.runpytest("-p", "grader.plugin", "--lab-cluster", "gone",
                                "--lab-report", str(report), "-q")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["ERROR client reaches server across nodes",
                                 "  cannot use cluster gone (local engine): *not running*"])
    data = json.loads(report.read_text())
    assert data["summary"]["errors"] == 2
    assert data["passed"] is False


def test_collection_error_is_reported(pytester: pytest.Pytester, fake: FakeCluster) -> None:
    result, report = run_lab(pytester, "def test_x(:\n    pass\n")
    assert result.ret != 0
    assert report["summary"]["errors"] == 1
    assert "SyntaxError" in report["checks"][0]["message"]


def test_hints_file_overrides_generic_hints(pytester: pytest.Pytester,
                                            fake: FakeCluster) -> None:
    fake.script = {"10.244.2.5": [Observation(Outcome.REFUSED, "connection refused")]}
    checks = '''
from grader import expect_reach

def test_reach(probe):
    expect_reach(probe, src="client", dst="10.244.2.5", port=80)

def test_reach_again(probe):
    expect_reach(probe, src="client", dst="10.244.2.5", port=80)
'''
    hints = pytester.path / "hints.yaml"
    hints.write_text("test_reach:\n  REFUSED: Is the server listening on port 80?\n")
    result, report = run_lab(pytester, checks, "--lab-hints", str(hints))
    result.stdout.fnmatch_lines(["FAIL  reach", "*hint:     Is the server listening on port 80?",
                                 "FAIL  reach again", "*hint:     Something actively refused*"])
    assert report["checks"][0]["hint"] == "Is the server listening on port 80?"


def test_workspace_fixture_reads_documents(pytester: pytest.Pytester, fake: FakeCluster) -> None:
    ws = pytester.mkdir("ws")
    (ws / "policy.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny, namespace: lab01}\nspec: {podSelector: {}}\n---\n"
    )
    checks = '''
import pytest

def test_ws(workspace):
    (doc,) = workspace.find("NetworkPolicy", "deny")
    assert workspace.sources == ("policy.yaml",)
    with pytest.raises(TypeError):
        doc["spec"]["podSelector"]["x"] = 1
'''
    result, _ = run_lab(pytester, checks, "--lab-workspace", str(ws))
    assert result.ret == 0


def test_without_lab_options_the_plugin_stays_quiet(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("-p", "grader.plugin", "-q")
    assert result.ret == 0
    assert "PASS" not in result.stdout.str()
    result.stdout.fnmatch_lines(["1 passed*"])


def test_entry_point_and_dash_p_register_once(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed entry point plus ``-p grader.plugin`` must not load the plugin twice."""
    dist = pytester.mkdir("site") / "kube_netlab_fake-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kube-netlab-fake\n"
                                   "Version: 0.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nkube_netlab = grader.plugin\n")
    pythonpath = os.pathsep.join([str(REPO), str(dist.parent)])
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_plain="def test_ok(probe):\n    pass\n")
    for args in (["-p", "grader.plugin"], [], ["-p", "kube_netlab"]):
        # --lab-settle exists only when the plugin is loaded (by the entry point for [])
        result = pytester.runpytest_subprocess(*args, "--lab-settle", "1", "--collect-only")
        assert result.ret == 0, result.stderr.str()
        assert "already registered" not in result.stderr.str()
    blocked = pytester.runpytest_subprocess("-p", "no:kube_netlab", "--lab-settle", "1")
    assert blocked.ret == pytest.ExitCode.USAGE_ERROR
