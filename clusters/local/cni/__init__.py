"""CNI modes of the local engine: one :class:`~clusters.local.cni.base.CniPlugin` each.

``plugin_for(topo)`` picks the plugin the cluster was planned with. Cilium is not emulated:
its datapath is eBPF programs attached by its agent, which this engine does not reproduce,
so :func:`check_supported` sends learners to the kind engine for it.
"""

from __future__ import annotations

import importlib

from clusters.errors import EngineUnavailable
from clusters.local.cni.base import CniPlugin, PodWiring
from clusters.local.topology import Topology

#: CNI name -> ``module:class`` of its plugin, imported on first use.
PLUGINS: dict[str, str] = {
    "kindnet": "clusters.local.cni.kindnet:Kindnet",
    "flannel": "clusters.local.cni.flannel:Flannel",
    "calico": "clusters.local.cni.calico:Calico",
}


def check_supported(cni: str) -> None:
    """Raise EngineUnavailable, with what to do instead, for a CNI this engine cannot run."""
    if cni == "cilium":
        raise EngineUnavailable(
            "local", "Cilium is not emulated on the local engine: its datapath is eBPF "
            "programs loaded by the Cilium agent, and this engine builds kernel devices and "
            "routes instead", "use the kind engine: lab start NN --engine kind --cni cilium")
    if cni not in PLUGINS:
        raise EngineUnavailable("local", f"CNI {cni!r} is not available on the local engine",
                                f"use one of: {', '.join(PLUGINS)}")


def plugin_class(cni: str) -> type[CniPlugin]:
    check_supported(cni)
    module, _, cls = PLUGINS[cni].partition(":")
    found: type[CniPlugin] = getattr(importlib.import_module(module), cls)
    return found


def plugin_for(topo: Topology) -> CniPlugin:
    """The plugin of the cluster's CNI, set up for its topology (and backend)."""
    return plugin_class(topo.cni)(topo)


__all__ = ["PLUGINS", "CniPlugin", "PodWiring", "check_supported", "plugin_class", "plugin_for"]
