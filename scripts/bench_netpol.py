"""Benchmarks of NetworkPolicy on the local engine (issue 4's figures).

Prints, as medians over ``--runs``:

- ``9-pod x 2-port matrix``: three namespaces x three pods, each serving TCP 80 and 81,
  behind a few policies that block part of the matrix; every cell probed once (1 s
  timeout, so a blocked cell costs a full second), all in parallel, as ``lab probe matrix``
  does. 162 cells, of which the 18 to self are not probed;
- ``policy change enforced``: applying one deny policy until the apply returns (the daemon
  writes the nodes' rules before it answers; a probe then confirms the cell is blocked),
  and removing it again until a probe connects;
- ``200 policies over 50 pods``: applying 200 policies with varied selectors at once, until
  the apply returns, and the daemon's own measure of programming the nodes.

It prints numbers and asserts nothing about time; the exit code is 1 only when something is
wrong (a cell that should be blocked connects, or the reverse). Run as root::

    .venv/bin/python scripts/bench_netpol.py [--runs 3] [--json]

It makes its own cluster (``knlbnp<hex>``, state in a temporary LAB_STATE_DIR) and always
deletes it, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clusters.engine import ClusterProfile  # noqa: E402
from clusters.local.engine import LocalCluster, LocalEngine  # noqa: E402
from clusters.probing import Outcome, ProbeSpec, Source  # noqa: E402
from grader.matrix import matrix_pods, probe_matrix  # noqa: E402

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
NAMESPACES = ("bx", "by", "bz")
BULK_NS = "bulk"


class BenchError(Exception):
    """Something is wrong, not slow: the figures would mean nothing."""


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
                                                                   "labels": {"ns": name}}}


def _server(ns: str, name: str, labels: dict[str, str], ports: tuple[int, ...]) -> dict[str, Any]:
    containers = [{"name": f"tcp-{p}", "image": AGNHOST,
                   "args": ["serve-hostname", "--tcp", "--http=false", f"--port={p}"],
                   "ports": [{"name": f"serve-{p}-tcp", "containerPort": p}]} for p in ports]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": containers}}


def _policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def matrix_fixture() -> list[dict[str, Any]]:
    docs = [_ns(ns) for ns in NAMESPACES]
    docs += [_server(ns, pod, {"pod": pod}, (80, 81)) for ns in NAMESPACES for pod in "abc"]
    return docs


#: Mixed allowed/blocked: bx/a takes only bx/b; by takes nothing on 81 from outside by.
MATRIX_POLICIES = [
    _policy("bx", "a-from-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                               "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    _policy("by", "81-own-namespace", {"podSelector": {}, "ingress": [
        {"ports": [{"port": 80}]},
        {"from": [{"podSelector": {}}], "ports": [{"port": 81}]}]}),
]


def measure_matrix(cluster: LocalCluster, runs: int) -> dict[str, list[float]]:
    cluster.apply(MATRIX_POLICIES, source="bench")
    pods = matrix_pods(cluster, NAMESPACES)
    if len(pods) != 9:
        raise BenchError(f"expected 9 running pods, found {len(pods)}")
    out: dict[str, list[float]] = {"matrix": [], "matrix_blocked": []}
    for _ in range(runs):
        started = time.perf_counter()
        result = probe_matrix(cluster, pods, ports=[80, 81], timeout=1.0, attempts=1)
        out["matrix"].append(time.perf_counter() - started)
        summary = result.summary()
        if summary["other"] or summary["probed"] != 144:
            raise BenchError(f"unexpected matrix: {summary}\n{result.render(details=True)}")
        # bx/a: 6 outside bx + bx/c, on both ports = 14; by: 6 outside sources x 3 pods on 81 = 18
        if summary["blocked"] != 32:
            raise BenchError(f"expected 32 blocked cells, saw {summary['blocked']}\n"
                             f"{result.render()}")
        out["matrix_blocked"].append(float(summary["blocked"]))
    for p in MATRIX_POLICIES:
        cluster.delete("NetworkPolicy", p["metadata"]["namespace"], p["metadata"]["name"])
    return out


def _tcp(cluster: LocalCluster, src: tuple[str, str], ip: str, port: int, timeout: float) -> Outcome:
    return cluster.probe(ProbeSpec("tcp", Source(*src), ip, port, timeout=timeout)).outcome


def measure_change(cluster: LocalCluster, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"deny_apply": [], "deny_sync": [], "allow_until_connect": []}
    target = cluster.get("Pod", "bz", "a")[0]["status"]["podIP"]
    deny = _policy("bz", "deny-a", {"podSelector": {"matchLabels": {"pod": "a"}},
                                    "policyTypes": ["Ingress"]})
    for _ in range(runs):
        if _tcp(cluster, ("by", "b"), target, 80, 1.0) is not Outcome.CONNECTED:
            raise BenchError("bz/a is not reachable before the deny policy")
        started = time.perf_counter()
        cluster.apply([deny], source="bench")
        out["deny_apply"].append(time.perf_counter() - started)
        out["deny_sync"].append(float(cluster.ping()["network_policy"]["last_sync_seconds"] or 0))
        if _tcp(cluster, ("by", "b"), target, 80, 0.5) is Outcome.CONNECTED:
            raise BenchError("the deny policy was not in effect when its apply returned")
        started = time.perf_counter()
        cluster.delete("NetworkPolicy", "bz", "deny-a")
        deadline = started + 5
        while _tcp(cluster, ("by", "b"), target, 80, 0.05) is not Outcome.CONNECTED:
            if time.perf_counter() > deadline:
                raise BenchError("bz/a stayed blocked 5 s after its policy was deleted")
        out["allow_until_connect"].append(time.perf_counter() - started)
    return out


def bulk_fixture() -> list[dict[str, Any]]:
    docs = [_ns(BULK_NS)]
    for i in range(50):
        labels = {"app": f"app{i % 10}", "tier": ("web", "api", "db")[i % 3], "n": str(i)}
        docs.append(_server(BULK_NS, f"p{i}", labels, (8080,)))
    return docs


def bulk_policies(run: int) -> list[dict[str, Any]]:
    """200 policies mixing the shapes people write: by app, by tier, with ports and ipBlocks."""
    out = []
    for i in range(200):
        selector = {"matchLabels": {"app": f"app{i % 10}"}} if i % 2 else \
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}
        peer: dict[str, Any] = ({"podSelector": {"matchLabels": {"tier": ("web", "api", "db")[i % 3]}}}
                                if i % 4 else {"ipBlock": {"cidr": "10.244.0.0/16",
                                                           "except": [f"10.244.{i % 3}.0/24"]}})
        spec: dict[str, Any] = {"podSelector": selector, "ingress": [
            {"from": [peer], "ports": [{"port": 8080 + (i % 5)}, {"port": "serve-8080-tcp"}]}]}
        if i % 3 == 0:
            spec["egress"] = [{"to": [{"namespaceSelector": {}}],
                               "ports": [{"port": 53, "protocol": "UDP"}]}]
        out.append(_policy(BULK_NS, f"r{run}-p{i}", spec))
    return out


def measure_bulk(cluster: LocalCluster, runs: int) -> dict[str, list[float]]:
    cluster.apply(bulk_fixture(), source="bench")
    cluster.wait_converged([BULK_NS], timeout=120)
    out: dict[str, list[float]] = {"bulk_apply": [], "bulk_sync": [], "bulk_rules": []}
    for run in range(runs):
        docs = bulk_policies(run)
        started = time.perf_counter()
        cluster.apply(docs, source="bench")
        out["bulk_apply"].append(time.perf_counter() - started)
        status = cluster.ping()["network_policy"]
        if status["error"]:
            raise BenchError(f"programming 200 policies failed: {status['error']}")
        out["bulk_sync"].append(float(status["last_sync_seconds"] or 0))
        out["bulk_rules"].append(float(status["rules"]))
        for d in docs:
            cluster.delete("NetworkPolicy", BULK_NS, d["metadata"]["name"])
    return out


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


LABELS = {
    "matrix": ("9-pod x 2-port matrix, 144 probes (1 s timeout), all at once", "s", 3.0),
    "deny_apply": ("apply one deny policy, until the nodes enforce it", "s", 0.1),
    "deny_sync": ("  of which the daemon's policy sync", "s", 0.1),
    "allow_until_connect": ("delete it, until a probe connects again", "s", 0.1),
    "bulk_apply": ("apply 200 policies over 50 pods (rules in place)", "s", 1.0),
    "bulk_sync": ("  of which the daemon's policy sync", "s", 1.0),
    "bulk_rules": ("  nft rules written (all nodes)", "n", 0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the local engine builds network namespaces", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    os.environ["LAB_STATE_DIR"] = tempfile.mkdtemp(prefix="knl-bench-np-")
    engine = LocalEngine()
    name = f"knlbnp{secrets.token_hex(2)}"
    figures: dict[str, list[float]] = {}
    try:
        cluster = engine.create(name, ClusterProfile())
        cluster.apply(matrix_fixture(), source="bench")
        cluster.wait_converged(list(NAMESPACES), timeout=60)
        figures.update(measure_matrix(cluster, args.runs))
        figures.update(measure_change(cluster, max(args.runs, 5)))
        figures.update(measure_bulk(cluster, args.runs))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        engine.delete(name)
    medians = {k: statistics.median(v) for k, v in figures.items()}
    if args.json:
        print(json.dumps({"samples": figures, "medians": medians}, indent=2))
        return 0
    for key, (label, unit, goal) in LABELS.items():
        value = medians[key]
        if unit == "n":
            print(f"{label:<62} {value:>10,.0f}")
            continue
        print(f"{label:<62} {value * 1000:>7,.0f} ms   goal <= {goal * 1000:,.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
