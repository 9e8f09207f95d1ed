"""With Docker's FORWARD policy DROP and bridge netfilter on, cross-node traffic still flows,
thanks to one tagged rule that teardown removes again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters import ClusterProfile, Outcome, ProbeSpec, Source
from clusters.local import cleanup, hostfirewall
from clusters.local.engine import LocalEngine
from clusters.local.validation import load_documents
from clusters.proc import run

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: fw}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: fw, labels: {app: server}}
spec:
  containers: [{name: s, image: registry.k8s.io/e2e-test-images/agnhost:2.53,
                args: [netexec, --http-port=8080]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: fw}
spec:
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: server}}}
  containers: [{name: c, image: busybox}]
"""


@pytest.fixture
def forward_drop() -> Iterator[None]:
    if not hostfirewall.bridge_filtering_active():
        pytest.skip("br_netfilter is not active here: the FORWARD chain never sees bridged traffic")
    policy = "ACCEPT"
    for line in run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines():
        if line.startswith("-P FORWARD"):
            policy = line.split()[2]
    run(["iptables", "-w", "-P", "FORWARD", "DROP"])
    try:
        yield
    finally:
        run(["iptables", "-w", "-P", "FORWARD", policy])


def test_cross_node_traffic_passes_a_dropping_forward_chain(
    state_dir: Path, cluster_name: str, forward_drop: None
) -> None:
    engine = LocalEngine()
    cluster = engine.create(cluster_name, ClusterProfile())
    try:
        assert hostfirewall.tagged_rules(f"kube-netlab:{cluster_name}")
        cluster.apply(load_documents(PODS, "fw.yaml"))
        cluster.wait_converged(["fw"], timeout=20)
        server = cluster.get("Pod", "fw", "server")[0]
        client = cluster.get("Pod", "fw", "client")[0]
        assert server["spec"]["nodeName"] != client["spec"]["nodeName"]
        obs = cluster.probe(ProbeSpec("http", Source("fw", "client"), server["status"]["podIP"],
                                      8080, path="/hostname", timeout=2))
        assert obs.outcome is Outcome.CONNECTED, obs.summary()
    finally:
        engine.delete(cluster_name)
    assert hostfirewall.tagged_rules(f"kube-netlab:{cluster_name}") == []
    assert cleanup.find_leftovers(cluster_name).empty
