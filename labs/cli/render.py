"""kubectl-like tables for ``lab get``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from rich.markup import escape

from clusters.labels import format_selector
from labs.cli.ui import out, table

Obj = dict[str, Any]


def age(obj: Obj, now: dt.datetime | None = None) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    secs = int(((now or dt.datetime.now(dt.UTC)) - created).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _cond(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions", []))


def _node_row(o: Obj, wide: bool) -> list[str]:
    labels = o["metadata"].get("labels", {})
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels
                            if k.startswith("node-role.kubernetes.io/"))) or "<none>"
    st = o.get("status", {})
    row = [o["metadata"]["name"], "Ready" if _cond(o, "Ready") else "NotReady", roles, age(o),
           st.get("nodeInfo", {}).get("kubeletVersion", "")]
    if wide:
        ip = next((a["address"] for a in st.get("addresses", []) if a["type"] == "InternalIP"), "")
        row += [ip, o.get("spec", {}).get("podCIDR", "")]
    return row


def _pod_phase(o: Obj) -> str:
    st = o.get("status", {})
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in st.get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "Waiting"))
    return str(st.get("phase", "Pending"))


def _pod_row(o: Obj, wide: bool) -> list[str]:
    st = o.get("status", {})
    css = st.get("containerStatuses", [])
    total = len(o.get("spec", {}).get("containers", [])) or len(css)
    ready = sum(1 for c in css if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in css)
    row = [o["metadata"]["name"], f"{ready}/{total}", _pod_phase(o), str(restarts), age(o)]
    if wide:
        row += [st.get("podIP") or "<none>", o.get("spec", {}).get("nodeName") or "<none>"]
    return row


def _workload_row(o: Obj, wide: bool) -> list[str]:
    spec, st = o.get("spec", {}), o.get("status", {})
    want = spec.get("replicas", 1)
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{want}",
            str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)), age(o)]


def _rs_row(o: Obj, wide: bool) -> list[str]:
    spec, st = o.get("spec", {}), o.get("status", {})
    return [o["metadata"]["name"], str(spec.get("replicas", 1)), str(st.get("replicas", 0)),
            str(st.get("readyReplicas", 0)), age(o)]


def _ds_row(o: Obj, wide: bool) -> list[str]:
    st = o.get("status", {})
    return [o["metadata"]["name"], str(st.get("desiredNumberScheduled", 0)),
            str(st.get("currentNumberScheduled", 0)), str(st.get("numberReady", 0)), age(o)]


def _sts_row(o: Obj, wide: bool) -> list[str]:
    st = o.get("status", {})
    return [o["metadata"]["name"],
            f"{st.get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 1)}", age(o)]


def _ns_row(o: Obj, wide: bool) -> list[str]:
    return [o["metadata"]["name"], "Terminating" if o["metadata"].get("deletionTimestamp")
            else "Active", age(o)]


def _data_row(o: Obj, wide: bool) -> list[str]:
    return [o["metadata"]["name"], str(len(o.get("data", {}) or {})), age(o)]


def _ports(spec: Obj) -> str:
    parts = []
    for p in spec.get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        parts.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _service_row(o: Obj, wide: bool) -> list[str]:
    spec = o.get("spec", {})
    kind = spec.get("type", "ClusterIP")
    ingress = o.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    if kind == "ExternalName":
        external = spec.get("externalName", "")
    elif kind == "LoadBalancer":
        external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or "<pending>"
    else:
        external = ",".join(spec.get("externalIPs") or []) or "<none>"
    row = [o["metadata"]["name"], kind, spec.get("clusterIP") or "<none>", external,
           _ports(spec), age(o)]
    if wide:
        sel = spec.get("selector") or {}
        row.append(",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>")
    return row


def _slice_row(o: Obj, wide: bool) -> list[str]:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None)
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses", [])]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    row = [o["metadata"]["name"], o.get("addressType", ""), ports or "<unset>",
           shown or "<unset>", age(o)]
    if wide:
        not_ready = [a for e in o.get("endpoints") or [] if not e.get("conditions", {}).get("ready")
                     for a in e.get("addresses", [])]
        row.append(",".join(not_ready) or "<none>")
    return row


def _selector_text(sel: Obj | None) -> str:
    """A LabelSelector the way kubectl prints it (keys of matchLabels sorted); empty = <none>."""
    sel = sel or {}
    ordered = {**sel, "matchLabels": dict(sorted((sel.get("matchLabels") or {}).items()))}
    return format_selector(ordered) or "<none>"


def _netpol_row(o: Obj, wide: bool) -> list[str]:
    spec = o.get("spec") or {}
    row = [o["metadata"]["name"], _selector_text(spec.get("podSelector")), age(o)]
    if wide:
        row.append(",".join(spec.get("policyTypes") or []) or "Ingress")
    return row


def _generic_row(o: Obj, wide: bool) -> list[str]:
    return [o["metadata"]["name"], age(o)]


LAYOUTS: dict[str, tuple[list[str], list[str], Callable[[Obj, bool], list[str]]]] = {
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["INTERNAL-IP", "POD-CIDR"], _node_row),
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod_row),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [], _workload_row),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], [], _rs_row),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], [], _ds_row),
    "StatefulSet": (["NAME", "READY", "AGE"], [], _sts_row),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _ns_row),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _data_row),
    "Secret": (["NAME", "DATA", "AGE"], [], _data_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"],
                _service_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], ["NOT-READY"],
                      _slice_row),
    "NetworkPolicy": (["NAME", "POD-SELECTOR", "AGE"], ["POLICY-TYPES"], _netpol_row),
}

#: The engine explains missing endpoints in this EndpointSlice annotation.
UNRESOLVED_ANNOTATION = "netlab.dev/unresolved"


def notes(kind: str, objs: Sequence[Obj]) -> list[str]:
    """Lines to print under a table: why an EndpointSlice lacks endpoints or ports."""
    if kind != "EndpointSlice":
        return []
    out = []
    for o in objs:
        why = (o["metadata"].get("annotations") or {}).get(UNRESOLVED_ANNOTATION, "")
        out += [f"{o['metadata']['name']}: {line}" for line in why.splitlines() if line.strip()]
    return out


def labels_text(obj: Obj) -> str:
    labels = obj.get("metadata", {}).get("labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def objects(kind: str, objs: Sequence[Obj], *, wide: bool, show_ns: bool,
            show_labels: bool = False) -> None:
    headers, wide_headers, row = LAYOUTS.get(kind, (["NAME", "AGE"], [], _generic_row))
    cols = headers + (wide_headers if wide else [])
    rows = [row(o, wide) for o in objs]
    if show_labels:
        cols = [*cols, "LABELS"]
        rows = [[*r, labels_text(o)] for o, r in zip(objs, rows, strict=True)]
    if show_ns:
        cols = ["NAMESPACE", *cols]
        rows = [[o["metadata"].get("namespace", ""), *r] for o, r in zip(objs, rows, strict=True)]
    table(cols, rows)
    explained = notes(kind, objs)
    if explained:
        out.print("\nWhy endpoints are missing:")
        for line in explained:
            out.print(f"  {escape(line)}")
