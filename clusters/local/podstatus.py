"""Realistic ``status`` for the objects the local engine runs: Nodes and Pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clusters.local.topology import NodePlan, Topology

KUBELET_VERSION = "v1.31.0-kube-netlab"


def k8s_pod_cidr(node: NodePlan, topo: Topology) -> str:
    """The node's ``spec.podCIDR``: the /24 kube-controller-manager gives it. kindnet and
    Flannel route exactly that; Calico's IPAM ignores it and uses its own /26 blocks, which
    is why a Calico node's podCIDR and its pods' addresses need not match."""
    if node.pod_cidr.prefixlen == 24 or topo.pod_cidr.prefixlen > 24:
        return str(node.pod_cidr)
    return str(list(topo.pod_cidr.subnets(new_prefix=24))[node.index])


def node_object(node: NodePlan, topo: Topology, created: str,
                annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Node object of one planned node: labels, taints, podCIDR, Ready, InternalIP, and
    the annotations the CNI's agent writes."""
    cond = {"lastHeartbeatTime": created, "lastTransitionTime": created}
    cni = f"{topo.cni} ({topo.backend})" if topo.backend else topo.cni
    pod_cidr = k8s_pod_cidr(node, topo)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": dict(node.labels),
                     "annotations": {"kube-netlab/netns": node.netns, **(annotations or {})}},
        "spec": {
            "podCIDR": pod_cidr,
            "podCIDRs": [pod_cidr],
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
                 "reason": "RouteCreated", "message": f"{topo.cluster}: pod network by {cni}"},
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
