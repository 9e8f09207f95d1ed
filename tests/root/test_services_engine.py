"""Services and cluster DNS on the real local engine, beyond the acceptance cases:
LoadBalancer from the host, traffic policies and source addresses, hairpin, what a bad
Service does, why endpoints are missing, DNS edge cases, and `lab probe` end to end.

One cluster serves the whole module (building one costs about a second); each test uses
its own Services.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
from labcli import lab

from clusters.engine import ClusterProfile
from clusters.errors import ManifestError
from clusters.local import cleanup
from clusters.local.dns.client import query
from clusters.local.engine import LocalCluster, LocalEngine
from clusters.local.netns import socket_in
from clusters.probing import Outcome, ProbeSpec, Source

pytestmark = pytest.mark.root

NS = "svct"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pod(name: str, labels: dict[str, str], args: list[str], *, ports: list[dict[str, Any]] | None = None,
        node_affinity: str | None = None, ready_port: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": AGNHOST, "args": args,
                                            "ports": ports or []}]}
    if node_affinity:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node_affinity}
    if ready_port:
        spec["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": ready_port},
                                                   "periodSeconds": 1}
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": labels}
    if ready_port:  # never ready on purpose: convergence must not wait for it
        meta["annotations"] = {"acceptance/never-ready": "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("svc-engine")
    saved = {k: os.environ.get(k) for k in ("LAB_STATE_DIR", "LAB_CLUSTER", "LAB_WORKSPACE")}
    name = f"knlt{uuid.uuid4().hex[:6]}"
    os.environ.update(LAB_STATE_DIR=str(state / "state"), LAB_CLUSTER=name,
                      LAB_WORKSPACE=str(state / "ws"))
    engine = LocalEngine()
    cluster = engine.create(name, ClusterProfile())
    try:
        workers = sorted(n["metadata"]["name"] for n in cluster.get("Node")
                         if "control-plane" not in n["metadata"]["name"])
        netexec = ["netexec", "--http-port=8080", "--udp-port=8081"]
        cluster.apply([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            pod("web", {"app": "web"}, netexec, node_affinity=workers[0],
                ports=[{"name": "http", "containerPort": 8080}]),
            pod("client", {"role": "client"}, ["pause"], node_affinity=workers[1]),
            pod("never", {"app": "never"}, netexec, ready_port=9999),
        ], source="fixture")
        cluster.wait_converged([NS], timeout=60)
        nodes = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"]
                                             if a["type"] == "InternalIP")
                 for n in cluster.get("Node")}
        yield {"cluster": cluster, "workers": workers, "nodes": nodes, "state": Path(state)}
    finally:
        engine.delete(name)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        assert cleanup.find_leftovers(name).empty


def cluster_of(env: dict[str, Any]) -> LocalCluster:
    cluster: LocalCluster = env["cluster"]
    return cluster


def http(cluster: LocalCluster, source: Source, ip: str, port: int, path: str = "/hostname",
         timeout: float = 2.0) -> Any:
    return cluster.probe(ProbeSpec("http", source, ip, port, path=path, timeout=timeout))


CLIENT = Source(NS, "client")
HOST = Source()


def test_load_balancer_gets_an_address_reachable_from_the_host(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("lb", {"type": "LoadBalancer", "selector": {"app": "web"},
                                  "ports": [{"port": 80, "targetPort": 8080}]})])
    svc = cluster.get("Service", NS, "lb")[0]
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert ip.startswith("172.30.") and int(ip.rsplit(".", 1)[1]) >= 200
    assert svc["spec"]["ports"][0]["nodePort"] >= 30000
    seen = http(cluster, HOST, ip, 80)
    assert seen.status == 200 and seen.body == "web", seen.summary()
    shown = lab("get", "svc", "-n", NS)
    assert shown.returncode == 0 and ip in shown.stdout and "LoadBalancer" in shown.stdout


def test_external_traffic_policy_local_keeps_the_client_address(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("etp", {"type": "NodePort", "externalTrafficPolicy": "Local",
                                   "selector": {"app": "web"},
                                   "ports": [{"port": 80, "targetPort": 8080}]})])
    port = cluster.get("Service", NS, "etp")[0]["spec"]["ports"][0]["nodePort"]
    with_endpoint, without = env["nodes"][env["workers"][0]], env["nodes"][env["workers"][1]]
    seen = http(cluster, HOST, with_endpoint, port, "/clientip")
    assert seen.status == 200 and seen.body.split(":")[0] == cluster.capabilities().host_ip
    missing = cluster.probe(ProbeSpec("tcp", HOST, without, port, timeout=1.0))
    assert missing.outcome is Outcome.TIMEOUT, missing.summary()


def test_pod_to_cluster_ip_keeps_the_source_and_a_pod_reaches_itself(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("plain", {"selector": {"app": "web"},
                                     "ports": [{"port": 80, "targetPort": "http"}]})])
    ip = cluster.get("Service", NS, "plain")[0]["spec"]["clusterIP"]
    client_ip = cluster.get("Pod", NS, "client")[0]["status"]["podIP"]
    seen = http(cluster, CLIENT, ip, 80, "/clientip")
    assert seen.body.split(":")[0] == client_ip, seen.summary()
    hairpin = http(cluster, Source(NS, "web"), ip, 80)
    assert hairpin.status == 200 and hairpin.body == "web", hairpin.summary()
    # From a node's own namespace (where kubelet probes start), through the OUTPUT hook.
    from_node = http(cluster, Source(node=env["workers"][1]), ip, 80)
    assert from_node.status == 200 and from_node.body == "web", from_node.summary()


def test_no_ready_endpoint_is_refused_and_publish_not_ready_includes_it(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([
        service("notready", {"selector": {"app": "never"},
                             "ports": [{"port": 80, "targetPort": 8080}]}),
        service("anyway", {"selector": {"app": "never"}, "publishNotReadyAddresses": True,
                           "ports": [{"port": 80, "targetPort": 8080}]}),
    ])
    ips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in cluster.get("Service", NS)}
    refused = cluster.probe(ProbeSpec("tcp", CLIENT, ips["notready"], 80, timeout=1.0))
    assert refused.outcome is Outcome.REFUSED, refused.summary()
    anyway = http(cluster, CLIENT, ips["anyway"], 80)
    assert anyway.body == "never", anyway.summary()


def test_bad_services_are_refused_whole_and_say_which_field(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("np1", {"type": "NodePort", "selector": {"app": "web"},
                                   "ports": [{"port": 80, "nodePort": 31555}]})])
    with pytest.raises(ManifestError) as taken:
        cluster.apply([service("fresh", {"selector": {"app": "web"}, "ports": [{"port": 80}]}),
                       service("np2", {"type": "NodePort", "selector": {"app": "web"},
                                       "ports": [{"port": 80, "nodePort": 31555}]})],
                      source="bad.yaml")
    text = str(taken.value)
    assert "bad.yaml (document 2)" in text and "nodePort" in text and "np1" in text
    assert not cluster.get("Service", NS, selector=None) or all(
        s["metadata"]["name"] != "fresh" for s in cluster.get("Service", NS))
    with pytest.raises(ManifestError, match=r"\(document 2\).*nodePort"):  # within one batch
        cluster.apply([service(f"twin{i}", {"type": "NodePort", "selector": {"app": "web"},
                                            "ports": [{"port": 80, "nodePort": 31600}]})
                       for i in (1, 2)], source="twins.yaml")
    with pytest.raises(ManifestError, match="clusterIP"):
        cluster.apply([service("outside", {"clusterIP": "10.0.0.5", "selector": {"app": "web"},
                                           "ports": [{"port": 80}]})])
    with pytest.raises(ManifestError, match="duplicate"):
        cluster.apply([service("dup", {"selector": {"app": "web"}, "ports": [
            {"name": "a", "port": 80}, {"name": "a", "port": 81}]})])
    assert cluster.ping()["pods"] >= 3  # the daemon is fine


def test_an_undeclared_target_port_name_is_explained(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("named", {"selector": {"app": "web"},
                                     "ports": [{"name": "web", "port": 80, "targetPort": "nope"}]})])
    slices = cluster.get("EndpointSlice", NS, selector={"kubernetes.io/service-name": "named"})
    assert slices
    why = "\n".join(s["metadata"].get("annotations", {}).get("netlab.dev/unresolved", "")
                    for s in slices)
    assert "nope" in why and "web" in why
    shown = lab("get", "endpointslices", "-n", NS)
    assert shown.returncode == 0 and "Why endpoints are missing" in shown.stdout
    assert "nope" in shown.stdout


def test_headless_and_external_name_are_dns_only(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([
        service("hl", {"clusterIP": "None", "selector": {"app": "web"},
                       "ports": [{"name": "http", "port": 8080}]}),
        service("alias", {"type": "ExternalName", "externalName": "hl.svct.svc.cluster.local"}),
    ])
    web_ip = cluster.get("Pod", NS, "web")[0]["status"]["podIP"]
    a = cluster.probe(ProbeSpec("dns", CLIENT, "hl.svct.svc.cluster.local.", timeout=2))
    assert [r["data"] for r in a.extra["records"]] == [web_ip]
    cname = cluster.probe(ProbeSpec("dns", CLIENT, "alias", qtype="CNAME", search=True, timeout=2))
    assert [r["data"] for r in cname.extra["records"] if r["type"] == "CNAME"] == [
        "hl.svct.svc.cluster.local."]
    nat = cluster.node_exec(env["workers"][0], ["iptables-save", "-t", "nat"], capture=True).stdout
    assert "svct/hl" not in nat and "svct/alias" not in nat


def test_dns_survives_garbage_and_answers_outside_names_at_once(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    netns = cluster._pod_net(NS, "client")["netns"]
    with socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\x12\x34garbage-not-dns", ("10.96.0.10", 53))
        reply = dns.message.from_wire(sock.recv(4096), question_only=True)
        assert reply.rcode() == dns.rcode.FORMERR
    outside = query("example.org.", "A", ("10.96.0.10", 53), netns=netns, timeout=2, retries=0)
    assert outside.message.rcode() == dns.rcode.SERVFAIL
    up = cluster.probe(ProbeSpec("dns", CLIENT, "kube-dns.kube-system", search=True, timeout=2))
    assert up.extra["rcode"] == "NOERROR" and up.extra["records"][0]["data"] == "10.96.0.10"


def test_lab_probe_commands_end_to_end(env: dict[str, Any]) -> None:
    cluster = cluster_of(env)
    cluster.apply([service("probed", {"selector": {"app": "web"},
                                      "ports": [{"name": "http", "port": 80, "targetPort": 8080}]})])
    ok = lab("probe", "http", "--from", f"{NS}/client", "probed.svct:80/hostname")
    assert ok.returncode == 0 and "web" in ok.stdout, ok.stdout + ok.stderr
    answered = lab("probe", "dns", "--from", f"{NS}/client", "probed", "--search")
    assert answered.returncode == 0 and "NOERROR" in answered.stdout, answered.stdout
    srv = lab("probe", "dns", "--from", f"{NS}/client", "_http._tcp.probed.svct.svc.cluster.local.",
              "--type", "SRV", "--json")
    assert srv.returncode == 0 and '"port": 80' in srv.stdout, srv.stdout
    matrix = lab("probe", "matrix", "--namespaces", NS, "--ports", "8080", "--json")
    assert matrix.returncode == 0, matrix.stderr
    assert '"outcome": "CONNECTED"' in matrix.stdout
