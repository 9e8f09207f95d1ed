"""The three pods the CNI datapath tests talk between, and small helpers around them.

``web`` and ``near`` run on the first worker, ``far`` on the second, each an agnhost
``netexec`` HTTP server on 8080; Service ``web`` (port 80 → 8080) selects ``web``. That is
enough to see same-node, cross-node and Service paths of any CNI mode.
"""

from __future__ import annotations

from typing import Any

from clusters.local.engine import LocalCluster
from clusters.probing import Observation, ProbeSpec, Source

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pod(ns: str, name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "c", "image": AGNHOST,
                                     "args": ["netexec", "--http-port=8080"],
                                     "ports": [{"containerPort": 8080}]}]}}


def deploy(cluster: LocalCluster, ns: str) -> dict[str, str]:
    """Create the pods and the Service in ``ns``; their IPs, and the ClusterIP as ``svc``."""
    w1, w2 = (n.name for n in cluster.topology.workers)
    cluster.apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        pod(ns, "web", w1), pod(ns, "near", w1), pod(ns, "far", w2),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ], source="test")
    cluster.wait_converged([ns], timeout=60)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in cluster.get("Pod", ns)}
    ips["svc"] = cluster.get("Service", ns, "web")[0]["spec"]["clusterIP"]
    return ips


def http(cluster: LocalCluster, ns: str, src: str, target: str, port: int = 8080,
         path: str = "/hostname") -> Observation:
    return cluster.probe(ProbeSpec("http", Source(ns, src), target, port, path=path,
                                   timeout=3.0))


def node_out(cluster: LocalCluster, node: str, *argv: str) -> str:
    """What ``argv`` prints in ``node`` (it must succeed)."""
    done = cluster.node_exec(node, list(argv), capture=True, timeout=15)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout
