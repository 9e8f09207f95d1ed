"""The EndpointSlice controller: which pods back a Service, on which ports, and why not.

For a Service with a selector, the pods in its namespace whose labels match become
endpoints (discovery.k8s.io/v1), as the upstream controller computes them: only pods with
an IP that have not finished; ``ready`` = pod Ready and not terminating (or always, with
publishNotReadyAddresses); ``serving`` ignores termination; ``terminating`` = being
deleted. Each Service port's targetPort is resolved per pod (a number as is, a name through
the pod's containerPorts of the same protocol), and pods that resolve to different port
sets go into different slices.

Learners get one thing upstream does not give: when a pod cannot serve a port (a named
targetPort it does not declare), or no pod matches the selector at all, the slice carries
the reason in the annotation ``netlab.dev/unresolved``, so ``lab get endpointslices -o
yaml`` answers "why has my Service no endpoints?".

:func:`desired_slices` is pure; :func:`reconcile_slices` is the level-triggered pass the
daemon runs: it writes a slice only when its content changed, so resourceVersions do not
churn, and removes managed slices whose Service is gone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clusters.local.controllers.base import ALPHABET, is_ready, is_terminating, owner_reference
from clusters.local.store import Store

__all__ = ["MANAGED_BY", "MAX_ENDPOINTS", "SERVICE_NAME_LABEL", "UNRESOLVED",
           "desired_slices", "reconcile_slices"]

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
UNRESOLVED = "netlab.dev/unresolved"
MAX_ENDPOINTS = 100  # per slice, the upstream controller's default
_MAX_PROBLEMS = 10


def _selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _declared(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """containerPorts of app containers and of sidecars (restartPolicy Always init ones)."""
    spec = pod.get("spec") or {}
    ctrs = list(spec.get("containers") or [])
    ctrs += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [p for c in ctrs for p in c.get("ports") or []]


def _describe_ports(ports: Sequence[Mapping[str, Any]]) -> str:
    if not ports:
        return "it declares no ports"
    parts = [f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}"
             + (f" {p['name']!r}".replace("'", '"') if p.get("name") else "") for p in ports]
    return "it declares: " + ", ".join(parts)


def _resolve(svc_port: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[int | None, str]:
    """(port number, "") or (None, why) for one Service port on one pod."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target, ""
    proto = svc_port.get("protocol", "TCP")
    declared = _declared(pod)
    for p in declared:
        if p.get("name") == target and p.get("protocol", "TCP") == proto:
            return int(p["containerPort"]), ""
    label = (f'port "{svc_port["name"]}"' if svc_port.get("name")
             else f"port {svc_port.get('port')}/{proto}")
    pod_name = (pod.get("metadata") or {}).get("name")
    other = [p for p in declared if p.get("name") == target]
    if other:
        why = (f'targetPort "{target}" of pod {pod_name} is '
               f"{other[0].get('containerPort')}/{other[0].get('protocol', 'TCP')}, "
               f"not {proto}")
    else:
        why = (f'targetPort "{target}" is not declared by pod {pod_name} '
               f"({_describe_ports(declared)})")
    return None, f"{label}: {why}"


