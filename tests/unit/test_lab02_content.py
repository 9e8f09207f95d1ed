"""Lab 02 (Services) without a cluster: its definition loads, its manifests are valid and
run on the local engine, and its checks pass and fail for the right reasons.

The checks are called directly against a fake cluster holding the lab's pods and the
starter's or the solution's Services; probes answer from a script. The root test
(tests/root/test_lab02.py) runs the same checks against the real local engine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from modload import load_file
from test_grader_plugin import FakeCluster, pod

from clusters import manifests
from clusters.errors import ObjectNotFound
from clusters.local import validation
from clusters.local.runtime.plan import plan_pod
from clusters.probing import Observation, Outcome
from grader import CheckFailed, Pods, Prober
from labs.catalogue import Lab, default_catalogue

NS = "lab02"
LAB: Lab = default_catalogue().get("02")

NODES = [("netlab-control-plane", "172.30.9.2"), ("netlab-worker", "172.30.9.3"),
         ("netlab-worker2", "172.30.9.4")]
API_V1 = ("api-7f9c-abcde", "api-7f9c-fghij")
API_V2 = "api-v2-5c4d-klmno"
WEB_PAGE = "<html><h1>Welcome to nginx!</h1></html>"


def lab_pods() -> list[dict[str, Any]]:
    pods = [
        pod("client", "10.244.2.2", "netlab-worker2", NS, app="client"),
        pod(API_V1[0], "10.244.1.4", "netlab-worker", NS, app="api", version="v1"),
        pod(API_V1[1], "10.244.2.5", "netlab-worker2", NS, app="api", version="v1"),
        pod(API_V2, "10.244.1.6", "netlab-worker", NS, app="api", version="v2"),
        pod("api-canary", "10.244.2.7", "netlab-worker2", NS, app="api", version="canary"),
        pod("web-6d5f-aaaaa", "10.244.1.8", "netlab-worker", NS, app="web"),
        pod("web-6d5f-bbbbb", "10.244.2.9", "netlab-worker2", NS, app="web"),
    ]
    pods += [pod(f"db-{i}", f"10.244.{1 + i % 2}.{20 + i}", "netlab-worker", NS, app="db")
             for i in range(3)]
    pods[4]["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    return pods


def nodes() -> list[dict[str, Any]]:
    return [{"kind": "Node", "metadata": {"name": name, "namespace": ""},
             "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                      {"type": "Hostname", "address": name}]}}
            for name, ip in NODES]


def services(folder: Path) -> list[dict[str, Any]]:
    """The Services of a workspace folder, with the ClusterIP the cluster would allocate."""
    found: list[dict[str, Any]] = []
    for file in manifests.read(str(folder)):
        for doc in file.docs:
            spec = doc.setdefault("spec", {})
            if spec.get("type") != "ExternalName" and "clusterIP" not in spec:
                spec["clusterIP"] = f"10.96.0.{100 + len(found)}"
            found.append(doc)
    return found


class LabCluster(FakeCluster):
    """The fake cluster, refusing a named get of a missing object like the engines do."""

    def get(self, kind: str, namespace: str | None = None, name: str | None = None,
            selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        found = super().get(kind, namespace, name, selector)
        if name is not None and not found:
            raise ObjectNotFound(f'{kind.lower()}s "{name}" not found in namespace "{namespace}"')
        return found


def cluster_with(folder: Path, script: Mapping[str, Sequence[Observation]] | None = None,
                 ) -> LabCluster:
    return LabCluster([*lab_pods(), *nodes(), *services(folder)], script)


def prober(cluster: FakeCluster) -> Prober:
    return Prober(cluster, Pods(cluster), settle_seconds=0.0, namespaces=(NS,),
                  confirmations=0)


@pytest.fixture(scope="module")
def checks() -> Iterator[dict[str, Callable[..., None]]]:
    """Every check function of lab 02, by name, loaded from its files (never collected)."""
    sys.path.insert(0, str(LAB.checks_dir))
    found: dict[str, Callable[..., None]] = {}
    try:
        for file in sorted(LAB.checks_dir.glob("test_*.py")):
            module = _load(file)
            found.update({n: getattr(module, n) for n in dir(module) if n.startswith("test_")})
        yield found
    finally:
        sys.path.remove(str(LAB.checks_dir))


def _load(file: Path) -> ModuleType:
    return load_file(file, f"lab02_checks_{file.stem}")


def http(body: str) -> Observation:
    return Observation(Outcome.CONNECTED, status=200, body=body)


def dns(*records: tuple[str, str], rcode: str = "NOERROR") -> Observation:
    return Observation(Outcome.CONNECTED, extra={
        "rcode": rcode, "qname": "", "records": [
            {"name": "", "type": t, "ttl": 5, "data": d} for t, d in records]})


def failing(check: Callable[..., None], **fixtures: Any) -> str:
    """Run a check that must fail; return its finding as text."""
    with pytest.raises(CheckFailed) as failed:
        check(**fixtures)
    return str(failed.value.finding)


# --------------------------------------------------------------------------- definition


def test_lab02_definition() -> None:
    assert (LAB.id, LAB.slug, LAB.namespaces) == ("02", "services", ["lab02"])
    assert LAB.cluster.workers == 2 and set(LAB.cluster.needs) == {"services", "dns"}
    assert [t.id for t in LAB.tasks] == ["api-clusterip", "web-nodeport", "db-headless",
                                         "payments-alias"]
    assert LAB.chapter_path is not None and LAB.chapter_path.is_file()
    assert all(task.hints for task in LAB.tasks)


def test_lab02_manifests_validate_and_run_on_the_local_engine() -> None:
    kinds: dict[str, list[str]] = {}
    for folder in (*LAB.setup_paths(), LAB.starter_dir, LAB.solution_dir):
        for file in manifests.read(str(folder)):
            for doc in validation.validate_all(file.docs, file.source):
                kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
                template: dict[str, Any] = (doc.get("spec") or {}).get("template") or {}
                if doc["kind"] == "Pod" or template:
                    plan = plan_pod(doc if doc["kind"] == "Pod" else {
                        "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]})
                    assert not plan.warnings, (doc["metadata"]["name"], plan.warnings)
                    assert all(c.behaviour != "crash" for c in plan.containers)
    assert kinds["Namespace"] == ["lab02"]
    assert sorted(kinds["Deployment"]) == ["api", "api-v2", "web"]
    assert kinds["StatefulSet"] == ["db"]
    assert sorted(kinds["Service"]) == ["api", "api", "database", "db", "payments", "web", "web"]


def test_every_check_is_loaded(checks: dict[str, Callable[..., None]]) -> None:
    assert set(checks) == {c for t in LAB.tasks for c in t.check_names}


# --------------------------------------------------------------------------- static checks


STATIC = ["test_api_selects_api_pods", "test_api_uses_named_target_port", "test_web_is_nodeport",
          "test_db_selects_db_pods", "test_db_is_headless"]


def _static_fixtures(check: Callable[..., Any], cluster: FakeCluster) -> dict[str, Any]:
    names = check.__code__.co_varnames[: check.__code__.co_argcount]
    offered = {"cluster": cluster, "pods": Pods(cluster), "probe": prober(cluster)}
    return {n: offered[n] for n in names}


@pytest.mark.parametrize("name", STATIC)
def test_static_checks_pass_on_the_solution(checks: dict[str, Callable[..., None]],
                                            name: str) -> None:
    cluster = cluster_with(LAB.solution_dir)
    checks[name](**_static_fixtures(checks[name], cluster))


def test_static_checks_on_the_starter_fail_where_it_is_wrong(
        checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.starter_dir)
    outcome = {}
    for name in STATIC:
        try:
            checks[name](**_static_fixtures(checks[name], cluster))
            outcome[name] = "passed"
        except CheckFailed as err:
            outcome[name] = str(err.finding)
    assert outcome["test_web_is_nodeport"] == "passed"
    for db_check in ("test_db_selects_db_pods", "test_db_is_headless"):  # named database
        assert "Services in lab02: api, database, web" in outcome[db_check]
        assert "only a Service called db" in outcome[db_check]
    assert "selector app=api-server" in outcome["test_api_selects_api_pods"]
    assert f"misses {API_V1[0]} (app=api,version=v1)" in outcome["test_api_selects_api_pods"]
    assert "ports: 80→8080/TCP" in outcome["test_api_uses_named_target_port"]

    solved = cluster_with(LAB.solution_dir)
    db = solved.get("Service", NS, "db")[0]
    db["spec"]["clusterIP"] = "10.96.0.9"
    text = failing(checks["test_db_is_headless"], cluster=solved)
    assert "observed: clusterIP 10.96.0.9 (type ClusterIP)" in text


def test_a_selector_naming_one_version_misses_the_other(
        checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.solution_dir)
    api = cluster.get("Service", NS, "api")[0]
    api["spec"]["selector"] = {"app": "api", "version": "v1"}
    text = failing(checks["test_api_selects_api_pods"], cluster=cluster, pods=Pods(cluster))
    assert f"misses {API_V2} (app=api,version=v2)" in text
    assert "api-canary" not in text.split("observed:")[1].split("hint:")[0]


def test_a_missing_service_lists_the_ones_there(checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.starter_dir)
    text = failing(checks["test_payments_is_an_alias_of_api"], cluster=cluster,
                   probe=prober(cluster))
    assert "a Service named payments in namespace lab02" in text
    assert "Services in lab02: api, database, web" in text


# --------------------------------------------------------------------------- api sampling


ROUND = [http(API_V1[0]), http(API_V2), http(API_V1[1])]


def test_api_balancing_passes_when_every_ready_pod_answers(
        checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.solution_dir, {"api": ROUND * 10})
    checks["test_api_answers_from_every_ready_replica"](probe=prober(cluster),
                                                        pods=Pods(cluster))
    assert len(cluster.probes) == 25  # one to settle, then 24 in which all were seen


@pytest.mark.parametrize(("answers", "observed", "hint"), [
    # A numeric targetPort: the v2 pod does not listen on 8080 and refuses.
    ([http(API_V1[0]), Observation(Outcome.REFUSED, "connection refused"), http(API_V1[1])],
     "REFUSED: 15", "A numeric targetPort is the same number for every pod"),
    # A selector that names v1 only.
    ([http(API_V1[0]), http(API_V1[1])], f"never answered: {API_V2}", "the selector leaves"),
    # Readiness ignored (publishNotReadyAddresses).
    ([*ROUND, http("api-canary")], "api-canary: ", "A pod that is not Ready answered"),
])
def test_api_balancing_explains_what_went_wrong(
        checks: dict[str, Callable[..., None]], answers: list[Observation], observed: str,
        hint: str) -> None:
    cluster = cluster_with(LAB.solution_dir, {"api": answers * 20})
    text = failing(checks["test_api_answers_from_every_ready_replica"],
                   probe=prober(cluster), pods=Pods(cluster))
    assert observed in text and hint in " ".join(text.split())
    assert "never from api-canary (not Ready)" in text
    # One to settle, then the sample: in full while a ready pod was never seen.
    assert len(cluster.probes) == (25 if "canary" in observed else 46)


def test_api_without_endpoints_is_explained_by_the_reject_rule(
        checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.starter_dir, {"api": [Observation(Outcome.REFUSED, "refused")]})
    text = failing(checks["test_api_answers_from_every_ready_replica"],
                   probe=prober(cluster), pods=Pods(cluster))
    assert "observed: REFUSED" in text and "no ready endpoints" in " ".join(text.split())
    assert len(cluster.probes) == 1  # nothing got through: no sampling


# --------------------------------------------------------------------------- web


def test_nodeport_from_the_host_probes_every_node(checks: dict[str, Callable[..., None]]) -> None:
    script = {ip: [http(WEB_PAGE)] for _, ip in NODES}
    cluster = cluster_with(LAB.solution_dir, script)
    checks["test_web_reachable_from_host_on_every_node"](probe=prober(cluster),
                                                         cluster=cluster)
    assert sorted(p.target for p in cluster.probes) == sorted(ip for _, ip in NODES)
    assert all(p.source.is_host and p.port == 30080 for p in cluster.probes)


def test_nodeport_failures_name_each_node(checks: dict[str, Callable[..., None]]) -> None:
    refused = Observation(Outcome.REFUSED, "connection refused")
    cluster = cluster_with(LAB.starter_dir, {ip: [refused] for _, ip in NODES})
    text = failing(checks["test_web_reachable_from_host_on_every_node"],
                   probe=prober(cluster), cluster=cluster)
    for name, ip in NODES:
        assert f"{name} ({ip}): REFUSED" in text
    assert "nginx listens on 80" in " ".join(text.split())

    some = {NODES[0][1]: [refused], NODES[1][1]: [http(WEB_PAGE)], NODES[2][1]: [http(WEB_PAGE)]}
    cluster = cluster_with(LAB.solution_dir, some)
    text = failing(checks["test_web_reachable_from_host_on_every_node"],
                   probe=prober(cluster), cluster=cluster)
    assert "externalTrafficPolicy" in text and NODES[1][0] not in text


# --------------------------------------------------------------------------- DNS


def _db_ips(cluster: FakeCluster) -> dict[str, str]:
    return {p.name: str(p.ip) for p in Pods(cluster).by_label(NS, "app=db")}


def test_headless_db_passes_with_one_record_per_pod(
        checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.solution_dir)
    ips = _db_ips(cluster)
    cluster.script = {"db.lab02.svc.cluster.local.": [dns(*(("A", ip) for ip in ips.values()))]}
    cluster.script.update({f"{name}.db.lab02.svc.cluster.local.": [dns(("A", ip))]
                           for name, ip in ips.items()})
    checks["test_db_name_lists_every_ready_pod"](pods=Pods(cluster), probe=prober(cluster))
    checks["test_db_pods_resolve_by_name"](pods=Pods(cluster), probe=prober(cluster))
    assert {p.qtype for p in cluster.probes} == {"A"}
    assert all(p.kind == "dns" and str(p.source) == "lab02/client" for p in cluster.probes)


def test_a_clusterip_db_is_explained(checks: dict[str, Callable[..., None]]) -> None:
    cluster = cluster_with(LAB.starter_dir)
    cluster.script = {"db.lab02.svc.cluster.local.": [dns(("A", "10.96.0.102"))]}
    cluster.script.update({f"{name}.db.lab02.svc.cluster.local.": [dns(rcode="NXDOMAIN")]
                           for name in _db_ips(cluster)})
    text = failing(checks["test_db_name_lists_every_ready_pod"], pods=Pods(cluster),
                   probe=prober(cluster))
    assert "NOERROR: A 10.96.0.102" in text
    assert "10.96.0.102 is a Service's virtual IP" in " ".join(text.split())
    text = failing(checks["test_db_pods_resolve_by_name"], pods=Pods(cluster),
                   probe=prober(cluster))
    assert "db-0.db.lab02.svc.cluster.local.: NXDOMAIN" in text
    assert "Is there a Service called db" in text


def test_payments_alias(checks: dict[str, Callable[..., None]]) -> None:
    name = "payments.lab02.svc.cluster.local."
    cluster = cluster_with(LAB.solution_dir, {
        name: [dns(("CNAME", "api.lab02.svc.cluster.local."))],
        "payments": [http(API_V2)],
    })
    checks["test_payments_is_an_alias_of_api"](cluster=cluster, probe=prober(cluster))
    checks["test_payments_reaches_api"](probe=prober(cluster), pods=Pods(cluster))
    assert [p.qtype for p in cluster.probes if p.kind == "dns"] == ["CNAME"]

    cluster.script = {name: [dns(("A", "10.96.0.100"))], "payments": [http("web-6d5f-aaaaa")]}
    text = failing(checks["test_payments_is_an_alias_of_api"], cluster=cluster,
                   probe=prober(cluster))
    assert "NOERROR, no CNAME records" in text
    text = failing(checks["test_payments_reaches_api"], probe=prober(cluster), pods=Pods(cluster))
    assert 'the answer "web-6d5f-aaaaa"' in text


def test_setup_docs_parse_as_the_engine_reads_them() -> None:
    """The setup's flow-style mappings are plain YAML mappings (no surprises for learners
    who copy them)."""
    app = yaml.safe_load_all((LAB.folder / "setup" / "10-app.yaml").read_text())
    api = next(d for d in app if d["metadata"]["name"] == "api")
    assert api["spec"]["template"]["metadata"]["labels"] == {"app": "api", "version": "v1"}
