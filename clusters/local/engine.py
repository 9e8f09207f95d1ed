"""The local engine, client side: creates clusters (spawns their daemon) and talks to them.

Creating a cluster is a list of named steps; on any failure, and on Ctrl-C, everything made
so far is removed (the daemon, then what its tag finds) before the error is raised again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from clusters.cnis import CniChoiceError, choices, resolve
from clusters.engine import (
    ApplyResult,
    Capabilities,
    ClusterInfo,
    ClusterProfile,
    ExecResult,
    KindRef,
    StepReporter,
)
from clusters.errors import (
    ClusterExists,
    ClusterNotFound,
    DaemonError,
    EngineUnavailable,
)
from clusters.fileio import atomic_write
from clusters.local import cleanup, kinds, wire
from clusters.local.cni import check_supported
from clusters.local.datapath import Datapath
from clusters.local.paths import ClusterPaths, known_clusters, state_root
from clusters.local.policynet import enforces_policy
from clusters.local.probes import run_probe
from clusters.local.topology import Topology, host_routes, plan
from clusters.probing import Observation, Outcome, ProbeSpec
from clusters.proc import wait_until
from clusters.selection import local_available

DAEMON_START_TIMEOUT = 20.0
PLANNING_LOCK = ".planning.lock"


def _read_meta(paths: ClusterPaths) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(paths.cluster_file.read_text())
        return data
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def planning_lock() -> Iterator[None]:
    """Hold an exclusive lock on ``<state root>/.planning.lock`` (one per state root, so
    creates in other processes wait too); released when the block ends or the process dies."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / PLANNING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def taken_underlays(name: str) -> list[IPv4Network]:
    """The node networks (underlays) of every other cluster with state on this machine."""
    taken = []
    for other in known_clusters():
        other_meta = _read_meta(ClusterPaths(other))
        if other_meta and other != name:
            taken.append(IPv4Network(other_meta["topology"]["underlay"]))
    return taken


