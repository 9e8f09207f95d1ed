"""The local engine's daemon: one root process per cluster.

It holds the API objects (store), runs the controllers, wires pods into the datapath,
serves what each pod "runs" from sockets inside the pod's network namespace, evaluates
readiness probes, and answers the CLI on a root-only Unix socket (see :mod:`wire`).

Start: ``python -m clusters.local.daemon --cluster NAME``. The engine writes
``cluster.json`` (profile + topology) first. On start the daemon builds (or finds) the
nodes, reloads the store and brings every scheduled pod back with its old IP, so a killed
daemon recovers its cluster. ``shutdown`` with ``destroy`` removes everything it made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from clusters.engine import ClusterProfile
from clusters.errors import ClusterError, ManifestError, ObjectNotFound
from clusters.local import wire
from clusters.local.addons import dns_objects
from clusters.local.controllers import Controllers
from clusters.local.datapath import IPAM, Datapath
from clusters.local.kinds import resolve_kind
from clusters.local.netpol.enforcer import sctp_warnings
from clusters.local.paths import ClusterPaths
from clusters.local.podfiles import hosts_file, resolv_conf
from clusters.local.podstatus import node_object, pod_status
from clusters.local.policynet import PolicyNetworking, enforces_policy
from clusters.local.runtime.plan import plan_pod
from clusters.local.runtime.pods import PodRuntime
from clusters.local.runtime.readiness import ReadinessProber
from clusters.local.servicenet import ServiceNetworking
from clusters.local.store import Store
from clusters.local.topology import Topology
from clusters.local.validation import validate, validate_all

log = logging.getLogger("kube-netlab.daemon")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


@dataclass
class RunningPod:
    key: str
    uid: str
    node: str
    ip: str
    runtime: PodRuntime
    prober: ReadinessProber | None = None
    prober_task: asyncio.Task[None] | None = None
    ready: bool = False
    per_container: dict[str, bool] = field(default_factory=dict)
    started_at: str = field(default_factory=now)
    warnings: list[str] = field(default_factory=list)


WORKLOADS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")


def apply_warnings(obj: dict[str, Any], cni: str = "kindnet") -> list[str]:
    """What the learner should know about an object the engine stored (kubectl prints these
    as ``Warning:`` lines): images the runtime only emulates, policies the cluster's CNI
    does not enforce, and SCTP ports, which this kernel lacks."""
    kind = obj["kind"]
    if kind == "NetworkPolicy":
        found = list(sctp_warnings(obj))
        if not enforces_policy(cni):
            found.append(f"the {cni} CNI does not enforce NetworkPolicy: this policy is stored "
                         "but has no effect on traffic (as on a real cluster with this CNI)")
        return found
    if kind == "Pod":
        return list(plan_pod(obj).warnings)
    if kind in WORKLOADS:
        template = obj.get("spec", {}).get("template", {})
        pod = {"metadata": {**template.get("metadata", {}), "name": obj["metadata"]["name"],
                            "namespace": obj["metadata"].get("namespace", "default")},
               "spec": template.get("spec", {})}
        return list(plan_pod(pod).warnings)
    return []


class Daemon:
    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = ClusterPaths(name)
        meta = json.loads(self.paths.cluster_file.read_text())
        self.profile = ClusterProfile.from_dict(meta["profile"])
        self.topo = Topology.from_dict(meta["topology"])
        self.store = Store(self.paths.store_file)
        self.store.load()
        self.controllers = Controllers(self.store)
        self.datapath = Datapath(self.topo)
        self.ipam = IPAM(self.topo)
        self.pods: dict[str, RunningPod] = {}
        self.readiness_changed: dict[str, str] = {}
        self._save_pending = False
        self.services = ServiceNetworking(self.store, self.topo)
        self.policies = PolicyNetworking(self.store, self.topo, self.profile.cni)
        self.lock = asyncio.Lock()
        self.dirty = asyncio.Event()
        self.stopping = asyncio.Event()
        self.destroy_on_exit = False
        self.server: asyncio.AbstractServer | None = None
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "ping": self.op_ping, "apply": self.op_apply, "get": self.op_get,
            "delete": self.op_delete, "label": self.op_label, "pods": self.op_pods,
            "pod_net": self.op_pod_net, "reset_namespaces": self.op_reset_namespaces,
            "shutdown": self.op_shutdown,
        }

    # ---- boot -------------------------------------------------------------------------
    async def boot(self) -> None:
        log.info("building nodes for cluster %s", self.name)
        self.datapath.create()
        for node in self.topo.nodes:
            self.store.apply(node_object(node, self.topo, created=now(),
                                         annotations=self.datapath.cni.node_annotations(node)))
        for ns in SYSTEM_NAMESPACES:
            if self.store.get("Namespace", None, ns) is None:
                self.store.apply(validate(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                    source="<system>", index=0))
        # The cluster DNS add-on, as kubeadm installs it; brought back when missing.
        allocator = self.services.allocator()
        for i, obj in enumerate(dns_objects()):
            meta = obj["metadata"]
            if self.store.get(obj["kind"], meta["namespace"], meta["name"]) is None:
                self.store.apply(self.services.admit(validate(obj, source="<addons>", index=i),
                                                     allocator))
        # Pods that survive a daemon restart keep their IPs.
        self.ipam.restore({
            pod_key(p): p["status"]["podIP"] for p in self.store.list("Pod")
            if p.get("status", {}).get("podIP") and p.get("spec", {}).get("nodeName")
        })
        await self.reconcile()

    # ---- reconciliation ---------------------------------------------------------------
    async def reconcile(self) -> None:
        """Bring everything in line with the store, under the lock, in one go.

        Readiness changes are published here rather than when a prober sees them, and the
        Service rules and DNS answers are brought up to date before the lock is released:
        whoever reads a pod as Ready (reads take the lock) also finds it behind its
        Services' rules and in DNS, so "converged" really means the data plane matches.
        """
        async with self.lock:
            self.publish_readiness()
            for _ in range(50):
                events = self.controllers.reconcile()
                events += self.services.reconcile_objects()
                for e in events:
                    log.info("controller: %s", e)
                changed = await self.sync_pods()
                if not events and not changed:
                    break
            # kube-proxy's rules and the policy agent's rules are independent: both at once.
            await asyncio.gather(self.services.sync_dataplane(),
                                 self.policies.sync_dataplane())
        self.schedule_save()

    def schedule_save(self) -> None:
        """Persist the store right after the current reply goes out, not before it: the
        caller does not wait for the state file (a Service change is visible sooner), and
        several reconciles in one loop turn share one write."""
        if self._save_pending:
            return
        self._save_pending = True

        def save() -> None:
            self._save_pending = False
            try:
                self.store.save()
            except Exception:
                log.exception("saving the object store failed")

        asyncio.get_running_loop().call_soon(save)

    def publish_readiness(self) -> None:
        pending, self.readiness_changed = self.readiness_changed, {}
        for key, message in pending.items():
            self.write_pod_status(key, message)

    async def sync_pods(self) -> bool:
        """Make running pods match the store: start new ones, stop removed ones."""
        desired: dict[str, dict[str, Any]] = {}
        for pod in self.store.list("Pod"):
            if pod.get("spec", {}).get("nodeName") and not pod["metadata"].get("deletionTimestamp"):
                desired[pod_key(pod)] = pod
        changed = False
        for key in list(self.pods):
            want = desired.get(key)
            if want is None or want["metadata"]["uid"] != self.pods[key].uid:
                await self.stop_pod(key)
                changed = True
        for key, pod in desired.items():
            if key not in self.pods:
                await self.start_pod(pod)
                changed = True
        return changed

    async def start_pod(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        meta, spec = pod["metadata"], pod["spec"]
        node = spec["nodeName"]
        ip = str(self.ipam.allocate(node, key))
        hostname = spec.get("hostname") or meta["name"]
        self.datapath.add_pod(node, key, ip, hostname, resolv_conf(pod), hosts_file(pod, ip))
        plan = plan_pod(pod)
        runtime = PodRuntime(
            name=meta["name"], namespace=meta.get("namespace", "default"), pod_ip=ip,
            netns=self.datapath.pod_netns(key), plan=plan, dns_zone=self.services.zone,
        )
        states = await runtime.start()
        running = RunningPod(key, meta["uid"], node, ip, runtime, warnings=list(plan.warnings))
        for w in plan.warnings:
            log.warning("pod %s: %s", key, w)
        self.pods[key] = running
        node_plan = self.topo.node(node)

        def on_change(ready: bool, per_container: dict[str, bool], message: str) -> None:
            running.ready = ready
            running.per_container = dict(per_container)
            self.readiness_changed[key] = message  # published by the next reconcile
            self.dirty.set()

        prober = ReadinessProber(
            pod, pod_ip=ip, node_netns=node_plan.netns, container_states=states,
            on_change=on_change,
        )
        running.prober = prober
        running.prober_task = asyncio.get_running_loop().create_task(prober.run())
        self.write_pod_status(key, "")
        log.info("pod %s started on %s with IP %s", key, node, ip)

    async def stop_pod(self, key: str) -> None:
        running = self.pods.pop(key, None)
        if running is None:
            return
        if running.prober is not None:
            await running.prober.stop()
        if running.prober_task is not None:
            running.prober_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running.prober_task
        await running.runtime.stop()
        self.datapath.remove_pod(key)
        self.ipam.release(key)
        log.info("pod %s stopped", key)

    def write_pod_status(self, key: str, message: str) -> None:
        running = self.pods.get(key)
        ns, name = key.split("/", 1)
        pod = self.store.get("Pod", ns, name)
        if running is None or pod is None:
            return
        node_ip = str(self.topo.node(running.node).underlay_ip)
        status = pod_status(
            pod, running.runtime.container_states, ip=running.ip, host_ip=node_ip,
            ready=running.ready, per_container=running.per_container,
            started_at=running.started_at, message=message,
        )
        self.store.set_status("Pod", ns, name, status)

    async def background(self) -> None:
        """Reconcile whenever readiness changed; persist regularly."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.dirty.wait(), timeout=2.0)
            if self.dirty.is_set():
                self.dirty.clear()
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("reconcile failed")

    # ---- operations -------------------------------------------------------------------
    async def op_ping(self, args: dict[str, Any]) -> Any:
        return {
            "cluster": self.name, "pid": os.getpid(), "profile": self.profile.to_dict(),
            "nodes": [n.name for n in self.topo.nodes], "pods": len(self.pods),
            "services": self.services.status(),
            "network_policy": self.policies.status(),
            "cni": await asyncio.to_thread(self.datapath.cni.status),
        }

    async def op_apply(self, args: dict[str, Any]) -> Any:
        # Every document is validated before any is stored: one bad document changes nothing.
        checked = validate_all(args.get("docs", []), args.get("source", ""))
        # Every namespace must exist, or be created earlier in the same batch, before
        # anything is stored: a missing one refuses the whole batch.
        known = {n["metadata"]["name"] for n in self.store.list("Namespace")}
        for i, obj in enumerate(checked):
            if obj["kind"] == "Namespace":
                known.add(obj["metadata"]["name"])
            ns = obj["metadata"].get("namespace")
            if ns is not None and ns not in known:
                raise ManifestError(
                    f'namespaces "{ns}" not found: apply the Namespace first, or put it '
                    "earlier in the same file; nothing was applied",
                    source=args.get("source", ""), index=i, path="metadata.namespace")
        results = []
        async with self.lock:
            # Allocation (ClusterIPs, NodePorts) is checked for the whole batch, against the
            # store and the batch's earlier Services, before anything is stored.
            admitted: list[dict[str, Any]] = []
            allocator = self.services.allocator()
            for i, obj in enumerate(checked):
                try:
                    admitted.append(self.services.admit(obj, allocator))
                except ManifestError as err:
                    raise ManifestError(f"{err.message}; nothing was applied",
                                        source=args.get("source", ""), index=i,
                                        path=err.path) from None
            checked = admitted
            for obj in checked:
                ns = obj["metadata"].get("namespace")
                stored, action = self.store.apply(obj)
                results.append({"kind": stored["kind"], "namespace": ns,
                                "name": stored["metadata"]["name"], "action": action,
                                "warnings": apply_warnings(stored, self.profile.cni)})
        await self.reconcile()
        return results

    async def op_get(self, args: dict[str, Any]) -> Any:
        async with self.lock:  # never a half-reconciled view
            return self._get(args)

    def _get(self, args: dict[str, Any]) -> Any:
        info = resolve_kind(args["kind"])
        ns = args.get("namespace") if info.namespaced else None
        name = args.get("name")
        if name:
            obj = self.store.get(info.kind, ns, name)
            if obj is None:
                where = f' in namespace "{ns}"' if ns else ""
                raise ObjectNotFound(f'{info.plural} "{name}" not found{where}')
            return [obj]
        return self.store.list(info.kind, ns, label_selector=args.get("selector"))

    async def op_delete(self, args: dict[str, Any]) -> Any:
        info = resolve_kind(args["kind"])
        ns = args.get("namespace") if info.namespaced else None
        name = args["name"]
        async with self.lock:
            obj = self.store.get(info.kind, ns, name)
            if obj is None:
                return False
            if info.kind == "Node":
                raise ClusterError("nodes belong to the engine; delete the cluster instead")
            if info.kind == "Namespace":
                if name in PROTECTED_NAMESPACES:
                    raise ClusterError(f'namespace "{name}" is a system namespace and cannot be deleted')
                self.delete_namespace_contents(name)
            self.store.delete(info.kind, ns, name)
        # reconcile() stops every pod that left the store before it returns, so the
        # object and what it owned are gone when the caller hears back.
        await self.reconcile()
        return True

    def delete_namespace_contents(self, ns: str) -> None:
        for kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Pod", "ConfigMap",
                     "Secret", "Service", "EndpointSlice", "NetworkPolicy"):
            for obj in self.store.list(kind, ns):
                self.store.delete(kind, ns, obj["metadata"]["name"])

    async def op_label(self, args: dict[str, Any]) -> Any:
        info = resolve_kind(args["kind"])
        ns = args.get("namespace") if info.namespaced else None
        async with self.lock:
            if self.store.get(info.kind, ns, args["name"]) is None:
                raise ObjectNotFound(f'{info.plural} "{args["name"]}" not found')
            obj = self.store.relabel(info.kind, ns, args["name"], args.get("set", {}),
                                     args.get("remove", []))
        await self.reconcile()
        return obj

    async def op_pods(self, args: dict[str, Any]) -> Any:
        """A compact readiness summary used to wait for convergence."""
        async with self.lock:  # Ready is only seen once the data plane has followed
            return self._pods_summary(args)

    def _pods_summary(self, args: dict[str, Any]) -> Any:
        namespaces = args.get("namespaces")
        out = []
        for pod in self.store.list("Pod"):
            ns = pod["metadata"].get("namespace")
            if namespaces and ns not in namespaces:
                continue
            key = pod_key(pod)
            status = pod.get("status", {})
            conds = {c["type"]: c for c in status.get("conditions", [])}
            out.append({
                "namespace": ns, "name": pod["metadata"]["name"], "node": pod["spec"].get("nodeName"),
                "phase": status.get("phase", "Pending"), "ip": status.get("podIP"),
                "ready": conds.get("Ready", {}).get("status") == "True",
                "running": key in self.pods,
                "never_ready": pod["metadata"].get("annotations", {}).get(
                    "acceptance/never-ready") == "true",
                "message": conds.get("PodScheduled", {}).get("message", "")
                or conds.get("Ready", {}).get("message", ""),
            })
        return out

    async def op_pod_net(self, args: dict[str, Any]) -> Any:
        key = f"{args['namespace']}/{args['name']}"
        running = self.pods.get(key)
        if running is None:
            pod = self.store.get("Pod", args["namespace"], args["name"])
            if pod is None:
                raise ObjectNotFound(f'pods "{args["name"]}" not found in namespace "{args["namespace"]}"')
            raise ClusterError(f"pod {key} is not running yet (phase "
                               f"{pod.get('status', {}).get('phase', 'Pending')})")
        return {"netns": self.datapath.pod_netns(key), "ip": running.ip, "node": running.node,
                "key": key}

    async def op_reset_namespaces(self, args: dict[str, Any]) -> Any:
        removed = []
        for ns in args.get("namespaces", []):
            if ns in PROTECTED_NAMESPACES:
                raise ClusterError(f'namespace "{ns}" is a system namespace and cannot be reset')
            if await self.op_delete({"kind": "Namespace", "name": ns}):
                removed.append(ns)
        return removed

    async def op_shutdown(self, args: dict[str, Any]) -> Any:
        self.destroy_on_exit = bool(args.get("destroy", False))
        self.stopping.set()
        return {"pid": os.getpid()}

    # ---- serving ----------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            request = json.loads(line)
            handler = self.handlers.get(request.get("op", ""))
            if handler is None:
                answer: dict[str, Any] = {"ok": False, "error": {
                    "type": "DaemonError", "message": f"unknown operation {request.get('op')!r}"}}
            else:
                try:
                    answer = {"ok": True, "result": await handler(request.get("args") or {})}
                except Exception as err:  # every failure goes back to the caller, typed
                    if not isinstance(err, ClusterError):
                        log.exception("operation %s failed", request.get("op"))
                    answer = {"ok": False, "error": wire.error_to_wire(err)}
            writer.write(wire.encode(answer))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def serve(self) -> None:
        sock = self.paths.socket
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        old_umask = os.umask(0o177)
        try:
            # A policy matrix probes hundreds of cells at once, each asking for its source
            # pod's network: a deep backlog queues them instead of refusing (EAGAIN).
            self.server = await asyncio.start_unix_server(self.handle, path=str(sock),
                                                          limit=wire.MAX_LINE,
                                                          backlog=wire.BACKLOG)
        finally:
            os.umask(old_umask)
        os.chmod(sock, 0o600)
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        bg = asyncio.get_running_loop().create_task(self.background())
        log.info("serving on %s", sock)
        await self.stopping.wait()
        self.server.close()
        bg.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bg
        await self.shutdown()

    async def shutdown(self) -> None:
        for key in list(self.pods):
            try:
                await self.stop_pod(key) if self.destroy_on_exit else await self.pods.pop(
                    key).runtime.stop()
            except Exception:
                log.exception("stopping pod %s", key)
        self.store.save()
        if self.destroy_on_exit:
            self.datapath.destroy()
        else:
            self.datapath.stop_agents()
        for f in (self.paths.socket, self.paths.pid_file):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        log.info("daemon stopped (destroy=%s)", self.destroy_on_exit)


async def amain(name: str) -> int:
    daemon = Daemon(name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopping.set)
    await daemon.boot()
    await daemon.serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusters.local.daemon")
    parser.add_argument("--cluster", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(amain(args.cluster))
    except Exception:
        log.exception("the daemon failed")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
