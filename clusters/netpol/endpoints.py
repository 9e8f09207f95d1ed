"""The endpoints of traffic as policy sees them: pods, namespaces and everything else.

A pod is matched by its labels and namespace and resolves named ports from its container
ports; anything that is not a pod (the host, a node, an outside address) is only an
address, which only an ipBlock can match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Endpoint", "HostEndpoint", "NamedPort", "NamespaceInfo", "PodInfo"]


@dataclass(frozen=True)
class NamedPort:
    """One container port of a pod (``name`` is "" for an unnamed port)."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class PodInfo:
    """What policy needs to know about a pod: where it is, its labels and its ports."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    node: str = ""
    ports: tuple[NamedPort, ...] = ()
    host_network: bool = False

    @property
    def label(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def named_ports(self, name: str, protocol: str) -> list[int]:
        """Port numbers of the container ports called ``name`` with that protocol."""
        return [p.port for p in self.ports if p.name == name and p.protocol == protocol]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> PodInfo:
        """Read a Pod manifest (``status.podIP`` may be missing: ip "")."""
        if not isinstance(obj, Mapping):
            raise ValueError(f"a Pod must be a mapping, got {type(obj).__name__}")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("Pod: metadata.name is required")
        namespace = meta.get("namespace") or "default"
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        ports = []
        for c, container in enumerate(spec.get("containers") or ()):
            for j, port in enumerate(container.get("ports") or ()):
                number = port.get("containerPort")
                if isinstance(number, bool) or not isinstance(number, int):
                    raise ValueError(f"Pod {namespace}/{name}: spec.containers[{c}].ports[{j}]"
                                     f".containerPort: {number!r} must be a number")
                ports.append(NamedPort(name=port.get("name") or "",
                                       protocol=port.get("protocol") or "TCP", port=number))
        return cls(namespace=namespace, name=name, ip=status.get("podIP") or "",
                   labels=dict(meta.get("labels") or {}), node=spec.get("nodeName") or "",
                   ports=tuple(ports), host_network=bool(spec.get("hostNetwork")))


@dataclass(frozen=True)
class NamespaceInfo:
    """A namespace's name and labels (what a namespaceSelector is matched against)."""

    name: str
    labels: Mapping[str, str]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NamespaceInfo:
        """Read a Namespace manifest; ``kubernetes.io/metadata.name`` is added when missing,
        as the API server always sets it."""
        if not isinstance(obj, Mapping):
            raise ValueError(f"a Namespace must be a mapping, got {type(obj).__name__}")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("Namespace: metadata.name is required")
        labels = dict(meta.get("labels") or {})
        labels.setdefault("kubernetes.io/metadata.name", name)
        return cls(name=name, labels=labels)


@dataclass(frozen=True)
class HostEndpoint:
    """Something that is not a pod: the host outside the cluster, a node, an outside IP."""

    ip: str
    node: str = ""

    @property
    def label(self) -> str:
        """``node/<name>`` for a node's own address, else the IP."""
        return f"node/{self.node}" if self.node else self.ip


Endpoint = PodInfo | HostEndpoint
