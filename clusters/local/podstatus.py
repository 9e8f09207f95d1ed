"""Realistic ``status`` for the objects the local engine runs: Nodes and Pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clusters.local.topology import NodePlan, Topology

KUBELET_VERSION = "v1.31.0-kube-netlab"


def node_object(node: NodePlan, topo: Topology, created: str) -> dict[str, Any]:
    """The Node object of one planned node: labels, taints, podCIDR, Ready, InternalIP."""
    cond = {"lastHeartbeatTime": created, "lastTransitionTime": created}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": dict(node.labels),
                     "annotations": {"kube-netlab/netns": node.netns}},
        "spec": {
            "podCIDR": str(node.pod_cidr),
            "podCIDRs": [str(node.pod_cidr)],
            **({"taints": [dict(t) for t in node.taints]} if node.taints else {}),
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": str(node.underlay_ip)},
                {"type": "Hostname", "address": node.name},
            ],
            "conditions": [
                {**cond, "type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "node network namespace is up (kube-netlab local engine)"},
                {**cond, "type": "NetworkUnavailable", "status": "False",
                 "reason": "RouteCreated", "message": f"{topo.cluster}: kindnet-style routes"},
            ],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "kube-netlab://local",
                         "kubeProxyVersion": KUBELET_VERSION},
            "capacity": {"pods": "110"},
            "allocatable": {"pods": "110"},
        },
    }


def _container_status(state: Any, ready: bool, started_at: str) -> dict[str, Any]:
    running = getattr(state, "state", "running") == "running"
    entry: dict[str, Any] = {
        "name": state.name,
        "image": state.image,
        "imageID": "",
        "ready": ready and running,
        "started": running,
        "restartCount": getattr(state, "restart_count", 0),
    }
    if running:
        entry["state"] = {"running": {"startedAt": started_at}}
    else:
        entry["state"] = {"waiting": {"reason": getattr(state, "reason", "") or "Error",
                                      "message": getattr(state, "message", "")}}
    return entry


def pod_status(
    pod: Mapping[str, Any],
    container_states: Sequence[Any],
    *,
    ip: str,
    host_ip: str,
    ready: bool,
    per_container: Mapping[str, bool],
    started_at: str,
    message: str = "",
) -> dict[str, Any]:
    """The status the kubelet would report for a pod the local engine runs."""
    statuses = [
        _container_status(s, per_container.get(s.name, ready), started_at) for s in container_states
    ]
    all_running = all(s["started"] for s in statuses)
    containers_ready = ready and all_running

    def cond(kind: str, ok: bool, reason: str = "", msg: str = "") -> dict[str, Any]:
        c: dict[str, Any] = {"type": kind, "status": "True" if ok else "False",
                             "lastProbeTime": None, "lastTransitionTime": started_at}
        if not ok:
            c["reason"] = reason
            if msg:
                c["message"] = msg
        return c

    not_ready = [s["name"] for s in statuses if not s["ready"]]
    why = message or (f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else "")
    return {
        "phase": "Running" if all_running else "Pending",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started_at,
        "qosClass": "BestEffort",
        "conditions": [
            cond("PodScheduled", True),
            cond("Initialized", True),
            cond("ContainersReady", containers_ready, "ContainersNotReady", why),
            cond("Ready", containers_ready, "ContainersNotReady", why),
        ],
        "containerStatuses": statuses,
    }
