""":class:`KubeCluster`: the :class:`clusters.engine.Cluster` protocol on a real API server.

The kind and context engines both hand out this class; what differs between them is given
to the constructor: the capabilities they know or detected, how to run a command on a node
(``docker exec`` for kind, nothing for a shared cluster) and, for tests, the prober. Objects
go through :mod:`clusters.kube.objects`, waits through :mod:`clusters.kube.waits`, exec and
probes through the pod exec subresource (:mod:`clusters.kube.podexec`, :mod:`clusters.kube.
probes`), imported only when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clusters.engine import ApplyResult, Capabilities, ExecResult, KindRef
from clusters.errors import ClusterError
from clusters.kube import objects, waits
from clusters.kube.resources import Resources, UnknownKind, resources_for
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

    def resolve_kind(self, kind: str) -> KindRef:
        """Through the server's discovery, so custom resources count as soon as their CRD
        is served; an unknown word lists what the server does serve."""
        try:
            res = self.resources.resolve(kind)
        except UnknownKind as err:
            raise ValueError(
                f"the cluster has no resource type {kind!r} (if it is a custom resource, its "
                "CustomResourceDefinition may be missing); accepted names: "
                f"{', '.join(self.kind_names())}") from err
        return KindRef(res.kind, res.namespaced)

    def kind_names(self) -> list[str]:
        """The words :meth:`resolve_kind` accepts for kinds one can read (plural and short
        names, as ``kubectl api-resources`` lists them), for messages."""
        names: set[str] = set()
        for group, version in self.resources.preferred():
            for res in self.resources.group_version(group, version) or ():
                if res.verbs and not {"get", "list"} & set(res.verbs):
                    continue  # create-only reviews (tokenreviews, ...): nothing to show
                names.update((res.plural, *res.short_names))
        return sorted(names)

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
        """Run ``argv`` in the pod's default container (through the API's exec subresource).

        With ``capture`` the output is returned whole (probes, checks). Without it, it is
        written to this process' stdout/stderr as it arrives, and when this process' stdin
        is a terminal the exec is interactive, like ``kubectl exec -it``
        (:mod:`clusters.kube.execstream`)."""
        if capture:
            from clusters.kube.podexec import pod_exec

            return pod_exec(self.api, namespace, pod, list(argv), timeout=timeout)
        from clusters.kube.execstream import stream_exec

        return stream_exec(self.api, namespace, pod, list(argv), timeout=timeout)

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
