"""Where a probe on a kind cluster starts: a pod, the machine running kind, or a node.

Pod sources go through the API (:class:`clusters.kube.probes.KubeProber`: an agnhost
ephemeral container in the source pod's network). The *host* source is this machine: on Linux
kind's nodes sit on a Docker bridge it routes to, so a host probe is an ordinary connection
from here, made by the same socket code the local engine uses from the host (no root needed
for TCP, UDP, HTTP and DNS). On macOS and Windows the nodes live inside Docker's VM and their
addresses are not reachable from the host: such a probe is UNSUPPORTED with that reason, never
a timeout that would read as a firewall. Node sources (kubelet's view) would need the tools
inside the node image; they are UNSUPPORTED with the reason too.
"""

from __future__ import annotations

import platform
from collections.abc import Callable

from clusters.probing import Observation, Outcome, ProbeSpec

Prober = Callable[[ProbeSpec], Observation]


class KindProber:
    """Dispatches each probe by its source; ``pods`` probes from pods (default: KubeProber)."""

    def __init__(self, pods: Prober, *, system: str | None = None,
                 host: Prober | None = None) -> None:
        self.pods = pods
        self.system = system or platform.system()
        self._host = host

    def __call__(self, spec: ProbeSpec) -> Observation:
        if spec.source.node is not None:
            return Observation(Outcome.UNSUPPORTED, (
                f"probes from node {spec.source.node} are not available on the kind engine: "
                "probe from a pod, or from the host"))
        if spec.source.is_host:
            if self.system != "Linux":
                return Observation(Outcome.UNSUPPORTED, (
                    f"on {self.system} kind's nodes run inside Docker's VM, so their addresses "
                    "cannot be reached from this machine; probe from a pod instead"))
            return self.host(spec)
        return self.pods(spec)

    def host(self, spec: ProbeSpec) -> Observation:
        if self._host is not None:
            return self._host(spec)
        from clusters.local.probes import run_probe

        return run_probe(spec, None)
