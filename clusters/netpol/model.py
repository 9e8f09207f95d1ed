"""NetworkPolicy as plain values: what the policy engine reasons about.

(Pods, namespaces and other endpoints live in :mod:`clusters.netpol.endpoints` and are
re-exported here, so ``from clusters.netpol.model import PodInfo`` works.)

The engine works on these small frozen records rather than on raw manifests, so that every
default the API server applies (``podSelector: {}``, ``policyTypes``, ``protocol: TCP``)
is applied once, here, and every bad field is reported once, with its path
(``spec.ingress[0].from[1].ipBlock.cidr``). Selectors stay the LabelSelector mappings of
the object: :func:`clusters.labels.matches_selector` evaluates them.

Two readings of the API that matter for learners are encoded in the types:

* a :class:`Rule` with no peers admits every peer (``from`` missing or ``from: []``), and a
  rule with no ports opens every port and protocol;
* a :class:`Policy` isolates for a direction when that direction is in ``types``, even with
  no rules for it (``ingress: []`` is "deny all"; ``ingress: [{}]`` is "allow all").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Any, Literal

from clusters.labels import format_selector, label_key_error, label_value_error
from clusters.netpol.endpoints import Endpoint, HostEndpoint, NamedPort, NamespaceInfo, PodInfo

__all__ = [
    "PROTOCOLS",
    "Endpoint",
    "HostEndpoint",
    "IPBlock",
    "NamedPort",
    "NamespaceInfo",
    "Peer",
    "PodInfo",
    "Policy",
    "PortRule",
    "Rule",
    "describe_selector",
]

PROTOCOLS = ("TCP", "UDP", "SCTP")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# IANA_SVC_NAME, as the API server checks a named port: at most 15 characters, lowercase
# alphanumerics and '-', at least one letter, no leading, trailing or double '-'.
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$")


class _Bad(ValueError):
    """A field problem on its way up to the message that names the object."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


# ---------------------------------------------------------------- rule pieces


@dataclass(frozen=True)
class PortRule:
    """One entry of a rule's ``ports``: a protocol and a port number, range or name."""

    protocol: str
    port: int | str | None
    end_port: int | None = None

    def describe(self) -> str:
        """``TCP/8080``, ``TCP/8000-8080``, ``TCP/serve-80-tcp`` or ``UDP (any port)``."""
        if self.port is None:
            return f"{self.protocol} (any port)"
        if self.end_port is not None and self.end_port != self.port:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class IPBlock:
    """An ``ipBlock`` peer: every address in ``cidr`` except those in ``excepts``."""

    cidr: IPv4Network
    excepts: tuple[IPv4Network, ...] = ()

    def contains(self, ip: IPv4Address | str) -> bool:
        """True when ``ip`` is inside the block and outside every except ("" -> False)."""
        if isinstance(ip, str):
            if not ip:
                return False
            addr = ip_address(ip)
            if not isinstance(addr, IPv4Address):
                return False
            ip = addr
        return ip in self.cidr and not any(ip in exc for exc in self.excepts)

    def describe(self) -> str:
        """``10.0.0.0/8`` or ``10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16``."""
        if not self.excepts:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(str(e) for e in self.excepts)}"


def describe_selector(selector: Mapping[str, Any]) -> str:
    """A selector in kubectl syntax, or ``(empty selector)`` when it selects everything."""
    return format_selector(selector) or "(empty selector)"


