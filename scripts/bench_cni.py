"""Benchmarks of the local engine's CNI modes, side by side (issue 5's figures).

For every mode (kindnet, flannel vxlan, flannel host-gw, calico bgp, calico vxlan) it prints,
as medians over ``--runs`` fresh clusters:

- ``nodes Ready``: ``engine.create`` of 3 nodes until they report Ready (the CNI's agents
  started and ready inside it: for calico that is every BGP session Established and the
  routes installed);
- ``start-to-ready``: the same plus 12 pods applied until all are Running and Ready
  (``wait_converged``), which is what a learner waits for;
- ``TCP throughput``: iperf3 between two pods on different nodes (server in one pod's
  namespace, client in the other's, ``--seconds`` long, JSON parsed);
- ``TCP round trip``: the median of ``--round-trips`` 64-byte ping-pongs on one TCP
  connection between the same two pods (a small Python client and server, each socket
  made inside its pod's network namespace);
- ``pod MTU``: eth0's MTU in the pod (overlay modes lose 50 bytes to VXLAN).

It prints numbers and asserts nothing about time; the exit code is 1 only when something is
wrong (pods never ready, iperf3 or the ping-pong failed). Run as root::

    .venv/bin/python scripts/bench_cni.py [--runs 3] [--modes kindnet,calico-bgp] [--json]

Each cluster is ``knlbcni<hex>`` with its state in a temporary LAB_STATE_DIR; it is always
deleted, with the iperf3 server it started, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clusters.cnis import describe  # noqa: E402
from clusters.engine import ClusterProfile  # noqa: E402
from clusters.errors import ClusterError  # noqa: E402
from clusters.local.engine import LocalCluster, LocalEngine  # noqa: E402
from clusters.local.netns import socket_in  # noqa: E402
from clusters.proc import wait_until  # noqa: E402

NS = "bench"
PODS = 12
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
IPERF_PORT = 5201
ECHO_PORT = 7007
MESSAGE = 64
MODES: list[tuple[str, str]] = [
    ("kindnet", ""), ("flannel", "vxlan"), ("flannel", "host-gw"),
    ("calico", "bgp"), ("calico", "vxlan"),
]
START_GOAL = 3.0


class BenchError(Exception):
    """Something is wrong, not slow: the figures would mean nothing."""


def mode_id(mode: tuple[str, str]) -> str:
    return f"{mode[0]}-{mode[1]}" if mode[1] else mode[0]


@dataclass
class ModeFigures:
    mode: tuple[str, str]
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        values = self.samples.get(key)
        return statistics.median(values) if values else None


def fixture() -> list[dict[str, Any]]:
    """12 idle pods; the scheduler spreads them over the nodes."""
    pods = [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"p{i:02d}", "namespace": NS, "labels": {"app": "bench"}},
             "spec": {"terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}}
            for i in range(PODS)]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, *pods]


def two_nodes_apart(cluster: LocalCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two running pods on different nodes: (server, client)."""
    by_node: dict[str, dict[str, Any]] = {}
    for pod in cluster.get("Pod", NS):
        node = pod.get("spec", {}).get("nodeName")
        if node and pod.get("status", {}).get("podIP"):
            by_node.setdefault(node, pod)
    if len(by_node) < 2:
        raise BenchError(f"the {PODS} pods landed on {len(by_node)} node(s); need two")
    server, client = list(by_node.values())[:2]
    return server, client


def measure_start(engine: LocalEngine, name: str, profile: ClusterProfile,
                  figures: ModeFigures) -> LocalCluster:
    started = time.perf_counter()
    cluster = engine.create(name, profile)
    figures.add("nodes_ready", time.perf_counter() - started)
    cluster.apply(fixture(), source="bench")
    cluster.wait_converged([NS], timeout=120)
    figures.add("start_to_ready", time.perf_counter() - started)
    return cluster


@contextmanager
def iperf3_server(cluster: LocalCluster, pod: str, pidfile: Path) -> Iterator[None]:
    """``iperf3 -s`` daemonised in ``pod``'s namespace for one test; killed on the way out."""
    got = cluster.exec(NS, pod, ["iperf3", "-s", "-1", "-D", "-p", str(IPERF_PORT),
                                 "--pidfile", str(pidfile)], capture=True, timeout=10)
    if got.returncode != 0:
        raise BenchError(f"iperf3 -s in {NS}/{pod} failed: {got.stderr.strip()}")
    try:
        wait_until(f"iperf3 listening in {NS}/{pod}",
                   lambda: cluster.exec(NS, pod, ["ss", "-Htln", f"sport = :{IPERF_PORT}"],
                                        capture=True, timeout=5).stdout.strip(),
                   bool, timeout=10, describe=lambda s: s or "nothing listening")
        yield
    finally:
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass  # it exits by itself after its one test (-1)
        pidfile.unlink(missing_ok=True)


def measure_throughput(cluster: LocalCluster, server: dict[str, Any], client: dict[str, Any],
                       seconds: float, tmp: Path) -> float:
    """Bits per second received by the server pod, as iperf3's JSON reports it."""
    ip = server["status"]["podIP"]
    with iperf3_server(cluster, server["metadata"]["name"], tmp / "iperf3.pid"):
        got = cluster.exec(NS, client["metadata"]["name"],
                           ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-J", "-t", str(seconds)],
                           capture=True, timeout=seconds + 30)
    try:
        report = json.loads(got.stdout)
    except json.JSONDecodeError as err:
        raise BenchError(f"iperf3 -c {ip} printed no JSON (exit {got.returncode}): "
                         f"{got.stderr.strip() or got.stdout[:300]}") from err
    if "error" in report:
        raise BenchError(f"iperf3 -c {ip}: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"])