def _pid_alive(pid: int, name: str) -> bool:
    """Whether ``pid`` is this cluster's daemon (checked by its command line, not just the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"clusters.local.daemon" in cmdline and name.encode() in cmdline


class LocalEngine:
    """Clusters made of network namespaces on this machine."""

    name = "local"

    def available(self) -> tuple[bool, str]:
        return local_available()

    def _require(self) -> None:
        ok, why = self.available()
        if not ok:
            raise EngineUnavailable("local", why, "run `sudo ./lab ...` on Linux")

    # ---- lifecycle --------------------------------------------------------------------
    def create(
        self, name: str, profile: ClusterProfile, report: StepReporter | None = None
    ) -> LocalCluster:
        self._require()
        say = report or (lambda step: None)
        try:
            resolve(profile.cni, profile.backend)
        except CniChoiceError as err:
            raise EngineUnavailable("local", str(err), f"choose one of: {choices()}") from err
        check_supported(profile.cni)
        if profile.addons:
            wanted = ", ".join(profile.addons)
            raise EngineUnavailable(
                "local", f"the cluster needs the add-on{'s' if len(profile.addons) > 1 else ''} "
                f"{wanted}, and the local engine rebuilds the data plane only (no Ingress "
                "controller, Gateway, load balancer or mesh)", "use --engine kind")
        paths = ClusterPaths(name)
        meta = _read_meta(paths)
        if meta is not None:
            existing = ClusterProfile.from_dict(meta["profile"])
            if existing != profile:
                raise ClusterExists(
                    f"cluster {name!r} exists with another profile ({existing.workers} workers, "
                    f"CNI {existing.cni_label}); wanted {profile.workers} workers, CNI "
                    f"{profile.cni_label}. Delete it first: lab cluster delete --name {name}")
            if self._daemon_pid(paths) is not None:
                say(f"Reusing running cluster {name}")
                return self.connect(name)
            say(f"Restarting the daemon of cluster {name} (state kept)")
            try:
                self._spawn(paths)
            except BaseException:
                self._stop_daemon(paths)
                raise
            return LocalCluster(name, paths)
        try:
            say("Planning addresses (underlay, pod and Service ranges)")
            with planning_lock():
                # Held from reading the underlays taken to writing our own: two creates at
                # once would otherwise both see the same /24 free and pick it.
                topo = plan(name, profile.workers, host_routes(), taken_underlays(name),
                            cni=profile.cni, backend=profile.backend)
                paths.ensure()
                atomic_write(paths.cluster_file, json.dumps(
                    {"name": name, "engine": "local", "profile": profile.to_dict(),
                     "topology": topo.to_dict(), "created": time.time()}, indent=2))
            if profile.cni == "calico":
                say(f"Calico IP pool {topo.pod_cidr}, one /26 block per node")
            say(f"Building {profile.nodes} nodes ({profile.cni_label}) and starting the "
                "cluster daemon")
            self._spawn(paths)
            cluster = LocalCluster(name, paths)
            say("Waiting for nodes to be Ready")
            cluster.wait_nodes_ready()
            return cluster
        except BaseException:
            # Ctrl-C or any failure: nothing may be left half-built.
            self._teardown(name)
            raise

    def _spawn(self, paths: ClusterPaths) -> None:
        paths.ensure()
        log = open(paths.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "clusters.local.daemon", "--cluster", paths.name],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
        finally:
            log.close()
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonError(
                    f"the daemon of cluster {paths.name} exited with code {proc.returncode} "
                    f"while starting:\n{self._log_tail(paths)}")
            with contextlib.suppress(ClusterNotFound, DaemonError):
                wire.call(paths.socket, "ping", timeout=2)
                return
            time.sleep(0.02)
        proc.kill()
        raise DaemonError(f"the daemon of cluster {paths.name} did not answer within "
                          f"{DAEMON_START_TIMEOUT:g}s:\n{self._log_tail(paths)}")

    @staticmethod
    def _log_tail(paths: ClusterPaths, lines: int = 15) -> str:
        try:
            return "\n".join(paths.log_file.read_text().splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"

    def _daemon_pid(self, paths: ClusterPaths) -> int | None:
        try:
            pid = int(paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid, paths.name) else None

    def _stop_daemon(self, paths: ClusterPaths, destroy: bool = True) -> None:
        pid = self._daemon_pid(paths)
        if pid is None:
            return
        with contextlib.suppress(ClusterNotFound, DaemonError):
            wire.call(paths.socket, "shutdown", {"destroy": destroy}, timeout=10)
        deadline = time.monotonic() + 8
        while _pid_alive(pid, paths.name) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_alive(pid, paths.name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _teardown(self, name: str) -> list[str]:
        paths = ClusterPaths(name)
        existed = paths.cluster_file.exists() or paths.run_dir.exists()
        try:
            self._stop_daemon(paths)
        finally:
            # Whatever happened to the daemon, everything carrying this cluster's tag goes.
            removed = cleanup.remove_leftovers(name)
            shutil.rmtree(paths.state_dir, ignore_errors=True)
            shutil.rmtree(paths.run_dir, ignore_errors=True)
        return removed if removed or not existed else [f"state of cluster {name}"]

    def delete(self, name: str) -> bool:
        self._require()
        return bool(self._teardown(name))

    def connect(self, name: str) -> LocalCluster:
        paths = ClusterPaths(name)
        if _read_meta(paths) is None:
            raise ClusterNotFound(
                f"no local cluster named {name!r} (create one with `lab start NN` or "
                f"`lab cluster create --name {name}`)")
        if self._daemon_pid(paths) is None:
            self._require()
            print(f"note: the daemon of cluster {name} was not running; restarting it "
                  "(its state is kept)", file=sys.stderr)
            self._spawn(paths)
        return LocalCluster(name, paths)

    def info(self, name: str) -> ClusterInfo | None:
        paths = ClusterPaths(name)
        meta = _read_meta(paths)
        if meta is None:
            return None
        topo = meta.get("topology", {})
        running = self._daemon_pid(paths) is not None
        return ClusterInfo(
            name=name, engine="local", profile=ClusterProfile.from_dict(meta["profile"]),
            running=running,
            detail="daemon running" if running else "daemon stopped (state kept; any command restarts it)",
            nodes=tuple(n["name"] for n in topo.get("nodes", [])),
        )

    def list(self) -> list[ClusterInfo]:
        names = set(known_clusters()) | set(cleanup.all_local_clusters())
        out = []
        for name in sorted(names):
            info = self.info(name)
            out.append(info or ClusterInfo(
                name=name, engine="local", profile=ClusterProfile(), running=False,
                detail="leftovers without state (remove with `lab cluster delete --name "
                       f"{name}`)"))
        return out


class LocalCluster:
    """A running local cluster; every call goes to its daemon except exec and probes,
    which run here (as root) inside the pod's namespaces."""

    engine = "local"

    def __init__(self, name: str, paths: ClusterPaths) -> None:
        self.name = name
        self.paths = paths
        meta = _read_meta(paths)
        if meta is None:
            raise ClusterNotFound(f"cluster {name!r} has no state")
        self.profile = ClusterProfile.from_dict(meta["profile"])
        self.topology = Topology.from_dict(meta["topology"])
        self._datapath = Datapath(self.topology)

    def _call(self, op: str, args: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        return wire.call(self.paths.socket, op, args, timeout=timeout)

    def capabilities(self) -> Capabilities:
        # The daemon programs the data plane before the API objects report ready, so a
        # result only needs a short settle to be judged (readiness flips, a re-applied pod).
        return Capabilities(network_policy=enforces_policy(self.profile.cni), services=True,
                            dns=True, ingress=False, load_balancer=True, sctp=False,
                            cni=self.profile.cni, cni_backend=self.profile.backend,
                            propagation_seconds=0.5, host_ip=str(self.topology.host_ip))

    def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("ping", timeout=5)
        return result

    def resolve_kind(self, kind: str) -> KindRef:
        """From the engine's own table (:mod:`clusters.local.kinds`): the daemon serves
        exactly those kinds, so no call is needed."""
        info = kinds.resolve_kind(kind)
        return KindRef(info.kind, info.namespaced)

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        results = self._call("apply", {"docs": [dict(d) for d in docs], "source": source})
        return [ApplyResult(r["kind"], r["namespace"], r["name"], r["action"],
                            tuple(r.get("warnings", ()))) for r in results]

    def get(
        self, kind: str, namespace: str | None = None, name: str | None = None,
        selector: Mapping[str, str] | dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        sel: dict[str, Any] | None = None
        if selector:
            sel = dict(selector) if "matchLabels" in selector or "matchExpressions" in selector \
                else {"matchLabels": dict(selector)}
        result: list[dict[str, Any]] = self._call(
            "get", {"kind": kind, "namespace": namespace, "name": name, "selector": sel})
        return result

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        return bool(self._call("delete", {"kind": kind, "namespace": namespace, "name": name}))

    def label(
        self, kind: str, namespace: str | None, name: str,
        set_labels: Mapping[str, str], remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._call("label", {
            "kind": kind, "namespace": namespace, "name": name,
            "set": dict(set_labels), "remove": list(remove)})
        return result

    def pods_summary(self, namespaces: Sequence[str] | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "pods", {"namespaces": list(namespaces) if namespaces else None})
        return result

    def wait_nodes_ready(self, timeout: float = 30) -> None:
        def ready_nodes() -> list[str]:
            return [
                n["metadata"]["name"] for n in self.get("Node")
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in n.get("status", {}).get("conditions", []))
            ]
        wait_until(f"{self.profile.nodes} nodes Ready", ready_nodes,
                   lambda names: len(names) >= self.profile.nodes, timeout=timeout)

    def wait_converged(self, namespaces: Sequence[str] | None = None, timeout: float = 60) -> None:
        def pending(summary: list[dict[str, Any]]) -> list[str]:
            return [
                f"{p['namespace']}/{p['name']} ({p['phase']}"
                + (f": {p['message']}" if p["message"] else "") + ")"
                for p in summary
                if not p["running"] or (not p["ready"] and not p["never_ready"])
            ]
        wait_until(
            "pods to be Running and Ready", lambda: self.pods_summary(namespaces),
            lambda s: not pending(s), timeout=timeout,
            describe=lambda s: "; ".join(pending(s)) or "all ready",
        )

    def _pod_net(self, namespace: str, pod: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("pod_net", {"namespace": namespace, "name": pod})
        return result

    def _run(self, argv: list[str], capture: bool, timeout: float | None) -> ExecResult:
        if capture:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            return ExecResult(cp.returncode, cp.stdout, cp.stderr, tuple(argv))
        done = subprocess.run(argv, timeout=timeout, check=False)
        return ExecResult(done.returncode, argv=tuple(argv))

    def exec(
        self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        net = self._pod_net(namespace, pod)
        return self._run(self._datapath.exec_argv(net["key"], list(argv)), capture, timeout)

    def node_exec(
        self, node: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        names = [n.name for n in self.topology.nodes]
        if node not in names:
            raise ClusterNotFound(f"no node {node!r} in cluster {self.name} (nodes: {', '.join(names)})")
        return self._run(self._datapath.node_exec_argv(node, list(argv)), capture, timeout)

    def probe(self, spec: ProbeSpec) -> Observation:
        netns: str | None = None
        if spec.source.node is not None:
            names = [n.name for n in self.topology.nodes]
            if spec.source.node not in names:
                return Observation(Outcome.ERROR, detail=f"no node {spec.source.node!r} in "
                                   f"cluster {self.name} (nodes: {', '.join(names)})")
            netns = self.topology.node(spec.source.node).netns
        elif not spec.source.is_host:
            try:
                netns = self._pod_net(spec.source.namespace or "default", spec.source.pod or "")[
                    "netns"]
            except Exception as err:  # the source pod is missing or not running
                return Observation(Outcome.ERROR, detail=f"source {spec.source}: {err}")
        return run_probe(spec, netns)

    def reset_namespaces(self, namespaces: Sequence[str]) -> None:
        self._call("reset_namespaces", {"namespaces": list(namespaces)}, timeout=120)
