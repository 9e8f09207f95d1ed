""":class:`KubeCluster`: the :class:`clusters.engine.Cluster` protocol on a real API server.

The kind and context engines both hand out this class; what differs between them is given
to the constructor: the capabilities they know or detected, how to run a command on a node
(``docker exec`` for kind, nothing for a shared cluster) and, for tests, the prober. Objects
go through :mod:`clusters.kube.objects`, waits through :mod:`clusters.kube.waits`, exec and
probes through the pod exec subresource (:mod:`clusters.kube.podexec`, :mod:`clusters.kube.
probes`), imported only when first used.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clusters.engine import ApplyResult, Capabilities, ExecResult
from clusters.errors import ClusterError
from clusters.kube import objects, waits
from clusters.kube.resources import Resources, resources_for
from clusters.kube.transport import KubeApi
from clusters.probing import Observation, ProbeSpec

NodeExec = Callable[[str, Sequence[str], bool, "float | None"], ExecResult]
Prober = Callable[[ProbeSpec], Observation]


class KubeCluster:
    """A running cluster reached through one kubeconfig context."""

    def __init__(
        self, api: KubeApi, name: str, engine: str, *, capabilities: Capabilities,
        node_exec: NodeExec | None = None, prober: Prober | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.engine = engine
        self._capabilities = capabilities
        self._node_exec = node_exec
        self._prober = prober
        self.resources: Resources = resources_for(api)

    def __repr__(self) -> str:
        return f"KubeCluster(name={self.name!r}, engine={self.engine!r}, api={self.api!r})"

    @property
    def default_namespace(self) -> str:
        """Where a namespaced object without ``metadata.namespace`` goes (the context's)."""
        return str(getattr(self.api, "namespace", "") or "default")

    def capabilities(self) -> Capabilities:
        return self._capabilities

    # ------------------------------------------------------------ objects

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        return objects.apply(self.api, docs, source, default_namespace=self.default_namespace,
                             resources=self.resources)

    def get(
        self, kind: str, namespace: str | None = None, name: str | None = None,
        selector: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return objects.get(self.api, kind, namespace, name, selector, resources=self.resources)

    def delete(self, kind: str, namespace: str | None, name: str, *, wait: bool = True,
               timeout: float = 120) -> bool:
        """Delete and (unless ``wait=False``) wait until it is gone, as ``kubectl delete``."""
        return objects.delete(self.api, kind, namespace, name, resources=self.resources,
                              wait=wait, timeout=timeout)

    def label(
        self, kind: str, namespace: str | None, name: str,
        set_labels: Mapping[str, str], remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        return objects.label(self.api, kind, namespace, name, set_labels, remove,
                             resources=self.resources)

    # ------------------------------------------------------------ commands

    def exec(
        self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the pod's first container (through the API's exec subresource).

        Without ``capture`` the output is written to this process' stdout/stderr when the
        command ends (the exec is not interactive)."""
        from clusters.kube.podexec import pod_exec

        result = pod_exec(self.api, namespace, pod, list(argv), timeout=timeout)
        if capture:
            return result
        if result.stdout:
            sys.stdout.write(result.stdout)
            sys.stdout.flush()
        if result.stderr:
            sys.stderr.write(result.stderr)
            sys.stderr.flush()
        return ExecResult(result.returncode, argv=result.argv or tuple(argv))

    def node_exec(
        self, node: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        if self._node_exec is None:
            raise ClusterError(f"this engine cannot run commands on nodes (cluster {self.name}, "
                               f"{self.engine} engine); run it in a pod instead")
        return self._node_exec(node, list(argv), capture, timeout)

    def probe(self, spec: ProbeSpec) -> Observation:
        if self._prober is None:
            from clusters.kube.probes import KubeProber

            self._prober = KubeProber(self.api)
        return self._prober(spec)

    # ------------------------------------------------------------ waits

    def wait_converged(self, namespaces: Sequence[str] | None = None, timeout: float = 60) -> None:
        waits.wait_converged(self.api, namespaces, timeout)

    def reset_namespaces(self, namespaces: Sequence[str], timeout: float = 120) -> None:
        waits.reset_namespaces(self.api, namespaces, timeout)

    def wait_nodes_ready(self, count: int, timeout: float = 120) -> list[str]:
        return waits.wait_nodes_ready(self.api, count, timeout)
