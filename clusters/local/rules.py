"""The API server's per-kind rules beyond the schema, and the defaults it fills in.

:mod:`clusters.local.validation` runs :func:`check_kind` only after the schema pass found
nothing, so every rule here may trust field types: names, labels, ports, enums, selectors
matching templates, NetworkPolicy peers, config keys. :func:`apply_defaults` then fills in
what the API server would (restartPolicy, protocols, Service and strategy defaults, ...),
so every later layer of the engine reads one shape.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from clusters.local.kinds import KindInfo
from clusters.local.selectors import label_key_error, label_value_error, matches_selector

__all__ = ["Problem", "apply_defaults", "check_kind", "iana_svc_name_error", "join_path",
           "name_error"]

# A refused field: (dotted path such as ``spec.ports[0].port``, why).
Problem = tuple[str, str]


def join_path(path: str, name: str) -> str:
    """``path.name``, or just ``name`` at the top level."""
    return f"{path}.{name}" if path else name


# ---------------------------------------------------------------- rules pass

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_WORKLOADS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")


def name_error(value: str, rule: str) -> str | None:
    """Why ``value`` breaks a Kubernetes naming rule ('label', 'dns1035', 'subdomain')."""
    if rule == "label":
        if len(value) > 63 or not _DNS_LABEL.match(value):
            return (f"{value!r} is not a valid DNS-1123 label: at most 63 lowercase "
                    "alphanumeric characters or '-', starting and ending with an alphanumeric")
    elif rule == "dns1035":
        if len(value) > 63 or not _DNS_1035.match(value):
            return (f"{value!r} is not a valid DNS-1035 label: at most 63 lowercase "
                    "alphanumeric characters or '-', starting with a letter and ending with "
                    "an alphanumeric")
    elif len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        return (f"{value!r} is not a valid DNS-1123 subdomain: at most 253 lowercase "
                "alphanumeric characters, '-' or '.', starting and ending with an alphanumeric")
    return None


def iana_svc_name_error(value: str) -> str | None:
    """Why ``value`` is not an IANA_SVC_NAME (port names), or None."""
    if len(value) > 15:
        return f"{value!r} must be no more than 15 characters"
    if not _DNS_LABEL.match(value):
        return f"{value!r} must contain only lowercase alphanumerics and '-', not at either end"
    if "--" in value:
        return f"{value!r} must not contain consecutive hyphens"
    if not any(c.isalpha() for c in value):
        return f"{value!r} must contain at least one letter"
    return None


def _enum(value: Any, allowed: Iterable[str], path: str, out: list[Problem]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        out.append((path, f"unsupported value {value!r}; supported values: "
                          f"{', '.join(repr(a) for a in allowed)}"))


def _port_range(value: Any, path: str, out: list[Problem], low: int = 1) -> None:
    if isinstance(value, int) and not low <= value <= 65535:
        out.append((path, f"must be between {low} and 65535, inclusive (got {value})"))


def _int_or_name(value: Any, path: str, out: list[Problem]) -> None:
    """A port given as a number (1-65535) or as a named port (IANA_SVC_NAME)."""
    if isinstance(value, int):
        _port_range(value, path, out)
    elif isinstance(value, str) and (err := iana_svc_name_error(value)):
        out.append((path, f"a named port: {err}"))


def _check_labels(labels: Mapping[str, Any] | None, path: str, out: list[Problem]) -> None:
    for key, value in (labels or {}).items():
        problem = label_key_error(key) or label_value_error(value)
        if problem:
            out.append((path, f"invalid label {key}: {problem}"))


def _check_selector(sel: Mapping[str, Any] | None, path: str, out: list[Problem]) -> None:
    if sel is None:
        return
    _check_labels(sel.get("matchLabels"), join_path(path, "matchLabels"), out)
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{i}]"
        if err := label_key_error(expr["key"]):
            out.append((f"{where}.key", err))
        op, values = expr["operator"], expr.get("values") or []
        _enum(op, ("In", "NotIn", "Exists", "DoesNotExist"), f"{where}.operator", out)
        if op in ("In", "NotIn") and not values:
            out.append((f"{where}.values", f"must be specified when operator is {op}"))
        if op in ("Exists", "DoesNotExist") and values:
            out.append((f"{where}.values", f"may not be specified when operator is {op}"))


def _check_meta(info: KindInfo, meta: dict[str, Any], out: list[Problem]) -> None:
    name = meta.get("name")
    if not name:
        if meta.get("generateName"):
            out.append(("metadata.generateName", "generateName is not supported by the local "
                                                 "engine; give metadata.name instead"))
        else:
            out.append(("metadata.name", "required value is missing"))
    elif err := name_error(name, info.name_rule):
        out.append(("metadata.name", err))
    namespace = meta.get("namespace")
    if info.namespaced and namespace is not None and (err := name_error(namespace, "label")):
        out.append(("metadata.namespace", err))
    _check_labels(meta.get("labels"), "metadata.labels", out)
    for key in meta.get("annotations") or {}:
        if err := label_key_error(key):
            out.append(("metadata.annotations", f"invalid annotation {err}"))
    size = sum(len(k) + len(v) for k, v in (meta.get("annotations") or {}).items())
    if size > 256 * 1024:
        out.append(("metadata.annotations", f"total size {size} exceeds 262144 bytes"))


def _check_containers(spec: dict[str, Any], path: str, out: list[Problem]) -> None:
    seen: set[str] = set()
    volumes = {v["name"] for v in spec.get("volumes") or []}
    for group in ("initContainers", "containers"):
        for i, ctr in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{i}]"
            if err := name_error(ctr["name"], "label"):
                out.append((f"{where}.name", err))
            elif ctr["name"] in seen:
                out.append((f"{where}.name", f"duplicate container name {ctr['name']!r}"))
            seen.add(ctr["name"])
            if not ctr.get("image"):
                out.append((f"{where}.image", "required value is missing"))
            _enum(ctr.get("imagePullPolicy"), ("Always", "IfNotPresent", "Never"),
                  f"{where}.imagePullPolicy", out)
            port_names: set[str] = set()
            for j, port in enumerate(ctr.get("ports") or []):
                pw = f"{where}.ports[{j}]"
                _port_range(port["containerPort"], f"{pw}.containerPort", out)
                _port_range(port.get("hostPort"), f"{pw}.hostPort", out, low=0)
                _enum(port.get("protocol"), _PROTOCOLS, f"{pw}.protocol", out)
                if (pname := port.get("name")) is not None:
                    if err := iana_svc_name_error(pname):
                        out.append((f"{pw}.name", err))
                    elif pname in port_names:
                        out.append((f"{pw}.name", f"duplicate port name {pname!r}"))
                    port_names.add(pname)
            for j, mount in enumerate(ctr.get("volumeMounts") or []):
                if mount["name"] not in volumes:
                    out.append((f"{where}.volumeMounts[{j}].name",
                                f"no volume named {mount['name']!r} in {path}.volumes"))


def _check_pod_spec(spec: dict[str, Any], path: str, out: list[Problem],
                    *, in_template: bool) -> None:
    if not spec["containers"]:
        out.append((f"{path}.containers", "must have at least one container"))
    names = [v["name"] for v in spec.get("volumes") or []]
    for i, name in enumerate(names):
        if err := name_error(name, "label"):
            out.append((f"{path}.volumes[{i}].name", err))
        elif name in names[:i]:
            out.append((f"{path}.volumes[{i}].name", f"duplicate volume name {name!r}"))
    _check_containers(spec, path, out)
    allowed_restart = ("Always",) if in_template else ("Always", "OnFailure", "Never")
    _enum(spec.get("restartPolicy"), allowed_restart, f"{path}.restartPolicy", out)
    _enum(spec.get("dnsPolicy"), ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
          f"{path}.dnsPolicy", out)
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        out.append((f"{path}.terminationGracePeriodSeconds", "must be >= 0"))
    _check_labels(spec.get("nodeSelector"), f"{path}.nodeSelector", out)
    for i, tsc in enumerate(spec.get("topologySpreadConstraints") or []):
        where = f"{path}.topologySpreadConstraints[{i}]"
        if tsc["maxSkew"] < 1:
            out.append((f"{where}.maxSkew", "must be greater than zero"))
        _enum(tsc["whenUnsatisfiable"], ("DoNotSchedule", "ScheduleAnyway"),
              f"{where}.whenUnsatisfiable", out)
        _check_selector(tsc.get("labelSelector"), f"{where}.labelSelector", out)


def _check_workload(info: KindInfo, spec: dict[str, Any], out: list[Problem]) -> None:
    selector = spec["selector"]
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        out.append(("spec.selector", f"empty selector is invalid for a {info.kind}"))
    _check_selector(selector, "spec.selector", out)
    if spec.get("replicas") is not None and spec["replicas"] < 0:
        out.append(("spec.replicas", "must be greater than or equal to 0"))
    template = spec.get("template")
    if template is None:
        out.append(("spec.template", "required value is missing"))
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    _check_labels(labels, "spec.template.metadata.labels", out)
    if not out and not matches_selector(labels, selector):
        out.append(("spec.template.metadata.labels",
                    f"`selector` does not match template `labels` (selector {selector}, "
                    f"labels {labels})"))
    if "spec" not in template:
        out.append(("spec.template.spec", "required value is missing"))
    else:
        _check_pod_spec(template["spec"], "spec.template.spec", out, in_template=True)
    strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
    key = "strategy" if "strategy" in spec else "updateStrategy"
    allowed = {"Deployment": ("RollingUpdate", "Recreate")}.get(info.kind, ("RollingUpdate",
                                                                             "OnDelete"))
    _enum(strategy.get("type"), allowed, f"spec.{key}.type", out)


def _check_service(spec: dict[str, Any], out: list[Problem]) -> None:
    kind = spec.get("type", "ClusterIP")
    _enum(kind, ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"), "spec.type", out)
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and not headless:
        out.append(("spec.ports", "required value is missing"))
    if kind == "ExternalName" and not spec.get("externalName"):
        out.append(("spec.externalName", "required for type ExternalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        where = f"spec.ports[{i}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            out.append((f"{where}.name", "required when a Service has more than one port"))
        elif name and (err := name_error(name, "label")):
            out.append((f"{where}.name", err))
        elif name in names:
            out.append((f"{where}.name", f"duplicate port name {name!r}"))
        names.add(name or "")
        _port_range(port["port"], f"{where}.port", out)
        _enum(port.get("protocol"), _PROTOCOLS, f"{where}.protocol", out)
        _int_or_name(port.get("targetPort"), f"{where}.targetPort", out)
        node_port = port.get("nodePort")
        if node_port is not None and kind not in ("NodePort", "LoadBalancer"):
            out.append((f"{where}.nodePort", f"may not be used when type is {kind!r}"))
        elif node_port is not None and not 30000 <= node_port <= 32767:
            out.append((f"{where}.nodePort", "must be in the node port range 30000-32767"))
    _enum(spec.get("sessionAffinity"), ("None", "ClientIP"), "spec.sessionAffinity", out)
    _enum(spec.get("externalTrafficPolicy"), ("Cluster", "Local"),
          "spec.externalTrafficPolicy", out)
    _enum(spec.get("internalTrafficPolicy"), ("Cluster", "Local"),
          "spec.internalTrafficPolicy", out)
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
        "timeoutSeconds")
    if timeout is not None and not 0 < timeout <= 86400:
        out.append(("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "must be between 1 and 86400"))
    _check_labels(spec.get("selector"), "spec.selector", out)


def _check_cidr(value: str, path: str, out: list[Problem]) -> ipaddress.IPv4Network | None:
    if ":" in value:
        out.append((path, f"{value!r} is an IPv6 CIDR: the local engine's clusters are "
                          "IPv4-only, so it could never match (use an IPv4 CIDR)"))
        return None
    try:
        return ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        out.append((path, f"{value!r} is not a valid CIDR (like 10.0.0.0/16)"))
        return None


def _check_peers(peers: list[dict[str, Any]], path: str, out: list[Problem]) -> None:
    for i, peer in enumerate(peers):
        where = f"{path}[{i}]"
        block = peer.get("ipBlock")
        if block is not None and ("podSelector" in peer or "namespaceSelector" in peer):
            out.append((where, "ipBlock may not be combined with podSelector or "
                               "namespaceSelector"))
        elif block is None and "podSelector" not in peer and "namespaceSelector" not in peer:
            out.append((where, "must specify a podSelector, namespaceSelector or ipBlock"))
        _check_selector(peer.get("podSelector"), f"{where}.podSelector", out)
        _check_selector(peer.get("namespaceSelector"), f"{where}.namespaceSelector", out)
        if block is not None:
            net = _check_cidr(block["cidr"], f"{where}.ipBlock.cidr", out)
            for j, exc in enumerate(block.get("except") or []):
                sub = _check_cidr(exc, f"{where}.ipBlock.except[{j}]", out)
                if net and sub and not sub.subnet_of(net):
                    out.append((f"{where}.ipBlock.except[{j}]",
                                f"must be within the cidr {block['cidr']}"))


def _check_netpol(spec: dict[str, Any], out: list[Problem]) -> None:
    _check_selector(spec.get("podSelector"), "spec.podSelector", out)
    for i, ptype in enumerate(spec.get("policyTypes") or []):
        _enum(ptype, ("Ingress", "Egress"), f"spec.policyTypes[{i}]", out)
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            where = f"spec.{direction}[{i}]"
            _check_peers(rule.get(peers_key) or [], f"{where}.{peers_key}", out)
            for j, port in enumerate(rule.get("ports") or []):
                pw = f"{where}.ports[{j}]"
                _enum(port.get("protocol"), _PROTOCOLS, f"{pw}.protocol", out)
                _int_or_name(port.get("port"), f"{pw}.port", out)
                end = port.get("endPort")
                if end is not None and not isinstance(port.get("port"), int):
                    out.append((f"{pw}.endPort", "may only be set with a numeric port"))
                elif end is not None and end < port["port"]:
                    out.append((f"{pw}.endPort", "must be greater than or equal to port"))


def _check_data_keys(body: dict[str, Any], fields: Iterable[str], out: list[Problem]) -> None:
    seen: set[str] = set()
    for field in fields:
        for key in body.get(field) or {}:
            if len(key) > 253 or not _CONFIG_KEY.match(key) or key in (".", ".."):
                out.append((f"{field}[{key}]", "a valid config key must consist of "
                            "alphanumeric characters, '-', '_' or '.'"))
            elif key in seen and field != "stringData":
                out.append((f"{field}[{key}]", "duplicate of a key in another data field"))
            seen.add(key)


def check_kind(info: KindInfo, body: dict[str, Any], out: list[Problem]) -> None:
    _check_meta(info, body["metadata"], out)
    spec: Any = body.get("spec")
    if info.kind == "Pod":
        if spec is None:
            out.append(("spec", "required value is missing"))
        else:
            _check_pod_spec(spec, "spec", out, in_template=False)
    elif info.kind in _WORKLOADS:
        _check_workload(info, spec, out)
    elif info.kind == "Service":
        _check_service(spec or {}, out)
    elif info.kind == "NetworkPolicy":
        _check_netpol(spec or {}, out)
    elif info.kind == "ConfigMap":
        _check_data_keys(body, ("data", "binaryData"), out)
    elif info.kind == "Secret":
        _check_data_keys(body, ("data", "stringData"), out)
    elif info.kind == "EndpointSlice":
        _enum(body.get("addressType"), ("IPv4", "IPv6", "FQDN"), "addressType", out)


# ---------------------------------------------------------------- defaults


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    for group in ("initContainers", "containers"):
        for ctr in spec.get(group) or []:
            for port in ctr.get("ports") or []:
                port.setdefault("protocol", "TCP")
            if "imagePullPolicy" not in ctr:
                image = ctr.get("image", "")
                latest = ":" not in image.rpartition("/")[2] or image.endswith(":latest")
                ctr["imagePullPolicy"] = "Always" if latest else "IfNotPresent"


def apply_defaults(info: KindInfo, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if info.namespaced:
        meta.setdefault("namespace", "default")
    else:
        meta.pop("namespace", None)
    spec: Any = body.get("spec")
    if info.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif info.kind == "Pod":
        _default_pod_spec(spec)
    elif info.kind in _WORKLOADS:
        if info.kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        _default_pod_spec(spec["template"]["spec"])
        if info.kind == "Deployment":
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy["type"] = "RollingUpdate"
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
        elif info.kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        elif info.kind == "DaemonSet":
            spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    elif info.kind == "Service":
        spec = body.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["sessionAffinity"] == "ClientIP":
            client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            client_ip.setdefault("timeoutSeconds", 10800)
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
    elif info.kind == "NetworkPolicy":
        spec = body.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):  # missing or [], as the API server defaults it
            spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    port.setdefault("protocol", "TCP")
    elif info.kind == "Secret":
        body.setdefault("type", "Opaque")
        plain = body.pop("stringData", None) or {}
        data = body.setdefault("data", {}) if plain else body.get("data")
        for key, value in plain.items():
            assert data is not None
            data[key] = base64.b64encode(value.encode()).decode()
