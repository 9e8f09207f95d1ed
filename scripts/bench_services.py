"""Benchmarks of Services and cluster DNS on the local engine (issue 3's figures).

Prints, as medians over ``--runs``:

- ``100 Services x 3 endpoints``: the time for the daemon to apply 100 new ClusterIP
  Services over a 3-replica Deployment and program every node (the apply returns once the
  rules are in place), and the daemon's own measure of that rules sync;
- ``one Service changed``: re-applying one Service with a new targetPort, until the apply
  returns (rules already rewritten), and the daemon's measure of that partial sync; a
  probe then confirms the change is visible;
- ``DNS queries/s``: sequential UDP queries from one pod to 10.96.0.10 (through the node's
  DNAT, as an application's stub resolver sends them) for ``--seconds`` seconds;
- ``1,000 HTTP requests``: one pod, sequential, each on a new connection, through a
  ClusterIP.

It prints numbers and asserts nothing about time; the exit code is 1 only when something
is wrong (a probe failed, a change was not visible). Run as root::

    .venv/bin/python scripts/bench_services.py [--runs 5] [--seconds 3] [--json]

It makes its own cluster (``knlbsvc<hex>``, state in a temporary LAB_STATE_DIR) and always
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

NS = "bench"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


class BenchError(Exception):
    """Something is wrong, not slow: the figures would mean nothing."""


def fixture() -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
         "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                      "name": "web", "image": AGNHOST,
                      "args": ["netexec", "--http-port=8080", "--udp-port=-1"],
                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS},
         "spec": {"containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}},
    ]


def service(name: str, target: int | str = 8080) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": target}]}}


def sync_seconds(cluster: LocalCluster) -> float:
    return float(cluster.ping()["services"]["last_sync_seconds"] or 0.0)


def measure_bulk(cluster: LocalCluster, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"apply_100": [], "sync_100": []}
    for run in range(runs):
        docs = [service(f"s{run}-{i}") for i in range(100)]
        started = time.perf_counter()
        cluster.apply(docs, source="bench")
        out["apply_100"].append(time.perf_counter() - started)
        out["sync_100"].append(sync_seconds(cluster))
        for d in docs:
            cluster.delete("Service", NS, d["metadata"]["name"])
    return out


def measure_change(cluster: LocalCluster, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"apply_one": [], "sync_one": []}
    for i in range(100):  # a realistic table to change one Service in
        cluster.apply([service(f"bulk-{i}")], source="bench")
    cluster.apply([service("moving")], source="bench")
    ip = cluster.get("Service", NS, "moving")[0]["spec"]["clusterIP"]
    src = Source(NS, "client")
    for run in range(runs):
        target = 9999 if run % 2 == 0 else 8080
        started = time.perf_counter()
        cluster.apply([service("moving", target)], source="bench")
        out["apply_one"].append(time.perf_counter() - started)
        out["sync_one"].append(sync_seconds(cluster))
        seen = cluster.probe(ProbeSpec("tcp", src, ip, 80, timeout=1.0)).outcome
        want = Outcome.REFUSED if target == 9999 else Outcome.CONNECTED
        if seen is not want:
            raise BenchError(f"after the change to targetPort {target} the Service answered "
                             f"{seen}, expected {want}: the change was not visible at once")
    return out


def measure_dns(cluster: LocalCluster, seconds: float) -> float:
    from clusters.local.dns.client import query

    netns = cluster._pod_net(NS, "client")["netns"]
    name = f"web.{NS}.svc.cluster.local."
    count, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        query(name, "A", ("10.96.0.10", 53), netns=netns, timeout=2.0, retries=0)
        count += 1
    return count / (time.perf_counter() - started)


def measure_http(cluster: LocalCluster, runs: int) -> list[float]:
    cluster.apply([service("web")], source="bench")
    ip = cluster.get("Service", NS, "web")[0]["spec"]["clusterIP"]
    spec = ProbeSpec("http", Source(NS, "client"), ip, 80, path="/hostname", timeout=2.0)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(1000):
            obs = cluster.probe(spec)
            if obs.status != 200:
                raise BenchError(f"HTTP through the ClusterIP failed: {obs.summary()}")
        times.append(time.perf_counter() - started)
    return times


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="DNS measurement length")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the local engine builds network namespaces", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    state = tempfile.mkdtemp(prefix="knl-bench-svc-")
    os.environ["LAB_STATE_DIR"] = state
    engine = LocalEngine()
    name = f"knlbsvc{secrets.token_hex(2)}"
    figures: dict[str, Any] = {}
    try:
        cluster = engine.create(name, ClusterProfile())
        cluster.apply(fixture(), source="bench")
        cluster.wait_converged([NS], timeout=60)
        figures.update(measure_bulk(cluster, args.runs))
        figures.update(measure_change(cluster, args.runs))
        figures["dns_qps"] = [measure_dns(cluster, args.seconds)]
        figures["http_1000"] = measure_http(cluster, args.runs)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        engine.delete(name)
    goals = {"apply_100": ("s", 0.3), "sync_100": ("s", 0.3), "apply_one": ("s", 0.1),
             "sync_one": ("s", 0.1), "dns_qps": ("/s", 2000), "http_1000": ("s", 5.0)}
    medians = {k: statistics.median(v) for k, v in figures.items()}
    if args.json:
        print(json.dumps({"samples": figures, "medians": medians}, indent=2))
        return 0
    labels = {
        "apply_100": "apply 100 Services x 3 endpoints (rules in place)",
        "sync_100": "  of which the daemon's rules sync",
        "apply_one": "re-apply one changed Service (rules in place)",
        "sync_one": "  of which the daemon's rules sync",
        "dns_qps": "DNS queries/s from one pod (UDP, via 10.96.0.10)",
        "http_1000": "1,000 HTTP requests through a ClusterIP, one pod",
    }
    for key, label in labels.items():
        unit, goal = goals[key]
        value = medians[key]
        shown = f"{value:,.0f}{unit}" if unit == "/s" else f"{value * 1000:,.0f} ms"
        goal_text = f">= {goal:,}/s" if unit == "/s" else f"<= {goal * 1000:,.0f} ms"
        print(f"{label:<55} {shown:>12}   goal {goal_text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
