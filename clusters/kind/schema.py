"""Our own check of a kind ``kind.x-k8s.io/v1alpha4`` Cluster config: fields, types and values.

kind reads its config leniently in places and fails late in others (a bad CIDR surfaces as a
kubeadm error minutes into ``kind create cluster``; a port already mapped as a Docker error).
Checking the config we generate before kind sees it turns those into one clear message naming
the field (``nodes[1].extraPortMappings[0].hostPort``), what was expected and what was found.

The description follows kind's v1alpha4 configuration reference and its Go types: the Cluster
(``kind``, ``apiVersion``, ``name``, ``nodes``, ``networking``, ``featureGates``,
``runtimeConfig`` and the kubeadm/containerd patch lists), a Node (``role``, ``image``,
``labels``, ``extraMounts``, ``extraPortMappings``, ``gpus``, patches), Networking, Mount and
PortMapping. Unknown fields are errors, as kind's strict decoding makes them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from clusters.errors import ClusterError

API_VERSION = "kind.x-k8s.io/v1alpha4"
ROLES = ("control-plane", "worker")
IP_FAMILIES = ("ipv4", "ipv6", "dual")
PROXY_MODES = ("iptables", "ipvs", "nftables", "none")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROPAGATIONS = ("None", "HostToContainer", "Bidirectional")

# kind accepts [a-z0-9.-]; node containers are "<name>-control-plane", "<name>-worker12" and
# must stay valid 63-character host names.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,47}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class KindConfigError(ClusterError):
    """A kind config field is wrong: ``path`` (``nodes[1].labels``), ``expected`` and ``got``."""

    def __init__(self, path: str, expected: str, got: str) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"kind config {path}: expected {expected}, got {got}")


Check = Callable[[Any, str], None]


def validate_kind_config(doc: Mapping[str, Any]) -> None:
    """Raise :class:`KindConfigError` for the first field that kind would refuse or misread."""
    _object("a kind Cluster config", _CLUSTER_FIELDS, required=("kind", "apiVersion"))(doc, "")
    nodes = doc.get("nodes")
    if nodes is not None:
        if not any(node.get("role", "control-plane") == "control-plane" for node in nodes):
            raise KindConfigError("nodes", "at least one node with role control-plane",
                                  f"roles {', '.join(str(n.get('role')) for n in nodes) or 'none'}")
        _check_host_ports(nodes)
    net = doc.get("networking") or {}
    pods, services = net.get("podSubnet"), net.get("serviceSubnet")
    if pods and services and _overlaps(pods, services):
        raise KindConfigError("networking.serviceSubnet", f"a range apart from podSubnet {pods}",
                              _show(services))


# ---- field checks ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the message shows it: ``'80'`` (a string), ``80``, ``True``, ``a list``."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _typed(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", str: "string", float: "number"}.get(type(value))
    if value is None:
        return "null"
    return f"{kind} {_show(value)}" if kind else _show(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _string(*, choices: tuple[str, ...] = (), pattern: re.Pattern[str] | None = None,
            what: str = "a string") -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise KindConfigError(path, what if not choices else f"one of {', '.join(choices)}",
                                  _typed(value))
        if choices and value not in choices:
            raise KindConfigError(path, f"one of {', '.join(choices)}", _show(value))
        if pattern is not None and not pattern.match(value):
            raise KindConfigError(path, what, _show(value))
    return check


def _boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise KindConfigError(path, "true or false", _typed(value))


def _port(*, random_ok: bool) -> Check:
    """1-65535; ``random_ok`` also allows 0 and -1 (kind or Docker then pick a free port)."""
    low = -1 if random_ok else 1
    what = "a port 1-65535 (or 0/-1 for any free port)" if random_ok else "a port 1-65535"

    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise KindConfigError(path, what, _typed(value))
        if not low <= value <= 65535:
            raise KindConfigError(path, what, _show(value))
    return check


def _ip(value: Any, path: str) -> None:
    _string(what="an IP address")(value, path)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise KindConfigError(path, "an IP address", _show(value)) from None


def _cidrs(value: Any, path: str) -> None:
    """One CIDR, or two (IPv4 and IPv6) separated by a comma for dual stack."""
    what = "a CIDR such as 10.244.0.0/16 (two, comma-separated, for dual stack)"
    _string(what=what)(value, path)
    parts = [p.strip() for p in value.split(",")]
    if len(parts) > 2:
        raise KindConfigError(path, what, _show(value))
    for part in parts:
        try:
            ipaddress.ip_network(part, strict=True)
        except ValueError as err:
            raise KindConfigError(path, f"{what}; {err}", _show(value)) from None


def _absolute_path(value: Any, path: str) -> None:
    _string(what="an absolute path")(value, path)
    if not value.startswith("/"):
        raise KindConfigError(path, "an absolute path", _show(value))


def _list_of(item: Check, what: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise KindConfigError(path, f"a list of {what}", _typed(value))
        for i, entry in enumerate(value):
            item(entry, f"{path}[{i}]")
    return check


def _map_of(value_check: Check, what: str, key_check: Check | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise KindConfigError(path, f"a mapping of {what}", _typed(value))
        for key, entry in value.items():
            if not isinstance(key, str):
                raise KindConfigError(path, "string keys", f"key {_show(key)}")
            if key_check is not None:
                key_check(key, f"{path}[{key!r}]")
            value_check(entry, f"{path}[{key!r}]")
    return check


def _label_key(key: str, path: str) -> None:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or not _LABEL_NAME.match(name):
        raise KindConfigError(path, "a label key like 'example.com/name' (name: 1-63 of "
                              "[A-Za-z0-9-_.], alphanumeric at both ends)", f"key {_show(key)}")


def _object(what: str, fields: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise KindConfigError(path or "(document)", what, _typed(value))
        for key in value:
            if key not in fields:
                raise KindConfigError(_join(path, str(key)),
                                      f"a field of {what} ({', '.join(fields)})", "an unknown field")
        for key in required:
            if key not in value:
                raise KindConfigError(_join(path, key), f"this field in {what}", "nothing")
        for key, entry in value.items():
            fields[key](entry, _join(path, key))
    return check


_STRINGS = _list_of(_string(), "strings")
_PATCH_6902 = _object("a JSON 6902 patch", {
    "group": _string(), "version": _string(), "kind": _string(), "patch": _string(),
}, required=("kind", "patch"))
_PATCHES_6902 = _list_of(_PATCH_6902, "JSON 6902 patches")

_MOUNT = _object("a mount", {
    "hostPath": _string(what="a host path"),
    "containerPath": _absolute_path,
    "readOnly": _boolean,
    "selinuxRelabel": _boolean,
    "propagation": _string(choices=PROPAGATIONS),
}, required=("hostPath", "containerPath"))

_PORT_MAPPING = _object("a port mapping", {
    "containerPort": _port(random_ok=False),
    "hostPort": _port(random_ok=True),
    "listenAddress": _ip,
    "protocol": _string(choices=PROTOCOLS),
}, required=("containerPort",))

_NODE = _object("a node", {
    "role": _string(choices=ROLES),
    "image": _string(pattern=re.compile(r"^\S+$"), what="an image reference"),
    "labels": _map_of(_string(pattern=_LABEL_VALUE, what="a label value (0-63 of [A-Za-z0-9-_.])"),
                      "label names to values", key_check=_label_key),
    "extraMounts": _list_of(_MOUNT, "mounts"),
    "extraPortMappings": _list_of(_PORT_MAPPING, "port mappings"),
    "gpus": _string(),
    "kubeadmConfigPatches": _STRINGS,
    "kubeadmConfigPatchesJSON6902": _PATCHES_6902,
})

_NETWORKING = _object("networking", {
    "ipFamily": _string(choices=IP_FAMILIES),
    "apiServerAddress": _ip,
    "apiServerPort": _port(random_ok=True),
    "podSubnet": _cidrs,
    "serviceSubnet": _cidrs,
    "disableDefaultCNI": _boolean,
    "kubeProxyMode": _string(choices=PROXY_MODES),
    "dnsSearch": _STRINGS,
})


def _nonempty_nodes(value: Any, path: str) -> None:
    _list_of(_NODE, "nodes")(value, path)
    if not value:
        raise KindConfigError(path, "at least one node", "an empty list")


_CLUSTER_FIELDS: dict[str, Check] = {
    "kind": _string(choices=("Cluster",)),
    "apiVersion": _string(choices=(API_VERSION,)),
    "name": _string(pattern=_CLUSTER_NAME,
                    what="a cluster name of 1-49 [a-z0-9.-], alphanumeric at both ends"),
    "nodes": _nonempty_nodes,
    "networking": _NETWORKING,
    "featureGates": _map_of(_boolean, "feature gate names to true/false"),
    "runtimeConfig": _map_of(_string(), "API names to values"),
    "kubeadmConfigPatches": _STRINGS,
    "kubeadmConfigPatchesJSON6902": _PATCHES_6902,
    "containerdConfigPatches": _STRINGS,
    "containerdConfigPatchesJSON6902": _STRINGS,
}


# ---- cross-field checks ------------------------------------------------------------------------


def _check_host_ports(nodes: list[Mapping[str, Any]]) -> None:
    """Docker refuses a second mapping of a host port and protocol on the same address (a
    wildcard address such as 0.0.0.0, the default, takes the port on every address)."""
    seen: list[tuple[str, int, str, str]] = []
    for n, node in enumerate(nodes):
        for m, mapping in enumerate(node.get("extraPortMappings") or ()):
            port = mapping.get("hostPort", 0)
            if port <= 0:
                continue
            address = mapping.get("listenAddress", "0.0.0.0")
            protocol = mapping.get("protocol", "TCP")
            path = f"nodes[{n}].extraPortMappings[{m}].hostPort"
            for other_address, other_port, other_protocol, other_path in seen:
                if (other_port, other_protocol) == (port, protocol) and _same_address(address, other_address):
                    raise KindConfigError(path, f"a host port not already mapped by {other_path}", str(port))
            seen.append((address, port, protocol, path))


def _same_address(a: str, b: str) -> bool:
    x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    if x.version != y.version:
        return False
    return x == y or x.is_unspecified or y.is_unspecified


def _overlaps(a: str, b: str) -> bool:
    nets_a = [ipaddress.ip_network(p.strip()) for p in a.split(",")]
    nets_b = [ipaddress.ip_network(p.strip()) for p in b.split(",")]
    return any(x.version == y.version and x.overlaps(y) for x in nets_a for y in nets_b)
