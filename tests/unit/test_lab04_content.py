"""Lab 04 (NetworkPolicy) without a cluster: its definition loads, its manifests are valid
and run on the local engine, its pages are in the docs, and its checks pass on the
solution and fail on the starter for the reasons the starter was written to teach.

The checks run against a fake cluster that enforces policy exactly as the pure policy
engine says (:class:`~policy_fakes.PolicyCluster`), holding the lab's objects as the local
engine stores them (validated and defaulted), with pods made from the Deployments, a
coredns pod, and probes that also know which ports each pod really serves (the local
engine's runtime plan) and where a Service sends its packets. The root test
(tests/root/test_lab04.py) runs the same checks against the real local engine.

The hidden checks (run only when grading) add pods of their own; here they are judged on
the solution, and on a submission fitted to the visible checks (tests/root/data/
lab04-fitted), which must pass every visible check and fail the hidden ones.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from modload import load_file
from policy_fakes import PolicyCluster
from test_docs_build import _mkdocs, _snippets

from clusters import manifests
from clusters.local import validation
from clusters.local.runtime.plan import plan_pod
from clusters.netpol.model import HostEndpoint
from clusters.probing import Observation, Outcome, ProbeSpec
from grader import CheckFailed, Pods, Prober
from grader.policy import NetpolGrader, policy_set
from labs.catalogue import Lab, default_catalogue

ROOT = Path(__file__).resolve().parents[2]
LAB: Lab = default_catalogue().get("04")
NS = "lab04"
WORKERS = ("netlab-worker", "netlab-worker2")
KUBE_DNS_IP = "10.96.0.10"
API_NAME = "api.lab04.svc.cluster.local."
FITTED = ROOT / "tests" / "root" / "data" / "lab04-fitted"
HIDDEN = {
    "test_new_pods_are_isolated_by_default": "default-deny",
    "test_new_frontend_and_api_pods_get_their_path": "frontend-to-api",
    "test_new_api_and_db_pods_get_their_path": "api-to-db",
    "test_the_scraper_reads_new_pods_metrics": "metrics",
}
#: What the fitted submission gets wrong: pods made without a Deployment (no
#: pod-template-hash) are not selected, so new pods get none of their task's paths; the
#: default deny still isolates them, so nothing extra gets through either.
FITTED_FAILS = set(HIDDEN) - {"test_new_pods_are_isolated_by_default"}

#: Every check, and which of them the starter passes (see the comments in the starter):
#: the default deny forgets egress (so DNS and "the api reaches the db" work), the api's
#: ingress names the Service port 80 instead of 8080, the db's ingress has one dash too
#: many, and the scraper's peers are OR-ed (the toolbox gets in too).
STARTER_PASSES = {
    "test_only_frontend_reaches_api",  # nobody reaches the api on 8080: nothing extra
    "test_api_reaches_db_on_5432",
    "test_dns_over_udp_from_every_pod",
    "test_dns_over_tcp_from_every_pod",
    "test_scraper_reaches_every_metrics_port",
}


# --------------------------------------------------------------------------- the fake cluster


def _documents(folder: Path) -> list[dict[str, Any]]:
    """Every document under ``folder``, validated and defaulted as the local engine stores it."""
    return [doc for file in manifests.read(str(folder))
            for doc in validation.validate_all(file.docs, file.source)]


def _pod_from(workload: Mapping[str, Any], index: int) -> dict[str, Any]:
    template = workload["spec"]["template"]
    name = f"{workload['metadata']['name']}-7c9f{index}-x{index}k2q"
    labels = {**template["metadata"].get("labels", {}), "pod-template-hash": f"7c9f{index}"}
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": workload["metadata"]["namespace"],
                         "labels": labels},
            "spec": dict(template["spec"])}


def _run(pod: dict[str, Any], index: int) -> dict[str, Any]:
    node = index % 2
    pod["spec"] = {**pod["spec"], "nodeName": WORKERS[node]}
    pod["status"] = {"phase": "Running", "podIP": f"10.244.{node + 1}.{10 + index}",
                     "conditions": [{"type": "Ready", "status": "True"}]}
    return pod


def _kube_system() -> list[dict[str, Any]]:
    coredns = _run({"kind": "Pod", "metadata": {
        "name": "coredns-5d78c9869d-abcde", "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns"}}, "spec": {"containers": [{
            "name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.1",
            "args": ["-conf", "/etc/coredns/Corefile"],
            "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]}]}}, 0)
    return [
        {"kind": "Namespace", "metadata": {
            "name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}},
        coredns,
        {"kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "spec": {"clusterIP": KUBE_DNS_IP, "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": 53,
                             "protocol": "TCP"}]}},
    ]


def lab_objects(workspace: Path) -> list[dict[str, Any]]:
    """The cluster after ``lab check 04`` with ``workspace``: setup, workspace, pods."""
    objects: list[dict[str, Any]] = []
    index = 1
    services = 0
    for doc in [*_documents(LAB.folder / "setup"), *_documents(workspace)]:
        if doc["kind"] == "Deployment":
            for _ in range(doc["spec"].get("replicas", 1)):
                objects.append(_run(_pod_from(doc, index), index))
                index += 1
            continue
        if doc["kind"] == "Pod":
            doc = _run(doc, index)
            index += 1
        if doc["kind"] == "Service":
            services += 1
            doc["spec"]["clusterIP"] = f"10.96.0.{100 + services}"
        objects.append(doc)
    return [*objects, *_kube_system()]


class LabCluster(PolicyCluster):
    """An enforcing fake that also answers like the local engine's pods: a Service address
    goes to a backend pod's target port, an allowed connection to a port nobody serves is
    REFUSED, and DNS queries reach the coredns pod only where the policies allow it."""

    def _serves(self, pod: Mapping[str, Any], protocol: str, port: int) -> bool:
        plan = plan_pod(dict(pod))
        return any(s.protocol == protocol and s.port == port
                   for c in plan.containers for s in c.servers)

    def _backend(self, address: str, port: int, protocol: str) -> tuple[dict[str, Any], int] | None:
        for svc in self.get("Service"):
            spec = svc["spec"]
            if spec.get("clusterIP") != address:
                continue
            for entry in spec.get("ports") or ():
                if entry["port"] == port and entry.get("protocol", "TCP") == protocol:
                    for pod in self.get("Pod", svc["metadata"]["namespace"]):
                        labels = pod["metadata"].get("labels") or {}
                        if all(labels.get(k) == v for k, v in spec["selector"].items()):
                            return pod, int(entry["targetPort"])
        return None

    def probe(self, spec: ProbeSpec) -> Observation:
        if spec.source.pod is None or spec.kind not in ("tcp", "udp", "dns"):
            return super().probe(spec)
        with self._lock:
            self.probes.append(spec)
        policies = self.policy_set()
        src = policies.pod(str(spec.source))
        if src is None:
            return Observation(Outcome.ERROR, f"source {spec.source}: no such pod")
        if spec.kind == "dns":
            return self._dns(spec, policies)
        protocol = "UDP" if spec.kind == "udp" else "TCP"
        target: tuple[dict[str, Any], int] | None = None
        found = [p for p in self.get("Pod") if (p.get("status") or {}).get("podIP") == spec.target]
        if found:
            target = found[0], int(spec.port or 0)
        else:
            target = self._backend(spec.target, int(spec.port or 0), protocol)
        if target is None:
            return Observation(Outcome.TIMEOUT, "no such address", elapsed=spec.timeout)
        pod, port = target
        dst = policies.pod(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
        if not policies.verdict(src, dst or HostEndpoint(spec.target), port, protocol).allowed:
            return Observation(Outcome.TIMEOUT, "no answer", elapsed=spec.timeout)
        if not self._serves(pod, protocol, port):
            return Observation(Outcome.REFUSED, "connection refused", elapsed=0.001)
        return Observation(Outcome.CONNECTED, elapsed=0.001)

    def _dns(self, spec: ProbeSpec, policies: Any) -> Observation:
        src = policies.pod(str(spec.source))
        coredns = policies.pod("kube-system/coredns-5d78c9869d-abcde")
        if not policies.verdict(src, coredns, 53, spec.transport.upper()).allowed:
            return Observation(Outcome.TIMEOUT, "no answer", elapsed=spec.timeout)
        api = self.get("Service", NS, "api")[0]["spec"]["clusterIP"]
        records = [{"name": API_NAME, "type": "A", "ttl": 5, "data": api}] \
            if spec.target == API_NAME else []
        return Observation(Outcome.CONNECTED, extra={
            "rcode": "NOERROR" if records else "NXDOMAIN", "qname": spec.target,
            "records": records})


def cluster_with(workspace: Path) -> LabCluster:
    return LabCluster(lab_objects(workspace))


def sources(workspace: Path) -> dict[str, str]:
    return {f"{d['metadata']['namespace']}/{d['metadata']['name']}": "policies.yaml"
            for d in _documents(workspace) if d["kind"] == "NetworkPolicy"}


@pytest.fixture(scope="module")
def checks() -> Iterator[dict[str, Callable[..., None]]]:
    """Every check function of lab 04, by name, loaded from its files (never collected)."""
    sys.path.insert(0, str(LAB.checks_dir))
    found: dict[str, Callable[..., None]] = {}
    try:
        for file in sorted(LAB.checks_dir.glob("test_*.py")):
            module = _load(file)
            found.update({n: getattr(module, n) for n in dir(module) if n.startswith("test_")})
        yield found
    finally:
        sys.path.remove(str(LAB.checks_dir))
        sys.modules.pop("policy_support", None)
        sys.modules.pop("new_pods", None)


def _load(file: Path) -> ModuleType:
    return load_file(file, f"lab04_checks_{file.stem}")


def run_checks(checks: Mapping[str, Callable[..., None]], cluster: LabCluster,
               workspace: Path) -> dict[str, str]:
    """Every check against ``cluster``: name -> "passed" or the finding's text. The hidden
    checks' fixture (the new pods and their matrix) is made once, like pytest's module
    fixture, after the visible checks ran, and its pods are deleted at the end."""
    pods = Pods(cluster)
    netpol = NetpolGrader(cluster, sources=sources(workspace), settle_seconds=0.0,
                          canary_timeout=10)
    offered: dict[str, Any] = {
        "cluster": cluster, "pods": pods,
        "probe": Prober(cluster, pods, settle_seconds=0.0, namespaces=(NS,), confirmations=0),
        "netpol": netpol,
    }
    outcome = {}
    with ExitStack() as stack:
        for name, check in sorted(checks.items(), key=lambda c: (c[0] in HIDDEN, c[0])):
            wanted = check.__code__.co_varnames[: check.__code__.co_argcount]
            if "with_new_pods" in wanted and "with_new_pods" not in offered:
                new_pods = sys.modules["new_pods"]
                stack.enter_context(new_pods.pods_added(cluster))
                offered["with_new_pods"] = new_pods.matrix_with_new_pods(netpol)
            try:
                check(**{n: offered[n] for n in wanted})
                outcome[name] = "passed"
            except CheckFailed as err:
                outcome[name] = str(err.finding)
    return outcome


def flat(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- definition


def test_lab04_definition() -> None:
    assert (LAB.id, LAB.slug, LAB.namespaces) == ("04", "network-policy", ["lab04", "monitoring"])
    assert {"network_policy", "dns"} <= set(LAB.cluster.needs)
    assert [t.id for t in LAB.tasks] == ["default-deny", "frontend-to-api", "api-to-db", "dns",
                                         "metrics", "nothing-else"]
    assert all(task.hints and task.worth == 2 for task in LAB.tasks)
    assert LAB.total_points() == 12
    assert {n: LAB.task_for_check(n).id for n in LAB.hidden_checks} == HIDDEN  # type: ignore[union-attr]
    assert LAB.total_points(grading=True) == 12 + len(HIDDEN)
    assert not set(HIDDEN) & set(LAB.check_names())
    assert LAB.chapter_path is not None and LAB.chapter_path.is_file()


def test_every_check_named_by_a_task_exists(checks: dict[str, Callable[..., None]]) -> None:
    named = [c for t in LAB.tasks for c in t.check_names]
    assert len(named) == len(set(named))
    assert set(checks) == set(named)
    assert all((checks[n].__doc__ or "").strip() for n in named)  # the name learners see


def test_lab04_manifests_validate_and_run_on_the_local_engine() -> None:
    kinds: dict[str, list[str]] = {}
    for folder in (*LAB.setup_paths(), LAB.starter_dir, LAB.solution_dir):
        for doc in _documents(folder):
            kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
            template: dict[str, Any] = (doc.get("spec") or {}).get("template") or {}
            if doc["kind"] == "Pod" or template:
                plan = plan_pod(doc if doc["kind"] == "Pod" else {
                    "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]})
                assert not plan.warnings, (doc["metadata"]["name"], plan.warnings)
                assert all(c.behaviour != "crash" for c in plan.containers)
                served = {s.port for c in plan.containers for s in c.servers}
                if doc["metadata"].get("namespace") == NS:
                    assert 9090 in served and len(served) == 2, doc["metadata"]["name"]
    assert kinds["Namespace"] == ["lab04", "monitoring"]
    assert sorted(kinds["Deployment"]) == ["api", "db", "frontend"]
    assert sorted(kinds["Pod"]) == ["scraper", "toolbox"]
    assert sorted(set(kinds["NetworkPolicy"])) == [
        "allow-dns", "allow-scraping", "api-egress", "api-ingress", "db-ingress",
        "default-deny", "frontend-egress"]


def test_the_starter_default_deny_really_forgets_egress() -> None:
    """The policyTypes trap is real: `egress: []` without policyTypes stores [Ingress]."""
    stored = {d["metadata"]["name"]: d for d in _documents(LAB.starter_dir)}
    assert stored["default-deny"]["spec"]["policyTypes"] == ["Ingress"]
    assert stored["default-deny"]["spec"]["egress"] == []


# --------------------------------------------------------------------------- the checks


def test_the_solution_passes_every_check(checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.solution_dir)
    outcome = run_checks(checks, cluster, LAB.solution_dir)
    assert all(v == "passed" for v in outcome.values()), {
        k: v for k, v in outcome.items() if v != "passed"}
    # Every probe was judged on the lab's pods, and the canary cleaned up after itself.
    assert not cluster.namespaces_named("netlab-canary-")
    # The hidden checks probed their new pods, then deleted them.
    assert {str(p.source) for p in cluster.probes} >= {"lab04/frontend-new",
                                                       "monitoring/scraper-new"}
    assert not [p for p in cluster.get("Pod") if p["metadata"]["name"].endswith("-new")]
    assert any(p.kind == "dns" and p.transport == "tcp" for p in cluster.probes)


def test_the_solution_allows_exactly_the_tasks_paths() -> None:
    """The expected matrix of the solution: three paths into lab04, DNS, nothing else."""
    policies = policy_set(cluster_with(LAB.solution_dir))
    pods = {p.label: p for p in policies.pods}
    names = {p.labels.get("app") or p.labels.get("k8s-app"): p for p in pods.values()}
    allowed = set()
    for src in pods.values():
        for dst in pods.values():
            if src is dst or NS not in (src.namespace, dst.namespace):
                continue
            for port, proto in ((80, "TCP"), (8080, "TCP"), (5432, "TCP"), (9090, "TCP"),
                                (53, "UDP"), (53, "TCP")):
                if policies.verdict(src, dst, port, proto).allowed:
                    allowed.add((src.labels.get("app") or src.labels.get("k8s-app"),
                                 dst.labels.get("app") or dst.labels.get("k8s-app"),
                                 f"{proto}/{port}"))
    dns = {(app, "kube-dns", f"{proto}/53") for app in ("frontend", "api", "db")
           for proto in ("UDP", "TCP")}
    scraping = {("scraper", app, "TCP/9090") for app in ("frontend", "api", "db")}
    assert allowed == {("frontend", "api", "TCP/8080"), ("api", "db", "TCP/5432"),
                       *scraping, *dns}
    assert set(names) >= {"frontend", "api", "db", "scraper", "toolbox", "kube-dns"}


def test_the_starter_fails_where_it_is_wrong(checks: dict[str, Callable[..., None]]) -> None:
    visible = {n: checks[n] for n in LAB.check_names()}
    outcome = run_checks(visible, cluster_with(LAB.starter_dir), LAB.starter_dir)
    passed = {k for k, v in outcome.items() if v == "passed"}
    assert passed == STARTER_PASSES, {k: v[:400] for k, v in outcome.items()
                                      if (k in passed) != (k in STARTER_PASSES)}
    text = {k: flat(v) for k, v in outcome.items()}

    # Task 1: the stored policy says [Ingress]; the hint explains `egress: []`.
    deny = text["test_default_deny_selects_every_pod_both_ways"]
    assert "default-deny: podSelector {} (every pod), policyTypes [Ingress]" in deny
    assert "default-deny says `egress: []`" in deny
    assert "monitoring/scraper TCP/9090: expected blocked, observed CONNECTED" in \
        text["test_default_deny_blocks_what_no_rule_allows"]

    # Task 2: 8080 is blocked by the api's own policy, which names port 80.
    api = text["test_frontend_reaches_api_on_8080"]
    assert "expected allowed, observed TIMEOUT" in api
    assert "lab04/api-ingress" in api and "TCP/8080" in api

    # Task 3: the second rule of db-ingress admits everybody on 5432.
    db = text["test_only_api_reaches_db"]
    assert "lab04/db-ingress ingress[1] (policies.yaml)" in db
    assert "monitoring/toolbox -> lab04/db" in db

    # Task 5: two peers, OR-ed: the toolbox reads the metrics.
    metrics = text["test_only_the_scraper_reaches_metrics"]
    assert "monitoring/toolbox -> lab04/" in metrics
    assert "lab04/allow-scraping ingress[0] (policies.yaml)" in metrics
    assert "Remove the dash before podSelector" in metrics

    # Task 6: both directions leak.
    assert "expected blocked, observed CONNECTED" in text["test_nothing_else_reaches_lab04"]
    assert "monitoring/scraper TCP/9090: expected blocked, observed CONNECTED" in \
        text["test_lab04_reaches_nothing_else"]


def test_a_fitted_submission_passes_the_visible_checks_and_fails_the_hidden_ones(
        checks: dict[str, Callable[..., None]]) -> None:
    outcome = run_checks(checks, cluster_with(FITTED), FITTED)
    visible = {n: v for n, v in outcome.items() if n not in HIDDEN}
    assert set(visible) == set(LAB.check_names())
    assert all(v == "passed" for v in visible.values()), {
        k: v[:400] for k, v in visible.items() if v != "passed"}
    failed = {n for n in HIDDEN if outcome[n] != "passed"}
    assert failed == FITTED_FAILS, {n: outcome[n][:400] for n in HIDDEN}
    text = {n: flat(outcome[n]) for n in FITTED_FAILS}
    assert "lab04/frontend-new -> lab04/api-" in text[
        "test_new_frontend_and_api_pods_get_their_path"]
    assert "expected allowed, observed TIMEOUT" in text[
        "test_new_frontend_and_api_pods_get_their_path"]
    assert "lab04/api-new -> lab04/db-" in text["test_new_api_and_db_pods_get_their_path"]
    assert "monitoring/scraper -> lab04/cache-new TCP/9090" in text[
        "test_the_scraper_reads_new_pods_metrics"]
    for name in FITTED_FAILS:
        assert "isolated" in text[name]  # the policies that stop the new pod are named
        assert "by their role label" in text[name] and "pod-template-hash" in text[name]


def test_the_hidden_checks_new_pods_run_on_the_local_engine() -> None:
    sys.path.insert(0, str(LAB.checks_dir))
    try:
        new_pods = _load(LAB.checks_dir / "new_pods.py")
    finally:
        sys.path.remove(str(LAB.checks_dir))
        sys.modules.pop("policy_support", None)
    docs = new_pods.new_pods()
    assert validation.validate_all(docs, "new_pods.py")
    for doc in docs:
        plan = plan_pod(doc)
        assert not plan.warnings and all(c.behaviour != "crash" for c in plan.containers)
        labels = doc["metadata"]["labels"]
        assert set(labels) == {"app", new_pods.MARK_KEY}
        served = {s.port for c in plan.containers for s in c.servers}
        assert served == ({9090} if doc["metadata"]["namespace"] == "monitoring"
                          else {9090, {"frontend": 80, "db": 5432}.get(labels["app"], 8080)})


def _solution_with(tmp_path: Path, change: Callable[[list[dict[str, Any]]], None]) -> Path:
    docs = list(yaml.safe_load_all((LAB.solution_dir / "policies.yaml").read_text()))
    change(docs)
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump_all(docs))
    return tmp_path


def test_dns_failures_explain_the_path_to_coredns(
        checks: dict[str, Callable[..., None]], tmp_path: Path) -> None:
    """The natural mistake: the kube-dns ClusterIP as an ipBlock. It never matches (the
    policy sees the coredns pod's address), and the finding says so per pod."""
    def clusterip_peer(docs: list[dict[str, Any]]) -> None:
        dns = next(d for d in docs if d["metadata"]["name"] == "allow-dns")
        dns["spec"]["egress"][0]["to"] = [{"ipBlock": {"cidr": f"{KUBE_DNS_IP}/32"}}]

    workspace = _solution_with(tmp_path, clusterip_peer)
    outcome = run_checks({n: checks[n] for n in ("test_dns_over_udp_from_every_pod",
                                                 "test_dns_over_tcp_from_every_pod")},
                         cluster_with(workspace), workspace)
    for name, transport in (("test_dns_over_udp_from_every_pod", "UDP"),
                            ("test_dns_over_tcp_from_every_pod", "TCP")):
        text = flat(outcome[name])
        assert "TIMEOUT" in text and f"over {transport}" in text
        for app in ("frontend", "api", "db"):
            assert f"lab04/{app}-" in text
        assert f"kube-system/coredns-5d78c9869d-abcde {transport}/53" in text
        assert "isolated for egress" in text and "10.96.0.10/32" in text


def test_a_missing_egress_side_is_named(
        checks: dict[str, Callable[..., None]], tmp_path: Path) -> None:
    """Ingress on the api alone is not enough once egress is denied: the finding names the
    frontend's isolation, not the api's."""
    workspace = _solution_with(tmp_path, lambda docs: docs.remove(next(
        d for d in docs if d["metadata"]["name"] == "frontend-egress")))
    outcome = run_checks({"test_frontend_reaches_api_on_8080":
                          checks["test_frontend_reaches_api_on_8080"]},
                         cluster_with(workspace), workspace)
    text = flat(outcome["test_frontend_reaches_api_on_8080"])
    assert "expected allowed, observed TIMEOUT" in text
    assert "is isolated for egress by" in text and "lab04/default-deny" in text


# --------------------------------------------------------------------------- docs


def test_the_docs_include_the_lab_pages_and_files() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "chapters/04-network-policy.md" in config
    assert "labs/04-network-policy.md" in config
    included = {path for page, _, path in _snippets() if page.name == "04-network-policy.md"}
    assert {"labs/04-network-policy/starter/policies.yaml",
            "labs/04-network-policy/solution/policies.yaml",
            "labs/04-network-policy/setup/10-app.yaml"} <= included
    assert all((ROOT / path).is_file() for path in included)


def test_the_docs_build_renders_the_lab_pages(tmp_path: Path) -> None:
    mkdocs = _mkdocs()
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    built = subprocess.run([*mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    lab_page = (tmp_path / "site" / "labs" / "04-network-policy" / "index.html").read_text()
    assert "allow-scraping" in lab_page and "--8&lt;--" not in lab_page
    chapter = tmp_path / "site" / "chapters" / "04-network-policy" / "index.html"
    assert "kube-netlab-policy" in chapter.read_text()
