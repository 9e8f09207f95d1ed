"""Manifest validation for the local engine, as strict as ``kubectl apply --validate=strict``.

Two passes per document. The *schema pass* walks the document along the official
``kubernetes`` Python client's models (each has ``openapi_types`` and ``attribute_map``), so
the whole Kubernetes schema comes for free: unknown fields (with a "did you mean"), wrong
types and missing required fields are reported with their full path. The *rules pass*
(only when the schema pass found nothing, so it can trust types) checks what the API
server checks beyond the schema: names, labels, ports, enums, selectors matching
templates. Then defaults are filled in on a copy, so every later layer reads one shape.

Every problem is a ``(path, message)`` pair; :func:`validate` raises one
:class:`~clusters.errors.ManifestError` naming the first path and listing the rest.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from kubernetes.client import models as k8s_models

from clusters.errors import ManifestError
from clusters.local import kinds as kinds_mod
from clusters.local.kinds import KindInfo
from clusters.local.store import label_key_error, label_value_error, matches_selector

Problem = tuple[str, str]

# Fields typed as strings in the schema that carry resource quantities: YAML numbers are fine.
_QUANTITY_FIELDS = frozenset({"limits", "requests", "overhead", "sizeLimit", "capacity",
                              "allocatable", "hard"})


# ---------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as kubectl's YAML-to-JSON step does."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML into mappings; empty documents are skipped, ``List`` expanded.

    A YAML syntax error names its line; a document that is not a mapping names its index.
    """
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ManifestError(f"YAML syntax error{line}: {problem}", source=source) from err
    docs: list[dict[str, Any]] = []
    for index, doc in enumerate(raw):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(
                f"a document must be a mapping (apiVersion, kind, metadata, ...), "
                f"not {_type_name(doc)}", source=source, index=index)
        if doc.get("kind") == "List" or (
            isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            for item_no, item in enumerate(doc.get("items") or []):
                if not isinstance(item, dict):
                    raise ManifestError(f"items[{item_no}] must be a mapping",
                                        source=source, index=index)
                docs.append(item)
        else:
            docs.append(doc)
    return docs


# ---------------------------------------------------------------- schema pass


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _model(name: str) -> Any:
    cls = getattr(k8s_models, name, None)
    return cls if isinstance(getattr(cls, "openapi_types", None), dict) else None


@functools.cache
def required_attrs(cls: type) -> frozenset[str]:
    """The attributes a client model requires, discovered once per model and cached.

    Pydantic-generated clients (v32+) say so per field; older clients raise ``ValueError``
    from a setter given ``None`` while client-side validation is on.
    """
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        return frozenset(a for a, f in fields.items() if f.is_required())
    from kubernetes.client import Configuration

    config = Configuration()
    config.client_side_validation = True
    probe: Any = object.__new__(cls)
    probe.local_vars_configuration = config
    required = set()
    for attr in cls.openapi_types:  # type: ignore[attr-defined]
        try:
            setattr(probe, attr, None)
        except ValueError:
            required.add(attr)
    return frozenset(required)


@functools.cache
def _json_fields(cls: type) -> dict[str, tuple[str, str]]:
    """jsonName -> (attribute, type string) for a model."""
    amap: dict[str, str] = cls.attribute_map  # type: ignore[attr-defined]
    return {amap[a]: (a, t) for a, t in cls.openapi_types.items()}  # type: ignore[attr-defined]


_LIST_RE = re.compile(r"^(?:list|List)\[(.+)\]$")
_DICT_RE = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")
_EXPECTED = {"str": "string", "int": "integer", "bool": "boolean", "float": "number",
             "object": "integer or string", "datetime": "RFC 3339 time string",
             "date": "date string", "bytes": "base64 string"}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(value: Any, type_str: str, path: str, field: str, out: list[Problem]) -> None:
    """Check ``value`` against a client type string, appending problems to ``out``."""
    if m := _LIST_RE.match(type_str):
        if not isinstance(value, list):
            out.append((path, f"expected a list, got {_type_name(value)}"))
            return
        for i, item in enumerate(value):
            _walk(item, m.group(1), f"{path}[{i}]", field, out)
        return
    if m := _DICT_RE.match(type_str):
        if not isinstance(value, dict):
            out.append((path, f"expected a mapping, got {_type_name(value)}"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append((path, f"key {key!r} must be a string"))
            elif item is not None:
                _walk(item, m.group(1) or m.group(2), f"{path}[{key}]", field, out)
        return
    cls = _model(type_str)
    if cls is not None:
        _walk_model(value, cls, path, out)
        return
    ok = {
        "str": lambda v: isinstance(v, str) or (
            field in _QUANTITY_FIELDS and isinstance(v, int | float) and not isinstance(v, bool)),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "object": lambda v: isinstance(v, int | str) and not isinstance(v, bool),
        "bytes": lambda v: isinstance(v, str),
    }.get(type_str, lambda v: isinstance(v, str))
    if not ok(value):
        expected = _EXPECTED.get(type_str, type_str)
        out.append((path, f"expected {expected}, got {_type_name(value)} {value!r}"))
    elif type_str == "bytes":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.append((path, "illegal base64 data (use stringData for plain text)"))


def _walk_model(value: Any, cls: type, path: str, out: list[Problem]) -> None:
    if not isinstance(value, dict):
        out.append((path, f"expected a mapping ({cls.__name__}), got {_type_name(value)}"))
        return
    fields = _json_fields(cls)
    for key, item in value.items():
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            suggestion = f"; did you mean {hint[0]}?" if hint else ""
            out.append((_join(path, str(key)), f"unknown field {key!r}{suggestion}"))
        elif item is not None:
            _walk(item, fields[key][1], _join(path, key), key, out)
    attr_json = {a: j for j, (a, _t) in fields.items()}
    for attr in sorted(required_attrs(cls)):
        name = attr_json[attr]
        if value.get(name) is None and name not in ("apiVersion", "kind"):
            out.append((_join(path, name), "required value is missing"))


def _drop_nulls(value: Any) -> Any:
    """Remove null fields: kubectl treats ``field: null`` in a manifest as absent."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


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
    _check_labels(sel.get("matchLabels"), _join(path, "matchLabels"), out)
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
    try:
        return ipaddress.IPv4Network(value, strict=False) if ":" not in value else None
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


def _check_kind(info: KindInfo, body: dict[str, Any], out: list[Problem]) -> None:
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


def _apply_defaults(info: KindInfo, body: dict[str, Any]) -> None:
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
        if "policyTypes" not in spec:
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


# ---------------------------------------------------------------- kinds


def _known_upstream(kind: str) -> str | None:
    """The apiVersion hint for a real Kubernetes kind the engine does not support, if any."""
    for prefix in ("V1", "V2", "V1beta1", "V1beta2", "V1alpha1"):
        cls = _model(prefix + kind)
        if cls is not None and "kind" in cls.openapi_types and "metadata" in cls.openapi_types:
            return prefix[1:].lower()
    return None


def _kind_of(doc: Mapping[str, Any]) -> tuple[KindInfo | None, Problem | None]:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not kind:
        return None, ("kind", "required value is missing (a string such as Pod)")
    if not isinstance(api_version, str) or not api_version:
        return None, ("apiVersion", "required value is missing")
    info = kinds_mod.find_kind(kind)
    if info is None:
        supported = ", ".join(k.kind for k in kinds_mod.KINDS if k.appliable)
        if _known_upstream(kind):
            return None, ("kind", f"{kind} ({api_version}) is not supported by the local "
                                  f"engine yet; it supports {supported}")
        return None, ("kind", f"unknown kind {kind!r}; the local engine supports {supported}")
    if api_version != info.api_version:
        return None, ("apiVersion", f"{kind} is served as apiVersion {info.api_version!r}, "
                                    f"not {api_version!r}")
    if not info.appliable:
        return None, ("kind", f"{kind} objects are created by the local engine and cannot be "
                              "applied; use 'label' to change their labels")
    return info, None


def check(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Validate one document: (defaulted copy, []) or (None, problems)."""
    info, problem = _kind_of(doc)
    if info is None:
        return None, [problem] if problem else []
    cls = _model(info.model)
    assert cls is not None, f"kinds table names an unknown model {info.model}"
    body = _drop_nulls(copy.deepcopy(dict(doc)))
    body.pop("status", None)  # the server ignores status written in a manifest
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    problems: list[Problem] = []
    if "metadata" not in body:
        problems.append(("metadata", "required value is missing"))
    _walk_model(body, cls, "", problems)
    if problems:
        return None, problems
    _check_kind(info, body, problems)
    if problems:
        return None, problems
    _apply_defaults(info, body)
    return body, []


def _describe(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{doc.get('kind', '?')} {name}" if name else str(doc.get("kind", "?"))


def _error(doc: Mapping[str, Any], problems: list[Problem], source: str,
           index: int) -> ManifestError:
    path, message = problems[0]
    if len(problems) > 1:
        rest = "\n".join(f"  - field {p}: {m}" if p else f"  - {m}" for p, m in problems[1:])
        more = len(problems) - 1
        message = f"{message}\n  and {more} more problem(s) in {_describe(doc)}:\n{rest}"
    return ManifestError(message, source=source, index=index, path=path)


def validate(doc: Mapping[str, Any], *, source: str, index: int) -> dict[str, Any]:
    """A validated, defaulted deep copy of ``doc``; ``ManifestError`` when it is refused."""
    result, problems = check(doc)
    if result is None:
        raise _error(doc, problems, source, index)
    return result


def validate_all(docs: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Validate every document before any is applied; one ``ManifestError`` lists them all."""
    results: list[dict[str, Any]] = []
    errors: list[ManifestError] = []
    for index, doc in enumerate(docs):
        try:
            results.append(validate(doc, source=source, index=index))
        except ManifestError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        listing = "\n".join(f"- {err}" for err in errors)
        raise ManifestError(f"{len(errors)} documents were refused; nothing was applied:\n"
                            f"{listing}", source=source)
    return results