def _usable(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and status.get("phase") not in ("Succeeded", "Failed")


def _endpoint(svc: Mapping[str, Any], pod: Mapping[str, Any],
              zones: Mapping[str, str]) -> Obj:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = is_terminating(pod)
    serving = publish or is_ready(pod)
    ep: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": publish or (serving and not terminating),
                       "serving": serving, "terminating": terminating},
    }
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
        if spec["nodeName"] in zones:
            ep["zone"] = zones[spec["nodeName"]]
    ep["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                       "name": meta.get("name"), "uid": meta.get("uid")}
    return ep


def _slice_name(svc: Mapping[str, Any], group: str, chunk: int) -> str:
    meta = svc["metadata"]
    digest = hashlib.sha256(f"{meta.get('uid', '')}/{group}/{chunk}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    suffix = ""
    for _ in range(5):
        number, index = divmod(number, len(ALPHABET))
        suffix += ALPHABET[index]
    return f"{meta['name'][:57]}-{suffix}"


def _slice(svc: Mapping[str, Any], name: str, ports: list[Obj], endpoints: list[Obj],
           problems: list[str]) -> Obj:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = meta["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    smeta: Obj = {"name": name, "namespace": meta["namespace"], "labels": labels,
                  "ownerReferences": [owner_reference(svc)]}
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
        smeta["annotations"] = {UNRESOLVED: "\n".join(shown)}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": smeta,
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}


def desired_slices(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                   nodes: Iterable[Mapping[str, Any]] = ()) -> list[Obj]:
    """The EndpointSlices the controller wants for ``service`` (empty when it manages none).

    ``pods`` may span namespaces (only the Service's own are used); ``nodes`` give zones.
    """
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    if spec.get("type") == "ExternalName" or not selector:
        return []
    namespace = service["metadata"]["namespace"]
    zones = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
             for n in nodes
             if "topology.kubernetes.io/zone" in ((n.get("metadata") or {}).get("labels") or {})}
    matching = [p for p in pods
                if (p.get("metadata") or {}).get("namespace") == namespace
                and all(((p["metadata"].get("labels") or {}).get(k) == v)
                        for k, v in selector.items())]
    matching.sort(key=lambda p: p["metadata"]["name"])
    usable = [p for p in matching if _usable(p)]
    groups: dict[str, tuple[list[Obj], list[tuple[Obj, list[str]]]]] = {}
    for pod in usable:
        ports: list[Obj] = []
        problems: list[str] = []
        for svc_port in spec.get("ports") or []:
            number, why = _resolve(svc_port, pod)
            if number is None:
                problems.append(why)
                continue
            port: Obj = {"name": svc_port.get("name", ""), "port": number,
                         "protocol": svc_port.get("protocol", "TCP")}
            if svc_port.get("appProtocol"):
                port["appProtocol"] = svc_port["appProtocol"]
            ports.append(port)
        group = json.dumps(ports, sort_keys=True)
        groups.setdefault(group, (ports, []))[1].append((_endpoint(service, pod, zones), problems))
    if not groups:
        if matching:
            why = (f"{len(matching)} pod(s) in namespace {namespace} match selector "
                   f"{_selector_text(selector)} but none has an IP yet (or all have finished)")
        else:
            why = (f"no pod in namespace {namespace} matches selector "
                   f"{_selector_text(selector)}")
        return [_slice(service, _slice_name(service, "[]", 0), [], [], [why])]
    out: list[Obj] = []
    for group, (ports, members) in sorted(groups.items()):
        for chunk in range(0, len(members), MAX_ENDPOINTS):
            part = members[chunk:chunk + MAX_ENDPOINTS]
            out.append(_slice(service, _slice_name(service, group, chunk // MAX_ENDPOINTS),
                              ports, [ep for ep, _ in part],
                              [why for _, whys in part for why in whys]))
    return out


def _content(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return (meta.get("labels") or {}, meta.get("annotations") or {},
            meta.get("ownerReferences") or [], obj.get("addressType"),
            obj.get("endpoints") or [], obj.get("ports") or [])


def _reuse_names(svc: Mapping[str, Any], wanted: list[Obj],
                 existing: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
    """Give new slices of ``svc`` the names of its slices that are no longer wanted, so a
    change of ports or endpoints updates a slice in place (as upstream does) instead of
    replacing it with a newly named one."""
    meta = svc["metadata"]
    mine = sorted(name for (ns, name), s in existing.items()
                  if ns == meta["namespace"]
                  and (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == meta["name"]
                  and any(ref.get("uid") == meta.get("uid")
                          for ref in s["metadata"].get("ownerReferences") or []))
    kept = {s["metadata"]["name"] for s in wanted} & set(mine)
    spare = [name for name in mine if name not in kept]
    for s in wanted:
        if s["metadata"]["name"] not in kept and spare:
            s["metadata"]["name"] = spare.pop(0)


def reconcile_slices(store: Store) -> list[str]:
    """Bring the managed EndpointSlices in line with Services and pods; returns events."""
    events: list[str] = []
    pods, nodes = store.list("Pod", readonly=True), store.list("Node", readonly=True)
    existing = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                for s in store.list("EndpointSlice", selector={MANAGED_BY_LABEL: MANAGED_BY},
                                    readonly=True)}
    desired: dict[tuple[str, str], Obj] = {}
    for svc in store.list("Service", readonly=True):
        if is_terminating(svc):
            continue
        wanted = desired_slices(svc, pods, nodes)
        _reuse_names(svc, wanted, existing)
        for s in wanted:
            desired[(s["metadata"]["namespace"], s["metadata"]["name"])] = s
    for key, want in desired.items():
        have = existing.get(key)
        n = len(want["endpoints"])
        ready = sum(1 for ep in want["endpoints"] if ep["conditions"]["ready"])
        summary = f"{n} endpoint(s), {ready} ready"
        if have is None:
            store.apply(want)
            events.append(f"created endpointslice {key[0]}/{key[1]} ({summary})")
        elif _content(have) != _content(want):
            store.apply(want)
            events.append(f"updated endpointslice {key[0]}/{key[1]} ({summary})")
    for key, have in existing.items():
        if key not in desired:
            store.delete("EndpointSlice", key[0], key[1])
            service = (have["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL, "?")
            events.append(f"deleted endpointslice {key[0]}/{key[1]} (not wanted for "
                          f"service {key[0]}/{service} any more)")
    return events