@dataclass(frozen=True)
class Peer:
    """One entry of ``from``/``to``: selectors (ANDed when both are set) or an ipBlock."""

    pod_selector: Mapping[str, Any] | None = None
    namespace_selector: Mapping[str, Any] | None = None
    ip_block: IPBlock | None = None

    def describe(self, policy_namespace: str) -> str:
        """What the peer admits, in words: ``pods app=api in namespace lab04``,
        ``every pod in namespaces ns=y``, ``10.0.0.0/8 except 10.1.0.0/16``."""
        if self.ip_block is not None:
            return f"addresses in {self.ip_block.describe()}"
        pods = format_selector(self.pod_selector or {})
        who = f"pods {pods}" if pods else "every pod"
        ns = self.namespace_selector
        if ns is None:
            where = f"in namespace {policy_namespace}"
        elif not format_selector(ns):
            where = "in every namespace"
        else:
            where = f"in namespaces {format_selector(ns)}"
        return f"{who} {where}"


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule. No peers: every peer; no ports: every port and protocol."""

    direction: Literal["ingress", "egress"]
    index: int
    peers: tuple[Peer, ...]
    ports: tuple[PortRule, ...]


# ---------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Policy:
    """A NetworkPolicy with the API server's defaults applied."""

    namespace: str
    name: str
    pod_selector: Mapping[str, Any]
    types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    source: str = ""

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        """The rules of one direction (``"ingress"`` or ``"egress"``)."""
        return self.ingress if direction == "ingress" else self.egress

    def isolates(self, direction: str) -> bool:
        """True when the policy has the type of that direction (``Ingress``/``Egress``)."""
        return direction.capitalize() in self.types

    def describe_ref(self) -> str:
        """``ns/name (file)`` or ``ns/name`` when the file is unknown."""
        return f"{self.ref} ({self.source})" if self.source else self.ref

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], source: str = "") -> Policy:
        """Read a NetworkPolicy manifest, applying the API server's defaults.

        ``policyTypes`` missing or empty becomes ``[Ingress]`` plus ``Egress`` when the
        policy has at least one egress rule, as upstream defaulting does. Raises
        ``ValueError`` naming the policy and the bad field.
        """
        if not isinstance(obj, Mapping):
            raise ValueError(f"a NetworkPolicy must be a mapping, got {type(obj).__name__}")
        meta = obj.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, Mapping) else None
        namespace = (meta.get("namespace") if isinstance(meta, Mapping) else None) or "default"
        ref = f"{namespace}/{name}" if name else "NetworkPolicy"
        try:
            if obj.get("kind") not in (None, "NetworkPolicy"):
                raise _Bad("kind", f"expected NetworkPolicy, got {obj.get('kind')!r}")
            if not isinstance(name, str) or not name:
                raise _Bad("metadata.name", "is required")
            spec = obj.get("spec") or {}
            if not isinstance(spec, Mapping):
                raise _Bad("spec", "must be a mapping")
            selector = _selector(spec.get("podSelector"), "spec.podSelector")
            ingress = _rules(spec.get("ingress"), "ingress")
            egress = _rules(spec.get("egress"), "egress")
            types = _policy_types(spec.get("policyTypes"), has_egress=bool(egress))
        except _Bad as exc:
            where = f" ({source})" if source else ""
            raise ValueError(f"NetworkPolicy {ref}{where}: {exc}") from None
        return cls(namespace=str(namespace), name=name, pod_selector=selector or {},
                   types=types, ingress=ingress, egress=egress, source=source)


def _policy_types(value: Any, *, has_egress: bool) -> frozenset[str]:
    if value is None or value == []:
        return frozenset({"Ingress", "Egress"} if has_egress else {"Ingress"})
    if not isinstance(value, list):
        raise _Bad("spec.policyTypes", "must be a list of Ingress and/or Egress")
    for i, item in enumerate(value):
        if item not in ("Ingress", "Egress"):
            raise _Bad(f"spec.policyTypes[{i}]", f"{item!r} is not Ingress or Egress")
    return frozenset(value)


def _rules(value: Any, direction: Literal["ingress", "egress"]) -> tuple[Rule, ...]:
    if value is None:
        return ()
    path = f"spec.{direction}"
    if not isinstance(value, list):
        raise _Bad(path, "must be a list of rules")
    peers_key = "from" if direction == "ingress" else "to"
    rules = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        raw = raw if raw is not None else {}
        if not isinstance(raw, Mapping):
            raise _Bad(where, "must be a mapping (write {} for a rule that allows everything)")
        unknown = set(raw) - {peers_key, "ports"}
        if unknown:
            raise _Bad(f"{where}.{sorted(unknown)[0]}",
                       f"unknown field (a {direction} rule has '{peers_key}' and 'ports')")
        peers = _list(raw.get(peers_key), f"{where}.{peers_key}")
        ports = _list(raw.get("ports"), f"{where}.ports")
        rules.append(Rule(
            direction=direction, index=i,
            peers=tuple(_peer(p, f"{where}.{peers_key}[{j}]") for j, p in enumerate(peers)),
            ports=tuple(_port(p, f"{where}.ports[{j}]") for j, p in enumerate(ports))))
    return tuple(rules)


