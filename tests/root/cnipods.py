"""The three pods the CNI datapath tests talk between, and small helpers around them.

``web`` and ``near`` run on the first worker, ``far`` on the second, each an agnhost
``netexec`` HTTP server on 8080; Service ``web`` (port 80 → 8080) selects ``web``. That is
enough to see same-node, cross-node and Service paths of any CNI mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from clusters.engine import ExecResult
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


def capture_during(cluster: LocalCluster, node: str, bpf: str, count: int,
                   traffic: Callable[[], None]) -> str:
    """tcpdump on ``node``'s eth0 (at most ``count`` packets matching ``bpf``, 8 s, UDP
    decoded as VXLAN) while ``traffic`` repeats; returns what it printed."""
    out: list[ExecResult] = []
    argv = ["timeout", "8", "tcpdump", "-ni", "eth0", "-l", "-T", "vxlan", "-c", str(count),
            *bpf.split()]
    thread = threading.Thread(
        target=lambda: out.append(cluster.node_exec(node, argv, capture=True, timeout=20)))
    thread.start()
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        traffic()
        thread.join(0.3)
    thread.join()
    assert out, "tcpdump did not finish"
    assert "listening on eth0" in out[0].stderr, out[0].stderr
    return out[0].stdout