def measure_rtt(cluster: LocalCluster, server: dict[str, Any], client: dict[str, Any],
                round_trips: int) -> float:
    """Median seconds of one 64-byte request and its echo on an open TCP connection."""
    server_ns = cluster._pod_net(NS, server["metadata"]["name"])["netns"]
    client_ns = cluster._pod_net(NS, client["metadata"]["name"])["netns"]
    listener = socket_in(server_ns)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", ECHO_PORT))
    listener.listen(1)
    listener.settimeout(10)
    problems: list[str] = []

    def echo() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(10)
                while data := conn.recv(MESSAGE):
                    conn.sendall(data)
        except OSError as err:
            problems.append(f"echo server: {err}")

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    times: list[float] = []
    try:
        with socket_in(client_ns) as sock:
            sock.settimeout(10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((server["status"]["podIP"], ECHO_PORT))
            payload = b"x" * MESSAGE
            for _ in range(round_trips):
                started = time.perf_counter()
                sock.sendall(payload)
                got = 0
                while got < MESSAGE:
                    chunk = sock.recv(MESSAGE - got)
                    if not chunk:
                        raise BenchError("the echo server closed the connection")
                    got += len(chunk)
                times.append(time.perf_counter() - started)
    except OSError as err:
        raise BenchError(f"ping-pong to {server['status']['podIP']}:{ECHO_PORT}: {err}") from err
    finally:
        listener.close()
        thread.join(timeout=10)
    if problems:
        raise BenchError("; ".join(problems))
    return statistics.median(times)


def pod_mtu(cluster: LocalCluster, pod: str) -> float:
    got = cluster.exec(NS, pod, ["cat", "/sys/class/net/eth0/mtu"], capture=True, timeout=5)
    if got.returncode != 0:
        raise BenchError(f"reading eth0's MTU in {NS}/{pod}: {got.stderr.strip()}")
    return float(got.stdout.strip())


def bench_mode(engine: LocalEngine, mode: tuple[str, str], args: argparse.Namespace,
               tmp: Path, say: Any) -> ModeFigures:
    figures = ModeFigures(mode)
    profile = ClusterProfile(workers=2, cni=mode[0], backend=mode[1])
    for run in range(args.runs):
        name = f"knlbcni{secrets.token_hex(2)}"
        say(f"{profile.cni_label}: run {run + 1}/{args.runs} (cluster {name})")
        try:
            cluster = measure_start(engine, name, profile, figures)
            server, client = two_nodes_apart(cluster)
            if args.iperf:
                figures.add("throughput", measure_throughput(cluster, server, client,
                                                             args.seconds, tmp))
            figures.add("rtt", measure_rtt(cluster, server, client, args.round_trips))
            figures.add("mtu", pod_mtu(cluster, server["metadata"]["name"]))
        finally:
            engine.delete(name)
    return figures


ROWS = [
    # key, label, how to show a value
    ("nodes_ready", "3 nodes Ready (agents, BGP included)", lambda v: f"{v:.2f} s"),
    ("start_to_ready", f"start-to-ready: 3 nodes + {PODS} pods", lambda v: f"{v:.2f} s"),
    ("throughput", "TCP throughput, cross-node (iperf3)", lambda v: f"{v / 1e9:.2f} Gbit/s"),
    ("rtt", f"TCP round trip, cross-node ({MESSAGE} B)", lambda v: f"{v * 1e6:.0f} us"),
    ("mtu", "pod eth0 MTU", lambda v: f"{v:.0f}"),
]


def render(results: list[ModeFigures], runs: int) -> str:
    headers = [describe(*r.mode) for r in results]
    width = max(14, *(len(h) + 2 for h in headers))
    label_w = max(len(label) for _, label, _ in ROWS) + 2
    lines = [f"{f'medians of {runs} run(s)':<{label_w}}" + "".join(f"{h:>{width}}" for h in headers)]
    for key, label, show in ROWS:
        cells = []
        for r in results:
            value = r.median(key)
            cells.append("-" if value is None else show(value))
        lines.append(f"{label:<{label_w}}" + "".join(f"{c:>{width}}" for c in cells))
    lines.append(f"goal: start-to-ready <= {START_GOAL:.0f} s per mode")
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_modes(text: str) -> list[tuple[str, str]]:
    if text == "all":
        return list(MODES)
    by_id = {mode_id(m): m for m in MODES}
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in by_id]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(by_id)} or all")
    return [by_id[t] for t in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="fresh clusters per mode")
    parser.add_argument("--modes", type=parse_modes, default=list(MODES),
                        help="comma-separated: " + ", ".join(mode_id(m) for m in MODES))
    parser.add_argument("--seconds", type=float, default=2.0, help="iperf3 test length")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the local engine builds network namespaces", file=sys.stderr)
        return 2
    args.iperf = shutil.which("iperf3") is not None
    if not args.iperf:
        print("note: iperf3 is not installed (apt-get install iperf3); no throughput figures",
              file=sys.stderr)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="knl-bench-cni-"))
    os.environ["LAB_STATE_DIR"] = str(tmp / "state")
    engine = LocalEngine()

    def say(text: str) -> None:
        print(f"• {text}", file=sys.stderr)

    results: list[ModeFigures] = []
    try:
        for mode in args.modes:
            results.append(bench_mode(engine, mode, args, tmp, say))
    except (BenchError, ClusterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the cluster of the current run was deleted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps([{"mode": mode_id(r.mode), "samples": r.samples,
                           "medians": {k: r.median(k) for k in r.samples}} for r in results],
                         indent=2))
    else:
        print(render(results, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
