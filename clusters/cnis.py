"""The CNI plugins the course knows, engine-neutral: names, backends, what they enforce.

A cluster profile names a CNI and, for the CNIs that have a choice, a *backend*: how pod
traffic crosses between nodes. Flannel calls it ``Backend.Type`` in its ``net-conf.json``
(``vxlan`` or ``host-gw``); Calico calls it the IP pool's encapsulation (none, i.e. plain
routes learnt over ``bgp``, or ``vxlan``). kindnet and Cilium have no choice here. The
first backend of each CNI is its default, and a profile always stores the resolved name, so
``--cni flannel`` and ``--cni flannel --backend vxlan`` describe the same cluster.

Engines decide which of these they can run (the local engine emulates all but Cilium); the
catalogue only knows what each plugin is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CniInfo:
    name: str
    backends: tuple[str, ...]  # first = default; () when the CNI has no choice
    enforces_policy: bool
    summary: str

    @property
    def default_backend(self) -> str:
        return self.backends[0] if self.backends else ""


CNIS: dict[str, CniInfo] = {
    "kindnet": CniInfo("kindnet", (), True,
                       "kind's default: a veth per pod and plain routes between nodes"),
    "flannel": CniInfo("flannel", ("vxlan", "host-gw"), False,
                       "a cni0 bridge per node and a VXLAN overlay (or direct routes)"),
    "calico": CniInfo("calico", ("bgp", "vxlan"), True,
                      "routed cali* veths, /26 IPAM blocks and BGP between nodes (or VXLAN)"),
    "cilium": CniInfo("cilium", (), True, "eBPF datapath (kind engine only)"),
}


class CniChoiceError(ValueError):
    """An unknown CNI, or a backend the CNI does not have; the message lists the choices."""


def choices() -> str:
    """``kindnet, flannel (vxlan|host-gw), calico (bgp|vxlan), cilium`` for messages."""
    return ", ".join(f"{c.name} ({'|'.join(c.backends)})" if c.backends else c.name
                     for c in CNIS.values())


def resolve(cni: str, backend: str = "") -> tuple[str, str]:
    """``(cni, backend)`` with the backend defaulted; CniChoiceError when either is unknown."""
    info = CNIS.get(cni)
    if info is None:
        raise CniChoiceError(f"unknown CNI {cni!r}; choose one of: {choices()}")
    if not backend:
        return cni, info.default_backend
    if backend not in info.backends:
        if not info.backends:
            raise CniChoiceError(f"the {cni} CNI has no backends to choose from (got {backend!r}); "
                                 "leave out --backend")
        raise CniChoiceError(f"the {cni} CNI has no backend {backend!r}; choose one of: "
                             f"{', '.join(info.backends)} (default {info.default_backend})")
    return cni, backend


def describe(cni: str, backend: str = "") -> str:
    """``flannel (vxlan)``, or just ``kindnet``."""
    return f"{cni} ({backend})" if backend else cni