def _list(value: Any, path: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(path, "must be a list")
    return value


def _peer(raw: Any, path: str) -> Peer:
    if not isinstance(raw, Mapping):
        raise _Bad(path, "must be a mapping with podSelector, namespaceSelector or ipBlock")
    unknown = set(raw) - {"podSelector", "namespaceSelector", "ipBlock"}
    if unknown:
        raise _Bad(f"{path}.{sorted(unknown)[0]}",
                   "unknown field (a peer has podSelector, namespaceSelector or ipBlock)")
    block = raw.get("ipBlock")
    if block is not None:
        if "podSelector" in raw or "namespaceSelector" in raw:
            raise _Bad(path, "ipBlock may not be combined with podSelector or namespaceSelector")
        return Peer(ip_block=_ip_block(block, f"{path}.ipBlock"))
    if "podSelector" not in raw and "namespaceSelector" not in raw:
        raise _Bad(path, "must specify a podSelector, namespaceSelector or ipBlock")
    return Peer(
        pod_selector=_selector(raw.get("podSelector"), f"{path}.podSelector")
        if "podSelector" in raw else None,
        namespace_selector=_selector(raw.get("namespaceSelector"), f"{path}.namespaceSelector")
        if "namespaceSelector" in raw else None)


def _network(value: Any, path: str) -> IPv4Network:
    if not isinstance(value, str) or "/" not in value:
        raise _Bad(path, f"{value!r} is not a CIDR (like 10.0.0.0/16)")
    if ":" in value:
        raise _Bad(path, f"{value!r} is IPv6; the cluster is IPv4 single-stack")
    try:
        return IPv4Network(value, strict=False)
    except ValueError:
        raise _Bad(path, f"{value!r} is not a valid CIDR (like 10.0.0.0/16)") from None


def _ip_block(raw: Any, path: str) -> IPBlock:
    if not isinstance(raw, Mapping):
        raise _Bad(path, "must be a mapping with cidr and optional except")
    if "cidr" not in raw:
        raise _Bad(f"{path}.cidr", "is required")
    cidr = _network(raw["cidr"], f"{path}.cidr")
    excepts = []
    for j, text in enumerate(_list(raw.get("except"), f"{path}.except")):
        sub = _network(text, f"{path}.except[{j}]")
        if not sub.subnet_of(cidr):
            raise _Bad(f"{path}.except[{j}]", f"{sub} is not inside the cidr {cidr}")
        excepts.append(sub)
    return IPBlock(cidr=cidr, excepts=tuple(excepts))


def _port(raw: Any, path: str) -> PortRule:
    if not isinstance(raw, Mapping):
        raise _Bad(path, "must be a mapping with protocol, port and endPort")
    protocol = raw.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise _Bad(f"{path}.protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)} "
                                       "(upper case)")
    port = raw.get("port")
    end = raw.get("endPort")
    if isinstance(port, bool) or not isinstance(port, int | str | None):
        raise _Bad(f"{path}.port", f"{port!r} must be a number or a port name")
    if isinstance(port, int) and not 1 <= port <= 65535:
        raise _Bad(f"{path}.port", f"{port} is not between 1 and 65535")
    if isinstance(port, str):
        if port.isdigit():
            raise _Bad(f"{path}.port", f"{port!r} is a quoted number: write it without quotes, "
                                       "or use a container port name")
        if len(port) > 15 or not _PORT_NAME.match(port) or not re.search("[a-z]", port):
            raise _Bad(f"{path}.port", f"{port!r} is not a valid port name (at most 15 "
                                       "lowercase letters, digits and '-', with a letter)")
    if end is not None:
        if not isinstance(port, int):
            raise _Bad(f"{path}.endPort", "may only be set together with a numeric port")
        if isinstance(end, bool) or not isinstance(end, int) or not port <= end <= 65535:
            raise _Bad(f"{path}.endPort", f"{end!r} must be a number from port ({port}) "
                                          "to 65535")
    return PortRule(protocol=protocol, port=port, end_port=end)


def _selector(raw: Any, path: str) -> dict[str, Any]:
    """Check a LabelSelector and return it as a plain dict (``None`` -> ``{}``)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _Bad(path, "must be a label selector (matchLabels / matchExpressions)")
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise _Bad(f"{path}.{sorted(unknown)[0]}",
                   "unknown field (a selector has matchLabels and matchExpressions)")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping):
        raise _Bad(f"{path}.matchLabels", "must be a mapping of label keys to values")
    for key, value in labels.items():
        problem = label_key_error(key) or label_value_error(value)
        if problem:
            raise _Bad(f"{path}.matchLabels", problem)
    exprs = _list(raw.get("matchExpressions"), f"{path}.matchExpressions")
    for i, expr in enumerate(exprs):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise _Bad(where, "must be a mapping with key, operator and values")
        problem = label_key_error(expr.get("key"))
        if problem:
            raise _Bad(f"{where}.key", problem)
        op, values = expr.get("operator"), expr.get("values")
        if op not in _OPERATORS:
            raise _Bad(f"{where}.operator", f"{op!r} is not one of {', '.join(_OPERATORS)}")
        if op in ("In", "NotIn") and (not isinstance(values, list) or not values):
            raise _Bad(f"{where}.values", f"operator {op} needs a non-empty list of values")
        if op in ("Exists", "DoesNotExist") and values:
            raise _Bad(f"{where}.values", f"must be empty for operator {op}")
    return {key: raw[key] for key in ("matchLabels", "matchExpressions") if raw.get(key)}
